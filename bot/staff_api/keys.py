"""What the staff API needs from the application that mounts it."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from aiohttp import web

from bot.core.company import Company
from bot.db.store import TicketStore

STORE = web.AppKey("staff_api_store", TicketStore)
COMPANY = web.AppKey("staff_api_company", Company)
# What "now" is for overdue lists and staff actions; tests pin it.
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("staff_api_clock")
