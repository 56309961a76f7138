"""The staff HTTP API (JSON), an adapter over bot.cases: `install(app, …)` mounts it."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from aiohttp import web

from bot.core.company import Company
from bot.db.store import TicketStore
from bot.staff_api.keys import CLOCK, COMPANY, STORE
from bot.staff_api.routes import ROUTES


def install(app: web.Application, *, company: Company, clock: Callable[[], datetime]) -> None:
    """Add the routes; the store is given later by `attach_store` (it is opened at startup)."""
    app[COMPANY] = company
    app[CLOCK] = clock
    app.add_routes(ROUTES)


def attach_store(app: web.Application, store: TicketStore) -> None:
    app[STORE] = store
