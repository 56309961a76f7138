"""The store and rules of a process that has no other wiring: the Rasa action server.

`rasa_sdk` imports our actions and calls them; there is no application factory to hand
them a store. They take it from here: opened lazily from the environment on first use,
or set by `configure()` (tests, and processes that already hold one).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.core.rules import ProjectRules, load_rules
from bot.db.store import TicketStore
from bot.settings import Settings

_store: TicketStore | None = None
_rules: ProjectRules | None = None


class StoreUnavailable(Exception):
    """The ticket store could not complete the unit of work; nothing of it was written."""


def configure(store: TicketStore | None = None, rules: ProjectRules | None = None) -> None:
    global _store, _rules
    _store, _rules = store, rules


def get_store() -> TicketStore:
    global _store
    if _store is None:
        _store = TicketStore(Settings.from_env().database_url)
    return _store


def get_rules() -> ProjectRules:
    global _rules
    if _rules is None:
        _rules = load_rules(Settings.from_env().project_config)
    return _rules


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction on the process's store; any database failure becomes StoreUnavailable."""
    try:
        with get_store().transaction() as session:
            yield session
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"{exc.__class__.__name__}") from exc
