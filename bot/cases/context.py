"""The store and project registry of a process that has no other wiring: the Rasa action server.

`rasa_sdk` imports our actions and calls them; there is no application factory to hand
them a store. They take it from here: opened lazily from the environment on first use,
or set by `configure()` (tests, and processes that already hold one).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.cases.residents import home_for_room
from bot.core.company import Company, cached_company
from bot.core.rules import ProjectRules
from bot.db.records import current_contact
from bot.db.store import TicketStore
from bot.settings import Settings

_store: TicketStore | None = None
_company: Company | None = None


class StoreUnavailable(Exception):
    """The ticket store could not complete the unit of work; nothing of it was written."""


def configure(store: TicketStore | None = None, company: Company | None = None) -> None:
    global _store, _company
    _store, _company = store, company


def get_store() -> TicketStore:
    global _store
    if _store is None:
        _store = TicketStore(Settings.from_env().database_url)
    return _store


def get_company() -> Company:
    global _company
    if _company is None:
        settings = Settings.from_env()
        _company = cached_company(settings.project_config, settings.projects_dir)
    return _company


def rules_in_session(session: Session, openid: str, room: str | None = None) -> ProjectRules:
    """The rules of the project a resident's case belongs to: the project of their verified
    household with this room (an owner of flats in two projects says which), else the project
    they are in now (the default project for a newcomer)."""
    company = get_company()
    home = home_for_room(session, openid, room) if room else None
    resident = home or current_contact(session, openid)
    code = resident.project if resident is not None else None
    return company.rules(code) if company.knows(code) else company.default


def rules_of_resident(openid: str) -> ProjectRules:
    """`rules_in_session` in a transaction of its own; while the store is down, the default
    project's rules (the conversation goes on)."""
    try:
        with unit_of_work() as session:
            return rules_in_session(session, openid)
    except StoreUnavailable:
        return get_company().default


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction on the process's store; any database failure becomes StoreUnavailable."""
    try:
        with get_store().transaction() as session:
            yield session
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"{exc.__class__.__name__}") from exc
