"""Staff HTTP API (JSON). Every request acts as the person its bearer token belongs to
(per-person tokens, stored hashed: bot.cases.staff_directory); what they may see and do, and
how much personal data they see, is decided and audited by bot.cases.access.authorize."""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, TypeVar

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bot.cases import handoff, notices
from bot.cases.access import audit_entries, audit_view, authorize
from bot.cases.alerts import acknowledge, open_alerts
from bot.cases.handoff import Outcome, Refusal, Staff
from bot.cases.household import PhoneChangeError, confirm_phone_change
from bot.cases.staff_directory import authenticate_token, find_staff, principal_of
from bot.cases.staff_views import alert_view, delivery_summary, job_view, notice_view, search_tickets, ticket_view
from bot.cases.tickets import find_ticket
from bot.core import notices as notice_states
from bot.core.access import ALL_PROJECTS, Decision, Permission, Principal, decide, visible_projects
from bot.core.clock import to_utc_naive
from bot.core.kinds import TicketKind, TicketStatus
from bot.core.lifecycle import IllegalTransition
from bot.core.rules import ProjectRules
from bot.db.models import Job, JobStatus, NoticeDelivery, ResidentNotice, StaffAlert, Ticket
from bot.db.queue import jobs_with_status, retry_parked
from bot.staff_api.keys import CLOCK, COMPANY, STORE

log = logging.getLogger(__name__)

MAX_LIMIT = 500
INTERFACE = "api"
T = TypeVar("T")


