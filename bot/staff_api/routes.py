"""Staff HTTP API (JSON), protected by bearer tokens; every query is logged by role."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.cases import handoff
from bot.cases.alerts import acknowledge, open_alerts
from bot.cases.handoff import Outcome, Refusal, Staff
from bot.cases.household import PhoneChangeError, confirm_phone_change
from bot.cases.staff_views import StaffRole, alert_view, job_view, search_tickets, ticket_view
from bot.cases.tickets import find_ticket
from bot.core.kinds import TicketKind, TicketStatus
from bot.core.lifecycle import IllegalTransition
from bot.core.rules import ProjectRules
from bot.db.models import JobStatus, Ticket
from bot.db.queue import jobs_with_status, retry_parked
from bot.staff_api.keys import CLOCK, RULES, STORE, TOKENS

log = logging.getLogger(__name__)

MAX_LIMIT = 500


def _error(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def _json(value: object) -> web.Response:
    return web.json_response(value, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def role_of(request: web.Request) -> StaffRole:
    tokens = request.app[TOKENS]
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    for configured, role in ((tokens.manager, StaffRole.MANAGER), (tokens.agent, StaffRole.AGENT)):
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
    filters: dict[str, Any] = dict(
        kind=_choice(q.get("kind"), {k.value for k in TicketKind}, "kind"),
        status=_choice(q.get("status"), {s.value for s in TicketStatus}, "status"),
        resident=q.get("resident") or None,
        created_from=_day_start(q.get("from"), rules, next_day=False),
        created_to=_day_start(q.get("to"), rules, next_day=True),
        overdue_at=request.app[CLOCK]() if q.get("overdue") in ("1", "true", "yes") else None,
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


async def _json_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(web.HTTPBadRequest, "the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise _error(web.HTTPBadRequest, "the body must be a JSON object")
    return body


def _staff_of(body: dict) -> Staff:
    name = str(body.get("staff") or "").strip()[:48]
    if not name:
        raise _error(web.HTTPBadRequest, "say who you are: {\"staff\": \"your name\"}")
    return Staff(id=f"api:{name}", name=name)


_REFUSAL_STATUS = {Refusal.NO_SUCH_TICKET: web.HTTPNotFound, Refusal.CLOSED: web.HTTPConflict,
                   Refusal.TAKEN: web.HTTPConflict, Refusal.NOT_HOLDER: web.HTTPConflict}


async def _staff_action(request: web.Request, action: str, text_field: str | None) -> web.Response:
    """claim / reply / resolve through bot.cases.handoff, the same functions the Telegram bot calls."""
    role = role_of(request)
    rules, store = request.app[RULES], request.app[STORE]
    number = request.match_info["number"].upper()
    body = await _json_body(request)
    staff = _staff_of(body)
    text = str(body.get(text_field) or "").strip() if text_field else ""
    if text_field and not text:
        raise _error(web.HTTPBadRequest, f"{text_field} is required")
    log.info("staff API: %s (%s) %s ticket %s", staff.id, role.value, action, number)
    now = request.app[CLOCK]()

    def apply() -> tuple[Outcome, dict | None]:
        with store.transaction() as session:
            outcome = handoff.perform(session, rules, action, number, staff, text, channel="console", now=now)
            ticket = find_ticket(session, number) if outcome.done else None
            if ticket is not None:
                session.flush()
                return outcome, ticket_view(ticket, role, rules)
            return outcome, None

    try:
        outcome, view = await asyncio.to_thread(apply)
    except IllegalTransition as exc:
        raise _error(web.HTTPConflict, str(exc)) from exc
    if not outcome.done:
        refusal = outcome.refusal or Refusal.CLOSED
        holder = f" (held by {outcome.holder})" if outcome.holder else ""
        raise _error(_REFUSAL_STATUS[refusal], f"{action} refused: {refusal.value}{holder}")
    return _json(view)


async def claim(request: web.Request) -> web.Response:
    """接单: the first one wins; the others get 409 with the holder's name."""
    return await _staff_action(request, handoff.CLAIM, None)


