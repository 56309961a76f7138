"""The console's pages and actions. Each handler: who is signed in (bot.console.session), what
they may do (bot.cases.access.authorize — the one function, which also writes the audit trail),
then one use case of bot.cases in one transaction, then a page or a fragment."""
from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, time
from typing import Any, Callable, TypeVar
from urllib.parse import quote

import jinja2
from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from bot.cases import case_work, handoff, intake, reviews
from bot.cases.access import authorize
from bot.cases.alerts import acknowledge, open_alerts
from bot.cases.escalation import REASON_LABELS_ZH
from bot.cases.handoff import Refusal, Staff
from bot.cases.sign_in import SESSION_HOURS, SignIn, sign_in, sign_out
from bot.cases.staff_directory import list_staff, principal_of
from bot.cases.tickets import find_ticket
from bot.cases.work_queue import QueueQuery, QueueView, queue_counts, work_queue
from bot.console.session import (
    CLOCK,
    COMPANY,
    COOKIE,
    LOGIN_CSRF_COOKIE,
    PATH,
    STORE,
    Signed,
    check_csrf,
    set_cookie,
    signed_in,
)
from bot.core import replies
from bot.core.access import Decision, Permission, Principal, decide, visible_projects
from bot.core.clock import to_local, to_utc_naive
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.lifecycle import OPEN_STATUSES, STATUS_LABELS_ZH, IllegalTransition
from bot.core.phones import normalise_phone
from bot.core.privacy import mask_name, mask_openid, mask_phone, redact_text
from bot.core.sla import overdue_deadlines
from bot.db.models import Job, JobStatus, Resident, ResidentEvent, StaffAlert, StaffMember, Ticket
from bot.db.queue import jobs_with_status, retry_parked

log = logging.getLogger(__name__)

TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
INTERFACE = "console"
T = TypeVar("T")


async def _in_store(request: web.Request, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with request.app[STORE].transaction() as session:
            return work(session)
    return await asyncio.to_thread(run)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[TEMPLATES].get_template(template).render(path=PATH, **context)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


def _local(request: web.Request, project: str | None, moment: datetime | None) -> str:
    if moment is None:
        return ""
    company = request.app[COMPANY]
    rules = company.rules(project) if company.knows(project) else company.default
    return f"{to_local(moment, rules.timezone):%m-%d %H:%M}"


def _countdown(due: datetime | None, now: datetime) -> tuple[str, str]:
    """"剩 2时15分" or "超时 40分", and a CSS class (ok / soon / late)."""
    if due is None:
        return "无时限", "ok"
    left = int((due - now).total_seconds() // 60)
    span = abs(left)
    text = f"{span // 1440}天{span % 1440 // 60}时" if span >= 1440 else f"{span // 60}时{span % 60}分" if span >= 60 \
        else f"{span}分"
    if left < 0:
        return f"超时 {text}", "late"
    return f"剩 {text}", "soon" if left < 240 else "ok"


# What each kind of timeline event is called on the case page (unknown ones show as they are).
EVENT_LABELS = {"created": "受理", "status": "状态", "claimed": "接单", "staff_reply": "回复居民",
                "internal_note": "内部备注", "on_site": "到场", "transferred": "转派", "expected_completion": "预计完成",
                "retiered": "调整级别", "escalated": "上报", "notified": "通知居民", "survey_answer": "回访答复",
                "evidence": "照片", "relayed": "居民消息", "room_corrected": "更正房号", "urgency": "紧急判断",
                "tier_reason": "级别依据", "grouped": "群诉", "asked_again": "再次请求", "linked_case": "关联工单"}


def _labels() -> dict[str, Any]:
    return {"event_labels": EVENT_LABELS, "kinds": {k.value: v for k, v in replies.KIND_LABELS_ZH.items()},
            "priorities": {p.value: v for p, v in replies.PRIORITY_LABELS_ZH.items()},
            "statuses": {s.value: v for s, v in STATUS_LABELS_ZH.items()},
            "reasons": REASON_LABELS_ZH}


# --- signing in -----------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", csrf=token, error=request.query.get("error", ""))
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=1800)
    return response


LOGIN_ERRORS = {SignIn.WRONG: "账号或密码不正确。", SignIn.LOCKED: "连续多次密码错误，账号已暂时锁定，请稍后再试或联系管理员。"}


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or str(form.get("csrf") or "") != expected:
        raise web.HTTPForbidden(text="表单已失效，请刷新登录页后重试。")
    login_name, password = str(form.get("login") or "")[:64], str(form.get("password") or "")[:256]
    now = request.app[CLOCK]()
    attempt = await _in_store(request, lambda session: sign_in(session, login_name, password, now))
    if attempt.outcome is not SignIn.OK or attempt.session_id is None:
        log.warning("console: sign-in refused (%s) for login of %d characters from %s", attempt.outcome.value,
                    len(login_name), request.remote)
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", status=401, csrf=token, error=LOGIN_ERRORS[attempt.outcome])
        set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=1800)
        return response
    log.info("console: staff %s signed in", attempt.member.id if attempt.member else "?")
    response = web.HTTPSeeOther(f"{PATH}/")
    set_cookie(response, request, COOKIE, attempt.session_id, max_age=SESSION_HOURS * 3600)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=PATH)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    signed = await signed_in(request)
    check_csrf(signed, await request.post())
    await _in_store(request, lambda session: sign_out(session, signed.session_id, request.app[CLOCK]()))
    response = web.HTTPSeeOther(f"{PATH}/login")
    response.del_cookie(COOKIE, path=PATH)
    return response