def _error(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def _json(value: object) -> web.Response:
    return web.json_response(value, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def _forbidden(decision: Decision) -> web.HTTPException:
    return _error(web.HTTPForbidden, f"not allowed: {decision.reason}")


async def _in_store(request: web.Request, work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction off the event loop (it commits, audit rows included)."""
    store = request.app[STORE]

    def run() -> T:
        with store.transaction() as session:
            return work(session)

    return await asyncio.to_thread(run)


async def principal_of_request(request: web.Request) -> Principal:
    """The staff member whose token the request carries; 401 (logged) for none, an unknown,
    revoked or disabled one. The body never says who acts."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    now = request.app[CLOCK]()

    def find(session: Session) -> Principal | None:
        member = authenticate_token(session, token, now) if token else None
        return principal_of(member) if member is not None else None

    principal = await _in_store(request, find)
    if principal is None:
        log.warning("staff API: refused %s %s from %s (no valid staff token)", request.method, request.path,
                    request.remote)
        raise _error(web.HTTPUnauthorized, "a valid staff token is required")
    return principal


def _day_start(value: str | None, request: web.Request, *, next_day: bool) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise _error(web.HTTPBadRequest, f"bad date {value!r}, use YYYY-MM-DD") from exc
    zone = request.app[COMPANY].default.timezone
    return datetime.combine(day + timedelta(days=1) if next_day else day, time(0), tzinfo=zone)


def _choice(value: str | None, allowed: set[str], name: str) -> str | None:
    if value and value not in allowed:
        raise _error(web.HTTPBadRequest, f"unknown {name} {value!r}; one of {sorted(allowed)}")
    return value or None


def _limit(value: str | None) -> int:
    try:
        return min(max(int(value or 100), 1), MAX_LIMIT)
    except ValueError as exc:
        raise _error(web.HTTPBadRequest, "limit must be a number") from exc


def _scope(request: web.Request, principal: Principal, permission: Permission) -> frozenset[str]:
    """The projects a company-wide list shows this person: those they serve, or the one asked
    for with ?project= (403 when they do not serve it, 400 when it does not exist)."""
    company = request.app[COMPANY]
    wanted = request.query.get("project")
    if wanted and not company.knows(wanted):
        raise _error(web.HTTPBadRequest, f"unknown project {wanted!r}")
    decision = decide(principal, permission, wanted or None)
    if not decision.allowed:
        raise _forbidden(decision)
    return frozenset({wanted}) if wanted else visible_projects(principal, company.codes)


async def list_tickets(request: web.Request) -> web.Response:
    principal = await principal_of_request(request)
    company, q = request.app[COMPANY], request.query
    projects = _scope(request, principal, Permission.VIEW_CASE)
    filters: dict[str, Any] = dict(
        projects=projects,
        kind=_choice(q.get("kind"), {k.value for k in TicketKind}, "kind"),
        status=_choice(q.get("status"), {s.value for s in TicketStatus}, "status"),
        resident=q.get("resident") or None,
        created_from=_day_start(q.get("from"), request, next_day=False),
        created_to=_day_start(q.get("to"), request, next_day=True),
        overdue_at=request.app[CLOCK]() if q.get("overdue") in ("1", "true", "yes") else None,
        limit=_limit(q.get("limit")),
    )
    log.info("staff API: %s lists tickets of %d project(s) kind=%s status=%s by_resident=%s", principal.actor_id,
             len(projects), filters["kind"], filters["status"], bool(filters["resident"]))
    now = request.app[CLOCK]()

    def query(session: Session) -> list[dict]:
        views = []
        for ticket in search_tickets(session, **filters):
            # Each case shown is a read of personal data (room, maybe name and phone): audited.
            access = authorize(session, principal, Permission.VIEW_CASE, ticket=ticket, interface=INTERFACE,
                               detail="list", now=now)
            if access.allowed:
                views.append(ticket_view(ticket, access, company.rules(ticket.project)))
        return views

    tickets = await _in_store(request, query)
    return _json({"count": len(tickets), "tickets": tickets})


def _ticket_with_history(session: Session, number: str) -> Ticket | None:
    return session.execute(
        select(Ticket).options(selectinload(Ticket.events), selectinload(Ticket.resident))
        .where(Ticket.number == number)
    ).scalar_one_or_none()


async def get_ticket(request: web.Request) -> web.Response:
    principal = await principal_of_request(request)
    company = request.app[COMPANY]
    number = request.match_info["number"].upper()
    log.info("staff API: %s opens ticket %s", principal.actor_id, number)
    now = request.app[CLOCK]()

    def query(session: Session) -> tuple[Decision, dict] | None:
        ticket = _ticket_with_history(session, number)
        if ticket is None:
            return None
        access = authorize(session, principal, Permission.VIEW_CASE, ticket=ticket, interface=INTERFACE, now=now)
        return access, (ticket_view(ticket, access, company.rules(ticket.project)) if access.allowed else {})

    found = await _in_store(request, query)
    if found is None:
        raise _error(web.HTTPNotFound, f"no ticket {number}")
    access, view = found
    if not access.allowed:
        raise _forbidden(access)
    return _json(view)


async def _json_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(web.HTTPBadRequest, "the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise _error(web.HTTPBadRequest, "the body must be a JSON object")
    return body


def staff_acting(principal: Principal) -> Staff:
    """Who a case's timeline names: the person the credential belongs to."""
    return Staff(id=principal.actor_id, name=principal.name)


_REFUSAL_STATUS = {Refusal.NO_SUCH_TICKET: web.HTTPNotFound, Refusal.CLOSED: web.HTTPConflict,
                   Refusal.TAKEN: web.HTTPConflict, Refusal.NOT_HOLDER: web.HTTPConflict}


async def _staff_action(request: web.Request, action: str, text_field: str | None) -> web.Response:
    """claim / reply / resolve through bot.cases.handoff, the same functions the Telegram bot calls."""
    principal = await principal_of_request(request)
    company = request.app[COMPANY]
    number = request.match_info["number"].upper()
    body = await _json_body(request)
    text = str(body.get(text_field) or "").strip() if text_field else ""
    if text_field and not text:
        raise _error(web.HTTPBadRequest, f"{text_field} is required")
    log.info("staff API: %s %s ticket %s", principal.actor_id, action, number)
    now = request.app[CLOCK]()

    def apply(session: Session) -> tuple[Decision | None, Outcome | None, dict | None]:
        ticket = find_ticket(session, number)
        if ticket is None:
            return None, None, None
        access = authorize(session, principal, Permission.ACT_ON_CASE, ticket=ticket, interface=INTERFACE,
                           detail=action, now=now)
        if not access.allowed:
            return access, None, None
        rules = company.rules(ticket.project)
        outcome = handoff.perform(session, rules, action, number, staff_acting(principal), text, channel="console",
                                  now=now)
        if not outcome.done:
            return access, outcome, None
        session.flush()
        return access, outcome, ticket_view(ticket, access, rules)

    try:
        access, outcome, view = await _in_store(request, apply)
    except IllegalTransition as exc:
        raise _error(web.HTTPConflict, str(exc)) from exc
    if access is None:
        raise _error(web.HTTPNotFound, f"no ticket {number}")
    if not access.allowed:
        raise _forbidden(access)
    if outcome is not None and not outcome.done:
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
    principal = await principal_of_request(request)
    company = request.app[COMPANY]
    projects = _scope(request, principal, Permission.VIEW_ALERTS)
    log.info("staff API: %s lists open alerts of %d project(s)", principal.actor_id, len(projects))

    def query(session: Session) -> list[dict]:
        return [alert_view(a, company.rules(a.project)) for a in open_alerts(session, projects=projects)]

    items = await _in_store(request, query)
    return _json({"count": len(items), "alerts": items})


def _id(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError as exc:
        raise _error(web.HTTPBadRequest, f"{name} must be a number") from exc


async def acknowledge_alert(request: web.Request) -> web.Response:
    principal = await principal_of_request(request)
    company = request.app[COMPANY]
    alert_id = _id(request, "alert_id")
    now = request.app[CLOCK]()

    def apply(session: Session) -> tuple[Decision, dict] | None:
        alert = session.get(StaffAlert, alert_id)
        if alert is None:
            return None
        access = authorize(session, principal, Permission.ACK_ALERT, project=alert.project, ticket=alert.ticket,
                           interface=INTERFACE, detail=f"alert {alert_id}", now=now)
        if access.allowed:
            acknowledge(session, alert_id, principal.actor_id, now)
        return access, alert_view(alert, company.rules(alert.project))

    found = await _in_store(request, apply)
    if found is None:
        raise _error(web.HTTPNotFound, f"no alert {alert_id}")
    access, view = found
    if not access.allowed:
        raise _forbidden(access)
    return _json(view)


async def list_jobs(request: web.Request) -> web.Response:
    """Scheduled work by status; `parked` is what gave up and needs a person."""
    principal = await principal_of_request(request)
    company = request.app[COMPANY]
    projects = _scope(request, principal, Permission.VIEW_JOBS)
    status = _choice(request.query.get("status"), {s.value for s in JobStatus}, "status") or JobStatus.PARKED.value
    log.info("staff API: %s lists %s jobs", principal.actor_id, status)

    def query(session: Session) -> list[dict]:
        return [job_view(j, company.rules(j.project))
                for j in jobs_with_status(session, JobStatus(status), projects=projects)]

    items = await _in_store(request, query)
    return _json({"count": len(items), "jobs": items})


async def retry_job(request: web.Request) -> web.Response:
    principal = await principal_of_request(request)
    company = request.app[COMPANY]
    job_id = _id(request, "job_id")
    log.info("staff API: %s retries job %d", principal.actor_id, job_id)
    now = request.app[CLOCK]()

    def apply(session: Session) -> tuple[Decision | None, dict | None]:
        job = session.get(Job, job_id)
        if job is None:
            return None, None
        access = authorize(session, principal, Permission.RETRY_JOB, project=job.project, interface=INTERFACE,
                           detail=f"job {job_id}", now=now)
        if not access.allowed:
            return access, None
        retried = retry_parked(session, job_id, now)
        return access, job_view(retried, company.rules(retried.project)) if retried else None

    access, view = await _in_store(request, apply)
    if access is not None and not access.allowed:
        raise _forbidden(access)
    if view is None:
        raise _error(web.HTTPConflict, f"job {job_id} is not parked")
    return _json(view)


async def confirm_phone(request: web.Request) -> web.Response:
    """核实手机号: staff phoned the new number; the household file takes it and the request is done."""
    principal = await principal_of_request(request)
    company = request.app[COMPANY]
    number = request.match_info["number"].upper()
    log.info("staff API: %s confirms the phone change %s", principal.actor_id, number)
    now = request.app[CLOCK]()

    def apply(session: Session) -> tuple[Decision | None, dict | None]:
        ticket = find_ticket(session, number)
        if ticket is None:
            return None, None
        access = authorize(session, principal, Permission.CONFIRM_PHONE, ticket=ticket, interface=INTERFACE,
                           now=now)
        if not access.allowed:
            return access, None
        rules = company.rules(ticket.project)
        confirmed = confirm_phone_change(session, rules, number, actor=principal.actor_id, channel="console", now=now)
        session.flush()
        return access, ticket_view(confirmed, access, rules)

    try:
        access, view = await _in_store(request, apply)
    except PhoneChangeError as exc:
        raise _error(web.HTTPConflict, str(exc)) from exc
    if access is None:
        raise _error(web.HTTPConflict, f"{number} is not a phone-change request")
    if not access.allowed:
        raise _forbidden(access)
    return _json(view)


async def list_audit(request: web.Request) -> web.Response:
    """审计: who read or changed what. A project head sees their projects' entries; a
    company-wide reader (every project) sees all, including refusals outside any project."""
    principal = await principal_of_request(request)
    company, q = request.app[COMPANY], request.query
    projects = _scope(request, principal, Permission.READ_AUDIT)
    company_wide = ALL_PROJECTS in principal.projects and not q.get("project")
    now = request.app[CLOCK]()

    def query(session: Session) -> list[dict]:
        authorize(session, principal, Permission.READ_AUDIT, project=q.get("project") or None, interface=INTERFACE,
                  detail="audit query", now=now)
        staff = find_staff(session, q["staff"]) if q.get("staff") else None
        if q.get("staff") and staff is None:
            return []
        rows = audit_entries(session, staff_id=staff.id if staff else None, projects=None if company_wide else projects,
                             ticket_number=q.get("ticket") or None,
                             since=_day_start(q.get("from"), request, next_day=False),
                             until=_day_start(q.get("to"), request, next_day=True),
                             action=q.get("action") or None, limit=_limit(q.get("limit")))
        return [audit_view(row, company.default.timezone) for row in rows]

    items = await _in_store(request, query)
    return _json({"count": len(items), "entries": items})


# --- notices to residents (the console's 通知, for staff tools): bot.cases.notices --------------

NOTICE_STATUSES = {notice_states.DRAFT, notice_states.SCHEDULED, notice_states.SENDING, notice_states.SENT,
                   notice_states.CANCELLED}


def _notice_time(value: object, rules: ProjectRules, name: str) -> datetime | None:
    """An ISO time; without an offset it is the project's local time (as in the console's form)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _error(web.HTTPBadRequest, f"{name} must be a time such as 2026-12-05T09:00")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise _error(web.HTTPBadRequest, f"{name} must be a time such as 2026-12-05T09:00") from exc
    return to_utc_naive(moment if moment.tzinfo is not None else moment.replace(tzinfo=rules.timezone))


def _names(value: object, name: str) -> list[str]:
    """Buildings or rooms: a list of strings, or one string separated by commas, 、 or spaces."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value.replace("，", ",").replace("、", ",").replace(" ", ",").split(",")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _error(web.HTTPBadRequest, f"{name} must be a list of strings")
    return [item.strip() for item in value if item.strip()]


def _text(body: dict, name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise _error(web.HTTPBadRequest, f"{name} must be a string")
    return value


def _counts_of(session: Session, notice_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {notice_id: {} for notice_id in notice_ids}
    if notice_ids:
        for notice_id, status, count in session.execute(
                select(NoticeDelivery.notice_id, NoticeDelivery.status, func.count())
                .where(NoticeDelivery.notice_id.in_(notice_ids))
                .group_by(NoticeDelivery.notice_id, NoticeDelivery.status)):
            counts[notice_id][status] = count
    return counts


async def list_notices(request: web.Request) -> web.Response:
    """The notices of the projects one serves (or ?project=), newest first; staff-composed kinds
    unless ?kind= asks for another (入住回访, 节日问候); ?status=, ?limit=."""
    principal = await principal_of_request(request)
    company, q = request.app[COMPANY], request.query
    wanted = q.get("project") or None
    if wanted and not company.knows(wanted):
        raise _error(web.HTTPBadRequest, f"unknown project {wanted!r}")
    kind = _choice(q.get("kind"), set(notice_states.KINDS), "kind")
    status = _choice(q.get("status"), NOTICE_STATUSES, "status")
    limit = _limit(q.get("limit"))
    now = request.app[CLOCK]()

    def query(session: Session) -> tuple[Decision, list[dict]]:
        access = authorize(session, principal, Permission.SEND_NOTICES, project=wanted, interface=INTERFACE,
                           detail="notices list", now=now)
        if not access.allowed:
            return access, []
        projects = [wanted] if wanted else sorted(visible_projects(principal, company.codes))
        stmt = select(ResidentNotice).where(ResidentNotice.project.in_(projects),
                                            ResidentNotice.kind.in_([kind] if kind else notice_states.STAFF_KINDS))
        if status:
            stmt = stmt.where(ResidentNotice.status == status)
        rows = session.execute(stmt.order_by(ResidentNotice.id.desc()).limit(limit)).scalars().all()
        counts = _counts_of(session, [n.id for n in rows])
        return access, [notice_view(n, access, company.rules(n.project), counts[n.id]) for n in rows]

    access, items = await _in_store(request, query)
    if not access.allowed:
        raise _forbidden(access)
    log.info("staff API: %s lists %d notice(s)", principal.actor_id, len(items))
    return _json({"count": len(items), "notices": items})


def _preview_view(shown: notices.Preview) -> dict[str, Any]:
    return {"recipients": shown.recipients, "sample": shown.sample, "text": shown.text}


async def compose_notice(request: web.Request) -> web.Response:
    """A draft notice, as the console's form makes it: {"project", "kind", "title", "body",
    "buildings", "rooms", "starts_at", "ends_at", "send_at"} (times in the project's local time
    unless they carry an offset). 201 with the notice and its preview; nothing is sent until
    it is scheduled."""
    principal = await principal_of_request(request)
    company = request.app[COMPANY]
    body = await _json_body(request)
    project = _text(body, "project")
    if not company.knows(project):
        raise _error(web.HTTPBadRequest, f"unknown project {project!r}")
    rules = company.rules(project)
    kind = _text(body, "kind")
    if kind not in notice_states.STAFF_KINDS:  # 入住回访 and 节日问候 are the worker's
        raise _error(web.HTTPBadRequest, f"unknown kind {kind!r}; one of {', '.join(notice_states.STAFF_KINDS)}")
    title, text = _text(body, "title"), _text(body, "body")
    buildings, rooms = _names(body.get("buildings"), "buildings"), _names(body.get("rooms"), "rooms")
    starts_at, ends_at, send_at = (_notice_time(body.get(name), rules, name) for name in ("starts_at", "ends_at",
                                                                                          "send_at"))
    now = request.app[CLOCK]()

    def apply(session: Session) -> tuple[Decision, dict | None, str | None]:
        access = authorize(session, principal, Permission.SEND_NOTICES, project=project, interface=INTERFACE,
                           detail="compose notice", now=now)
        if not access.allowed:
            return access, None, None
        try:
            with session.begin_nested():  # a refused draft leaves nothing; the audit row stays
                notice = notices.compose(session, rules, kind=kind, title=title, body=text, buildings=buildings,
                                         rooms=rooms, starts_at=starts_at, ends_at=ends_at, send_at=send_at,
                                         actor=principal.actor_id, now=now)
        except notices.NoticeError as exc:
            return access, None, str(exc)
        return access, {**notice_view(notice, access, rules, {}),
                        "preview": _preview_view(notices.preview(session, rules, notice))}, None

    access, view, problem = await _in_store(request, apply)
    if not access.allowed:
        raise _forbidden(access)
    if problem is not None:
        raise _error(web.HTTPBadRequest, problem)
    assert view is not None
    log.info("staff API: %s composed notice %d of %s", principal.actor_id, view["id"], project)
    return web.json_response(view, status=201, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def _notice_work(request: web.Request, principal: Principal, action: str,
                 work: Callable[[Session, ProjectRules, ResidentNotice, Decision], dict]) -> Callable[[Session], Any]:
    """Find the notice, authorise (and audit) `action` on its project, then do `work`: None for
    no such notice, else (decision, view or None, a refusal's message or None)."""
    company, now = request.app[COMPANY], request.app[CLOCK]()
    notice_id = _id(request, "notice_id")

    def apply(session: Session) -> tuple[Decision, dict | None, str | None] | None:
        notice = session.get(ResidentNotice, notice_id)
        if notice is None:
            return None
        access = authorize(session, principal, Permission.SEND_NOTICES, project=notice.project, interface=INTERFACE,
                           detail=f"notice {notice_id} {action}", now=now)
        if not access.allowed:
            return access, None, None
        try:
            with session.begin_nested():
                return access, work(session, company.rules(notice.project), notice, access), None
        except notices.NoticeError as exc:
            return access, None, str(exc)

    return apply


async def _on_notice(request: web.Request, action: str,
                     work: Callable[[Session, ProjectRules, ResidentNotice, Decision], dict]) -> web.Response:
    principal = await principal_of_request(request)
    notice_id = _id(request, "notice_id")
    found = await _in_store(request, _notice_work(request, principal, action, work))
    if found is None:
        raise _error(web.HTTPNotFound, f"no notice {notice_id}")
    access, view, problem = found
    if not access.allowed:
        raise _forbidden(access)
    if problem is not None:
        raise _error(web.HTTPConflict, problem)
    log.info("staff API: %s %s notice %d", principal.actor_id, action, notice_id)
    return _json(view)


async def get_notice(request: web.Request) -> web.Response:
    def work(session: Session, rules: ProjectRules, notice: ResidentNotice, access: Decision) -> dict:
        return notice_view(notice, access, rules, notices.delivery_counts(session, notice.id))

    return await _on_notice(request, "view", work)


async def preview_notice(request: web.Request) -> web.Response:
    """Who it reaches now (bound, following household contacts of its target; a few of them,
    masked) and the text each receives."""
    def work(session: Session, rules: ProjectRules, notice: ResidentNotice, access: Decision) -> dict:
        return {"id": notice.id, **_preview_view(notices.preview(session, rules, notice))}

    return await _on_notice(request, "preview", work)


async def schedule_notice(request: web.Request) -> web.Response:
    """发送: one delivery per recipient at the project's pace; again, only what is missing (409 once
    withdrawn)."""
    now = request.app[CLOCK]()

    def work(session: Session, rules: ProjectRules, notice: ResidentNotice, access: Decision) -> dict:
        created, already = notices.schedule(session, rules, notice, now)
        session.flush()
        return {"scheduled": created, "already": already,
                "notice": notice_view(notice, access, rules, notices.delivery_counts(session, notice.id))}

    return await _on_notice(request, "schedule", work)


async def withdraw_notice(request: web.Request) -> web.Response:
    """撤回: what is not sent yet is not sent."""
    now = request.app[CLOCK]()

    def work(session: Session, rules: ProjectRules, notice: ResidentNotice, access: Decision) -> dict:
        withdrawn = notices.cancel(session, notice, now)
        session.flush()
        return {"withdrawn": withdrawn,
                "notice": notice_view(notice, access, rules, notices.delivery_counts(session, notice.id))}

    return await _on_notice(request, "withdraw", work)


async def notice_deliveries(request: web.Request) -> web.Response:
    """How its deliveries stand: sent, failed, unreachable, pending, withdrawn, total."""
    def work(session: Session, rules: ProjectRules, notice: ResidentNotice, access: Decision) -> dict:
        return {"id": notice.id, "status": notice.status, **delivery_summary(notices.delivery_counts(session,
                                                                                                    notice.id))}

    return await _on_notice(request, "deliveries", work)


async def whoami(request: web.Request) -> web.Response:
    """The person the token belongs to, their roles and projects (nothing else is needed to sign in)."""
    principal = await principal_of_request(request)
    return _json({"staff_id": principal.staff_id, "name": principal.name,
                  "roles": sorted(r.value for r in principal.roles), "projects": sorted(principal.projects)})


ROUTES = [
    web.get("/api/me", whoami),
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
    web.get("/api/audit", list_audit),
    web.get("/api/notices", list_notices),
    web.post("/api/notices", compose_notice),
    web.get("/api/notices/{notice_id}", get_notice),
    web.get("/api/notices/{notice_id}/preview", preview_notice),
    web.post("/api/notices/{notice_id}/schedule", schedule_notice),
    web.post("/api/notices/{notice_id}/withdraw", withdraw_notice),
    web.get("/api/notices/{notice_id}/deliveries", notice_deliveries),
]
