"""What the staff API needs from the application that mounts it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from aiohttp import web

from bot.core.rules import ProjectRules
from bot.db.store import TicketStore


@dataclass(frozen=True)
class StaffTokens:
    agent: str = ""  # sees contact data masked
    manager: str = ""  # sees it unmasked


STORE = web.AppKey("staff_api_store", TicketStore)
RULES = web.AppKey("staff_api_rules", ProjectRules)
TOKENS = web.AppKey("staff_api_tokens", StaffTokens)
# What "now" is for overdue lists and staff actions; tests pin it.
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("staff_api_clock")
