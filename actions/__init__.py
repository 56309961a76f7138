"""Rasa custom actions. Thin: they read the conversation and call into `bot`."""
