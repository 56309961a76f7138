"""Staff HTTP API (JSON), protected by bearer tokens; every query is logged by role."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
from datetime import date, datetime, time, timedelta

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.gateway.keys import RULES, SETTINGS, STORE
from bot.models import Ticket, TicketKind, TicketStatus
from bot.rules import ProjectRules
from bot.staff_views import StaffRole, search_tickets, ticket_view

log = logging.getLogger(__name__)

MAX_LIMIT = 500


def _error(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def _json(value: object) -> web.Response:
    return web.json_response(value, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def role_of(request: web.Request) -> StaffRole:
    settings = request.app[SETTINGS]
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    for configured, role in ((settings.staff_api_manager_token, StaffRole.MANAGER),
                             (settings.staff_api_token, StaffRole.AGENT)):
        if configured and token and hmac.compare_digest(token.encode(), configured.encode()):
            return role
    log.warning("staff API: refused %s %s from %s (no valid token)", request.method, request.path, request.remote)
    raise _error(web.HTTPUnauthorized, "a valid staff token is required")


def _day_start(value: str | None, rules: ProjectRules, *, next_day: bool) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise _error(web.HTTPBadRequest, f"bad date {value!r}, use YYYY-MM-DD") from exc
    return datetime.combine(day + timedelta(days=1) if next_day else day, time(0), tzinfo=rules.timezone)


def _choice(value: str | None, allowed: set[str], name: str) -> str | None:
    if value and value not in allowed:
        raise _error(web.HTTPBadRequest, f"unknown {name} {value!r}; one of {sorted(allowed)}")
    return value or None


def _limit(value: str | None) -> int:
    try:
        return min(max(int(value or 100), 1), MAX_LIMIT)
    except ValueError as exc:
        raise _error(web.HTTPBadRequest, "limit must be a number") from exc


async def list_tickets(request: web.Request) -> web.Response:
    role = role_of(request)
    rules, store, q = request.app[RULES], request.app[STORE], request.query
    filters = dict(
        kind=_choice(q.get("kind"), {k.value for k in TicketKind}, "kind"),
        status=_choice(q.get("status"), {s.value for s in TicketStatus}, "status"),
        resident=q.get("resident") or None,
        created_from=_day_start(q.get("from"), rules, next_day=False),
        created_to=_day_start(q.get("to"), rules, next_day=True),
        limit=_limit(q.get("limit")),
    )
    log.info("staff API: %s lists tickets kind=%s status=%s by_resident=%s from=%s to=%s", role.value,
             filters["kind"], filters["status"], bool(filters["resident"]), q.get("from"), q.get("to"))

    def query() -> list[dict]:
        with store.transaction() as session:
            return [ticket_view(t, role, rules) for t in search_tickets(session, **filters)]

    tickets = await asyncio.to_thread(query)
    return _json({"count": len(tickets), "tickets": tickets})


async def get_ticket(request: web.Request) -> web.Response:
    role = role_of(request)
    rules, store = request.app[RULES], request.app[STORE]
    number = request.match_info["number"].upper()
    log.info("staff API: %s opens ticket %s", role.value, number)

    def query() -> dict | None:
        with store.transaction() as session:
            ticket = session.execute(
                select(Ticket).options(selectinload(Ticket.events), selectinload(Ticket.resident))
                .where(Ticket.number == number)
            ).scalar_one_or_none()
            return ticket_view(ticket, role, rules) if ticket else None

    view = await asyncio.to_thread(query)
    if view is None:
        raise _error(web.HTTPNotFound, f"no ticket {number}")
    return _json(view)


ROUTES = [
    web.get("/api/tickets", list_tickets),
    web.get("/api/tickets/{number}", get_ticket),
]