# --- the work queue ---------------------------------------------------------------------------


def _queue_query(request: web.Request, principal: Principal) -> QueueQuery:
    q = request.query
    company = request.app[COMPANY]
    projects = visible_projects(principal, company.codes)
    project = q.get("project") or None
    if project and project not in projects:
        raise web.HTTPForbidden(text="您不负责这个项目。")
    try:
        view = QueueView(q.get("view") or QueueView.OPEN.value)
    except ValueError:
        raise web.HTTPBadRequest(text="未知的视图。") from None
    after = None
    if q.get("after"):
        try:
            stamp, ticket_id = q["after"].rsplit("_", 1)
            after = (datetime.fromisoformat(stamp), int(ticket_id))
        except ValueError:
            raise web.HTTPBadRequest(text="分页参数有误。") from None
    return QueueQuery(projects=projects, view=view, holder_id=principal.actor_id, project=project,
                      kind=q.get("kind") or None, priority=q.get("priority") or None, status=q.get("status") or None,
                      building=(q.get("building") or "").strip()[:16] or None,
                      search=(q.get("q") or "").strip()[:40] or None, after=after)


def _row(request: web.Request, ticket: Ticket, now: datetime, access: Decision) -> dict[str, Any]:
    countdown, urgency = _countdown(ticket.due_at, now)
    resident = ticket.resident
    return {"number": ticket.number, "project": ticket.project, "kind": ticket.kind, "priority": ticket.priority,
            "status": ticket.status, "room": ticket.room or "", "summary": redact_text(ticket.description)[:60],
            "holder": ticket.assignee or "", "countdown": countdown, "urgency": urgency,
            "due": _local(request, ticket.project, ticket.due_at),
            "special": bool(access.special_groups and resident is not None and resident.tags)}


async def queue_page(request: web.Request) -> web.Response:
    signed = await signed_in(request)
    return await _queue(request, signed, "queue.html")


async def queue_rows(request: web.Request) -> web.Response:
    """The rows alone: htmx swaps them in every few seconds, so new cases appear without a reload."""
    signed = await signed_in(request)
    return await _queue(request, signed, "_queue_rows.html")


