"""Process-wide store and rules, opened lazily from the environment.

Long-running processes (action server, gateway) share one engine per process; tests
point them elsewhere with `configure()`.
"""
from __future__ import annotations

from bot.config import Settings
from bot.rules import ProjectRules, load_rules
from bot.store import TicketStore

_store: TicketStore | None = None
_rules: ProjectRules | None = None


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
