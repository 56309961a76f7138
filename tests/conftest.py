"""Shared by every test folder, and by both runtimes: imports nothing from either.

tests/unit and tests/e2e run in the service runtime (.venv), tests/assistant in the
assistant runtime (.venv-assistant), which has Rasa but none of the service packages.
"""