async def _queue(request: web.Request, signed: Signed, template: str) -> web.Response:
    query = _queue_query(request, signed.principal)
    now = request.app[CLOCK]()

    def load(session: Session) -> tuple[Decision, dict[str, Any]]:
        access = authorize(session, signed.principal, Permission.VIEW_CASE, project=query.project,
                           interface=INTERFACE, detail=f"queue {query.view.value}", now=now)
        if not access.allowed:
            return access, {}
        page = work_queue(session, query, now)
        counts = queue_counts(session, query, now) if template == "queue.html" else {}
        rows = [_row(request, t, now, access) for t in page.tickets]
        after = f"{page.next_after[0].isoformat()}_{page.next_after[1]}" if page.next_after else ""
        return access, {"rows": rows, "counts": counts, "after": after}

    access, data = await _in_store(request, load)
    if not access.allowed:
        raise web.HTTPForbidden(text="您没有查看工单的权限。")
    company = request.app[COMPANY]
    return render(request, template, signed=signed, query=query, views=list(QueueView),
                  projects=[(code, company.rules(code).name) for code in company.codes if code in query.projects],
                  filters={k: v for k, v in request.query.items() if k != "after"}, **data, **_labels())


# --- a case ----------------------------------------------------------------------------------


def _resident_view(resident: Resident | None, access: Decision) -> dict[str, Any] | None:
    if resident is None:
        return None
    full = access.contact_data
    return {"id": resident.id, "name": (resident.name if full else mask_name(resident.name)) or "未登记",
            "phone": (resident.phone if full else mask_phone(resident.phone)) or "未登记",
            "openid": resident.openid if full else mask_openid(resident.openid), "room": resident.room or "",
            "bound": resident.bound_at is not None, "tags": list(resident.tags or []) if access.special_groups else None}


def _clocks(request: web.Request, ticket: Ticket, now: datetime) -> list[dict[str, str]]:
    """The SLA clocks: first response, on site (emergencies), due, final, callback."""
    on_site = next((e.at for e in ticket.events if e.action == case_work.ON_SITE), None)
    missed = set(overdue_deadlines(ticket, now))
    emergency = ticket.priority == Priority.EMERGENCY.value
    clocks = [{"name": "首次响应", "value": _local(request, ticket.project, ticket.claimed_at) or "尚未接单",
               "state": "ok" if ticket.claimed_at else "soon"}]
    if ticket.first_feedback_due_at is not None:
        told = next((e.at for e in ticket.events if e.action == "staff_reply"), None)
        countdown, state = _countdown(ticket.first_feedback_due_at, now)
        clocks.append({"name": "首次反馈", "value": _local(request, ticket.project, told or ticket.first_feedback_due_at),
                       "detail": "已反馈" if told else countdown, "state": "ok" if told else state})
    if emergency:
        clocks.append({"name": "到场", "value": _local(request, ticket.project, on_site) or "尚未到场",
                       "state": "ok" if on_site else ("late" if "due" in missed else "soon")})
    for name, moment, key in (("到场时限" if emergency else "处理时限", ticket.due_at, "due"),
                              ("最终时限", ticket.final_due_at, "final"),
                              ("回访时限", ticket.callback_due_at, "callback")):
        if moment is not None:
            countdown, state = _countdown(moment, now)
            met = (TicketStatus(ticket.status) not in OPEN_STATUSES and key != "callback") or \
                (emergency and key == "due" and on_site is not None)  # the emergency clock is about being there
            clocks.append({"name": name, "value": _local(request, ticket.project, moment),
                           "detail": "已完成" if met else countdown, "state": "late" if key in missed else
                           ("ok" if met else state)})
    return clocks


def _colleagues(session: Session, principal: Principal, project: str) -> list[dict[str, str]]:
    """Who a case may be handed to: enabled staff of its project."""
    people = []
    for member in list_staff(session, include_disabled=False):
        them = principal_of(member)
        if them.staff_id != principal.staff_id and them.serves(project) and them.roles:
            people.append({"id": str(member.id), "name": member.name})
    return people


