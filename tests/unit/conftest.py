"""Fixtures of the service runtime's tests: databases (SQLite, PostgreSQL), rules, the live stack."""
from tests.fixtures import *  # noqa: F401,F403