async def reply(request: web.Request) -> web.Response:
    """回复: the holder's words to the resident (customer-service or template message)."""
    return await _staff_action(request, handoff.REPLY, "text")


async def resolve(request: web.Request) -> web.Response:
    """办结: the work is done; the satisfaction callback is scheduled with it."""
    return await _staff_action(request, handoff.RESOLVE, "note")


async def list_alerts(request: web.Request) -> web.Response:
    role = role_of(request)
    rules, store = request.app[RULES], request.app[STORE]
    log.info("staff API: %s lists open alerts", role.value)

    def query() -> list[dict]:
        with store.transaction() as session:
            return [alert_view(a, rules) for a in open_alerts(session)]

    items = await asyncio.to_thread(query)
    return _json({"count": len(items), "alerts": items})


def _id(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError as exc:
        raise _error(web.HTTPBadRequest, f"{name} must be a number") from exc


async def acknowledge_alert(request: web.Request) -> web.Response:
    role_of(request)
    rules, store = request.app[RULES], request.app[STORE]
    body = await _json_body(request)
    alert_id = _id(request, "alert_id")
    now = request.app[CLOCK]()

    def apply() -> dict | None:
        with store.transaction() as session:
            alert = acknowledge(session, alert_id, f"staff:{_staff_of(body).name}", now)
            return alert_view(alert, rules) if alert else None

    view = await asyncio.to_thread(apply)
    if view is None:
        raise _error(web.HTTPNotFound, f"no alert {alert_id}")
    return _json(view)


async def list_jobs(request: web.Request) -> web.Response:
    """Scheduled work by status; `parked` is what gave up and needs a person."""
    role = role_of(request)
    rules, store = request.app[RULES], request.app[STORE]
    status = _choice(request.query.get("status"), {s.value for s in JobStatus}, "status") or JobStatus.PARKED.value
    log.info("staff API: %s lists %s jobs", role.value, status)

    def query() -> list[dict]:
        with store.transaction() as session:
            return [job_view(j, rules) for j in jobs_with_status(session, JobStatus(status))]

    items = await asyncio.to_thread(query)
    return _json({"count": len(items), "jobs": items})


async def retry_job(request: web.Request) -> web.Response:
    role = role_of(request)
    rules, store = request.app[RULES], request.app[STORE]
    job_id = _id(request, "job_id")
    log.info("staff API: %s retries job %d", role.value, job_id)
    now = request.app[CLOCK]()

    def apply() -> dict | None:
        with store.transaction() as session:
            job = retry_parked(session, job_id, now)
            return job_view(job, rules) if job else None

    view = await asyncio.to_thread(apply)
    if view is None:
        raise _error(web.HTTPConflict, f"job {job_id} is not parked")
    return _json(view)


async def confirm_phone(request: web.Request) -> web.Response:
    """核实手机号: staff phoned the new number; the household file takes it and the request is done."""
    role = role_of(request)
    rules, store = request.app[RULES], request.app[STORE]
    number = request.match_info["number"].upper()
    staff = _staff_of(await _json_body(request))
    log.info("staff API: %s (%s) confirms the phone change %s", staff.id, role.value, number)
    now = request.app[CLOCK]()

    def apply() -> dict:
        with store.transaction() as session:
            ticket = confirm_phone_change(session, rules, number, actor=staff.id, channel="console", now=now)
            session.flush()
            return ticket_view(ticket, role, rules)

    try:
        return _json(await asyncio.to_thread(apply))
    except PhoneChangeError as exc:
        raise _error(web.HTTPConflict, str(exc)) from exc


ROUTES = [
    web.get("/api/tickets", list_tickets),
    web.get("/api/tickets/{number}", get_ticket),
    web.post("/api/tickets/{number}/claim", claim),
    web.post("/api/tickets/{number}/reply", reply),
    web.post("/api/tickets/{number}/resolve", resolve),
    web.post("/api/tickets/{number}/confirm-phone", confirm_phone),
    web.get("/api/alerts", list_alerts),
    web.post("/api/alerts/{alert_id}/ack", acknowledge_alert),
    web.get("/api/jobs", list_jobs),
    web.post("/api/jobs/{job_id}/retry", retry_job),
]