def _load_case(session: Session, number: str) -> Ticket | None:
    return session.execute(select(Ticket).options(selectinload(Ticket.events), selectinload(Ticket.resident))
                           .where(Ticket.number == number.upper())).scalar_one_or_none()


async def case_page(request: web.Request) -> web.Response:
    signed = await signed_in(request)
    number = request.match_info["number"].upper()
    now = request.app[CLOCK]()
    fragment = request.query.get("part") == "timeline"

    def load(session: Session) -> tuple[Decision | None, dict[str, Any]]:
        ticket = _load_case(session, number)
        if ticket is None:
            return None, {}
        access = authorize(session, signed.principal, Permission.VIEW_CASE, ticket=ticket, interface=INTERFACE,
                           detail="timeline" if fragment else "case page", now=now)
        if not access.allowed:
            return access, {}
        labels = {s.value: v for s, v in STATUS_LABELS_ZH.items()}
        events = [{"at": _local(request, ticket.project, e.at), "actor": e.actor, "action": e.action,
                   "content": e.content if access.contact_data else redact_text(e.content), "result": e.result,
                   "internal": e.action == case_work.INTERNAL_NOTE,
                   "change": f"{labels.get(e.from_status or '', '')} → {labels.get(e.to_status or '', '')}"
                   if e.action == "status" else ""} for e in ticket.events]
        company = request.app[COMPANY]
        return access, {
            "ticket": ticket, "events": events, "resident": _resident_view(ticket.resident, access),
            "clocks": _clocks(request, ticket, now), "open": TicketStatus(ticket.status) in OPEN_STATUSES,
            "mine": ticket.assignee_id == signed.principal.actor_id, "project_name": company.rules(ticket.project).name,
            "colleagues": [] if fragment else _colleagues(session, signed.principal, ticket.project),
            "description": ticket.description if access.contact_data else redact_text(ticket.description),
            "tiers": [p.value for p in case_work.COMPLAINT_TIERS], "created": _local(request, ticket.project,
                                                                                   ticket.created_at)}

    access, data = await _in_store(request, load)
    if access is None:
        raise web.HTTPNotFound(text=f"没有工单 {number}。")
    if not access.allowed:
        raise web.HTTPForbidden(text="这张工单不在您负责的项目或岗位范围内。")
    return render(request, "_timeline.html" if fragment else "case.html", signed=signed, flash=request.query.get("ok"),
                  error=request.query.get("error"), **data, **_labels())


def _when(value: str, request: web.Request, project: str) -> datetime:
    """A date (and time) typed in the console, in the project's local time, as naive UTC."""
    company = request.app[COMPANY]
    zone = company.rules(project).timezone
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise case_work.CaseWorkRefused("日期格式应为 2026-12-05 或 2026-12-05T17:00") from None
    if len(value.strip()) == 10:
        moment = datetime.combine(moment.date(), time(18, 0))
    return to_utc_naive(moment.replace(tzinfo=zone))


ACTIONS = ("claim", "transfer", "on_site", "note", "reply", "expect", "retier", "resolve", "close_outside", "reopen")


async def case_action(request: web.Request) -> web.StreamResponse:
    """One action on a case (a form post): authorised and audited, then done or refused with why."""
    signed = await signed_in(request)
    form = await request.post()
    check_csrf(signed, form)
    number, action = request.match_info["number"].upper(), request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound(text="未知的操作。")
    now = request.app[CLOCK]()
    staff = Staff(id=signed.principal.actor_id, name=signed.principal.name)
    text = str(form.get("text") or "").strip()

    def apply(session: Session) -> tuple[Decision | None, str]:
        ticket = find_ticket(session, number)
        if ticket is None:
            return None, ""
        access = authorize(session, signed.principal, Permission.ACT_ON_CASE, ticket=ticket, interface=INTERFACE,
                           detail=action, now=now)
        if not access.allowed:
            return access, ""
        rules = request.app[COMPANY].rules(ticket.project)
        if action in (handoff.CLAIM, handoff.REPLY, handoff.RESOLVE):
            if action != handoff.CLAIM and not text:
                return access, "请填写内容。"
            outcome = handoff.perform(session, rules, action, number, staff, text, channel=INTERFACE, now=now)
            if not outcome.done:
                return access, _refusal(outcome.refusal, outcome.holder)
        elif action == "transfer":
            target = session.get(StaffMember, int(str(form.get("to") or "0") or 0))
            them = principal_of(target) if target is not None else None
            if them is None or not them.serves(ticket.project) or not them.roles:
                return access, "请选择负责这个项目的同事。"
            case_work.transfer(session, ticket, by=staff, to=Staff(id=them.actor_id, name=them.name), note=text,
                               channel=INTERFACE, now=now)
        elif action == "on_site":
            case_work.mark_on_site(session, rules, ticket, staff, channel=INTERFACE, now=now)
        elif action == "note":
            case_work.add_note(session, ticket, staff, text, channel=INTERFACE, now=now)
        elif action == "expect":
            case_work.expect_completion(session, rules, ticket, staff, when=_when(str(form.get("when") or ""),
                                                                                   request, ticket.project),
                                        reason=text, channel=INTERFACE, now=now)
        elif action == "retier":
            case_work.retier(session, rules, ticket, staff, tier=Priority(str(form.get("tier") or "general")),
                             reason=text, channel=INTERFACE, now=now)
        elif action == "reopen":
            result = reviews.reopen_for_review(session, rules, ticket, actor=f"staff:{staff.name}", words=text,
                                               channel=INTERFACE, now=now)
            if result.outcome not in (reviews.Review.REOPENED, reviews.Review.OPENED, reviews.Review.ALREADY):
                return access, "这张工单还在处理中，或已撤销，无需复议。"
        elif action == "close_outside":
            case_work.close_outside_responsibility(session, rules, ticket, staff, explanation=text,
                                                   department=str(form.get("department") or "").strip(),
                                                   channel=INTERFACE, now=now)
        return access, ""

    try:
        access, problem = await _in_store(request, apply)
    except (case_work.CaseWorkRefused, IllegalTransition, ValueError) as exc:
        access, problem = None, str(exc)
        log.info("console: %s on %s refused: %s", action, number, exc)
        raise web.HTTPSeeOther(f"{PATH}/cases/{number}?error={_quote(problem)}") from None
    if access is None:
        raise web.HTTPNotFound(text=f"没有工单 {number}。")
    if not access.allowed:
        raise web.HTTPForbidden(text="这张工单不在您负责的项目或岗位范围内。")
    if problem:
        raise web.HTTPSeeOther(f"{PATH}/cases/{number}?error={_quote(problem)}")
    raise web.HTTPSeeOther(f"{PATH}/cases/{number}?ok={action}")


def _quote(text: str) -> str:
    return quote(text[:200])


def _refusal(refusal: Refusal | None, holder: str | None) -> str:
    if refusal is Refusal.TAKEN:
        return f"已由 {holder} 接单。"
    if refusal is Refusal.NOT_HOLDER:
        return "只有接单人可以这样做，请先接单。" if holder is None else f"只有接单人（{holder}）可以这样做。"
    if refusal is Refusal.CLOSED:
        return "工单已结束。"
    return "无法完成这个操作。"


# --- 一户一档 -------------------------------------------------------------------------------------


async def household_page(request: web.Request) -> web.Response:
    """Find a household by room, phone or name; its records and every case, newest first."""
    signed = await signed_in(request)
    wanted = (request.query.get("q") or "").strip()[:40]
    now = request.app[CLOCK]()
    projects = visible_projects(signed.principal, request.app[COMPANY].codes)

    def load(session: Session) -> tuple[bool, list[dict[str, Any]]]:
        if not wanted:
            return True, []
        phone = normalise_phone(wanted)
        matches = [Resident.room == wanted, Resident.room.startswith(wanted), Resident.name == wanted]
        if phone:
            matches.append(Resident.phone == phone)
        found = session.execute(select(Resident).options(selectinload(Resident.tickets))
                                .where(Resident.project.in_(sorted(projects)), or_(*matches))
                                .order_by(Resident.room, Resident.id).limit(20)).scalars().all()
        households = []
        for resident in found:
            access = authorize(session, signed.principal, Permission.VIEW_CASE, project=resident.project,
                               resident_id=resident.id, interface=INTERFACE, detail="household file", now=now)
            if not access.allowed:
                continue
            cases = sorted(resident.tickets, key=lambda t: t.created_at, reverse=True)
            record = session.execute(select(ResidentEvent).where(ResidentEvent.resident_id == resident.id)
                                     .order_by(ResidentEvent.id.desc()).limit(20)).scalars().all()
            households.append({"resident": _resident_view(resident, access), "project": resident.project,
                               "record": [{"at": _local(request, e.project, e.at), "actor": e.actor,
                                           "channel": intake.CHANNELS.get(e.channel, e.channel), "action": e.action,
                                           "content": e.content if access.contact_data else redact_text(e.content)}
                                          for e in record],
                               "customer": f"{resident.customer_type} · {resident.property_use} · {resident.occupancy}",
                               "cases": [{"number": t.number, "kind": t.kind, "status": t.status,
                                          "created": _local(request, t.project, t.created_at),
                                          "summary": redact_text(t.description)[:50]} for t in cases]})
        return bool(households) or not found, households

    allowed, households = await _in_store(request, load)
    if not allowed:
        raise web.HTTPForbidden(text="您没有查看住户档案的权限。")
    return render(request, "household.html", signed=signed, wanted=wanted, households=households,
                  channels=intake.CHANNELS, flash=request.query.get("ok"), error=request.query.get("error"),
                  **_labels())


HOUSEHOLD_ACTIONS = {"contact": Permission.ACT_ON_CASE, "case": Permission.ACT_ON_CASE,
                     # Correcting contact data is a supervisor's (the roles that see it unmasked).
                     "correct": Permission.CONFIRM_PHONE}


async def household_action(request: web.Request) -> web.StreamResponse:
    """记录来电/来访, 代为登记工单, 更正资料 — on one household's file."""
    signed = await signed_in(request)
    form = await request.post()
    check_csrf(signed, form)
    action = request.match_info["action"]
    if action not in HOUSEHOLD_ACTIONS:
        raise web.HTTPNotFound(text="未知的操作。")
    resident_id, now = int(request.match_info["resident_id"]), request.app[CLOCK]()
    staff = Staff(id=signed.principal.actor_id, name=signed.principal.name)
    field = {key: str(value) for key, value in form.items()}

    def apply(session: Session) -> tuple[Decision | None, str, str]:
        resident = session.get(Resident, resident_id)
        if resident is None:
            return None, "", ""
        access = authorize(session, signed.principal, HOUSEHOLD_ACTIONS[action], project=resident.project,
                           resident_id=resident.id, interface=INTERFACE, detail=f"household {action}", now=now)
        if not access.allowed:
            return access, "", ""
        back = resident.phone or resident.room or ""
        if action == "contact":
            intake.record_contact(session, resident, staff, channel=field.get("channel", ""),
                                  note=field.get("text", ""), now=now)
        elif action == "case":
            ticket = intake.open_case_for(session, request.app[COMPANY].rules(resident.project), resident, staff,
                                          kind=TicketKind(field.get("kind") or "repair"),
                                          description=field.get("text", ""), room=field.get("room") or None,
                                          channel=field.get("channel", ""), now=now)
            return access, "", f"{PATH}/cases/{ticket.number}?ok=intake"
        else:
            intake.correct_resident(session, resident, staff, name=field.get("name"), phone=field.get("phone"),
                                    room=field.get("room"), now=now)
        return access, back, ""

    try:
        access, back, go = await _in_store(request, apply)
    except (intake.IntakeRefused, ValueError) as exc:
        raise web.HTTPSeeOther(f"{PATH}/households?error={_quote(str(exc))}") from None
    if access is None:
        raise web.HTTPNotFound(text="没有这户住户。")
    if not access.allowed:
        raise web.HTTPForbidden(text="这户住户不在您负责的项目或岗位范围内。")
    raise web.HTTPSeeOther(go or f"{PATH}/households?q={_quote(back)}&ok={action}")


# --- alerts ------------------------------------------------------------------------------------


async def alerts_page(request: web.Request) -> web.Response:
    signed = await signed_in(request)
    now = request.app[CLOCK]()
    projects = visible_projects(signed.principal, request.app[COMPANY].codes)

    def load(session: Session) -> tuple[Decision, list[dict[str, Any]], list[dict[str, Any]]]:
        access = authorize(session, signed.principal, Permission.VIEW_ALERTS, interface=INTERFACE,
                           detail="alerts page", now=now)
        if not access.allowed:
            return access, [], []
        alerts = [{"id": a.id, "reason": a.reason, "project": a.project,
                   "ticket": a.ticket.number if a.ticket else "", "detail": redact_text(a.detail)[:160],
                   "at": _local(request, a.project, a.created_at)} for a in open_alerts(session, projects=projects)]
        jobs = []
        if decide(signed.principal, Permission.VIEW_JOBS, None).allowed:  # parked work: for supervisors
            jobs = [{"id": j.id, "kind": j.kind, "project": j.project, "attempts": j.attempts,
                     "error": redact_text(j.last_error or "")[:160], "at": _local(request, j.project, j.updated_at)}
                    for j in jobs_with_status(session, JobStatus.PARKED, projects=projects)]
        return access, alerts, jobs

    access, items, parked = await _in_store(request, load)
    if not access.allowed:
        raise web.HTTPForbidden(text="您没有查看告警的权限。")
    return render(request, "alerts.html", signed=signed, alerts=items, parked=parked, **_labels())


async def retry_job(request: web.Request) -> web.StreamResponse:
    """A parked job back in the queue (after the cause was fixed), by someone allowed to."""
    signed = await signed_in(request)
    check_csrf(signed, await request.post())
    job_id, now = int(request.match_info["job_id"]), request.app[CLOCK]()

    def apply(session: Session) -> Decision | None:
        job = session.get(Job, job_id)
        if job is None:
            return None
        access = authorize(session, signed.principal, Permission.RETRY_JOB, project=job.project,
                           interface=INTERFACE, detail=f"job {job_id}", now=now)
        if access.allowed:
            retry_parked(session, job_id, now)
        return access

    access = await _in_store(request, apply)
    if access is None:
        raise web.HTTPNotFound(text="没有这项任务。")
    if not access.allowed:
        raise web.HTTPForbidden(text="您没有重试系统任务的权限。")
    raise web.HTTPSeeOther(f"{PATH}/alerts")


async def acknowledge_alert(request: web.Request) -> web.StreamResponse:
    signed = await signed_in(request)
    check_csrf(signed, await request.post())
    alert_id = int(request.match_info["alert_id"])
    now = request.app[CLOCK]()

    def apply(session: Session) -> Decision | None:
        alert = session.get(StaffAlert, alert_id)
        if alert is None:
            return None
        access = authorize(session, signed.principal, Permission.ACK_ALERT, project=alert.project,
                           ticket=alert.ticket, interface=INTERFACE, detail=f"alert {alert_id}", now=now)
        if access.allowed:
            acknowledge(session, alert_id, signed.principal.actor_id, now)
        return access

    access = await _in_store(request, apply)
    if access is None:
        raise web.HTTPNotFound(text="没有这条告警。")
    if not access.allowed:
        raise web.HTTPForbidden(text="这条告警不在您负责的项目范围内。")
    raise web.HTTPSeeOther(f"{PATH}/alerts")


async def home(request: web.Request) -> web.StreamResponse:
    await signed_in(request)
    raise web.HTTPFound(f"{PATH}/queue")

