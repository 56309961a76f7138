"""Reaching residents first, from the console: notices (停水停电, 施工, 公示, 温馨提示) and the annual
satisfaction survey. Composing and sending go through bot.cases.notices and bot.cases.campaigns;
every page and action is authorised and audited."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases import campaigns, kpis, notices
from bot.cases.access import authorize
from bot.console.charts import Series, bar_chart
from bot.console.session import CLOCK, COMPANY, PATH, Signed, check_csrf, signed_in
from bot.console.survey_exports import survey_permission
from bot.console.views import INTERFACE, _in_store, _local, render
from bot.core.access import Permission, visible_projects
from bot.core.clock import to_utc_naive
from bot.db.models import ResidentNotice

KINDS = {"outage": "停水停电", "works": "施工", "public": "公示", "reminder": "温馨提示"}
PER_MINUTE = 30  # the annual survey's pace (WeChat template messages; residents answer in chat)


def _project(request: web.Request, signed: Signed, value: str) -> str:
    company = request.app[COMPANY]
    if not company.knows(value):
        raise web.HTTPBadRequest(text="没有这个项目。")
    return value


def _when(request: web.Request, project: str, value: str) -> datetime | None:
    if not value.strip():
        return None
    zone = request.app[COMPANY].rules(project).timezone
    try:
        return to_utc_naive(datetime.fromisoformat(value.strip()).replace(tzinfo=zone))
    except ValueError:
        raise notices.NoticeError("时间格式应为 2026-12-05T09:00") from None


def _words(value: str) -> list[str]:
    return [w for w in value.replace("，", ",").replace("、", ",").replace(" ", ",").split(",") if w.strip()]


# --- notices ---------------------------------------------------------------------------------


async def notices_page(request: web.Request) -> web.Response:
    signed = await signed_in(request)
    company, now = request.app[COMPANY], request.app[CLOCK]()
    projects = sorted(visible_projects(signed.principal, company.codes))

    def load(session: Session) -> tuple[bool, list[dict[str, Any]]]:
        access = authorize(session, signed.principal, Permission.SEND_NOTICES, interface=INTERFACE,
                           detail="notices page", now=now)
        if not access.allowed:
            return False, []
        rows = session.execute(select(ResidentNotice).where(ResidentNotice.project.in_(projects),
                                                            ResidentNotice.kind.in_(list(KINDS)))
                               .order_by(ResidentNotice.id.desc()).limit(50)).scalars().all()
        return True, [{"id": n.id, "project": company.rules(n.project).name, "kind": KINDS.get(n.kind, n.kind),
                       "title": n.title, "status": n.status, "send_at": _local(request, n.project, n.send_at),
                       "counts": notices.delivery_counts(session, n.id)} for n in rows]

    allowed, rows = await _in_store(request, load)
    if not allowed:
        raise web.HTTPForbidden(text="发布通知需要主管或以上岗位。")
    return render(request, "notices.html", signed=signed, notices=rows, kinds=KINDS,
                  projects=[(c, company.rules(c).name) for c in projects], error=request.query.get("error"),
                  preview=None)


async def compose_notice(request: web.Request) -> web.StreamResponse:
    """Compose a draft and show who would get it (the preview); 发送 schedules it."""
    signed = await signed_in(request)
    form = {k: str(v) for k, v in (await request.post()).items()}
    check_csrf(signed, form)  # type: ignore[arg-type]
    company, now = request.app[COMPANY], request.app[CLOCK]()
    project = _project(request, signed, form.get("project", ""))
    rules = company.rules(project)

    def apply(session: Session) -> tuple[bool, int | None]:
        access = authorize(session, signed.principal, Permission.SEND_NOTICES, project=project, interface=INTERFACE,
                           detail="compose notice", now=now)
        if not access.allowed:
            return False, None
        notice = notices.compose(session, rules, kind=form.get("kind", ""), title=form.get("title", ""),
                                 body=form.get("body", ""), buildings=_words(form.get("buildings", "")),
                                 rooms=_words(form.get("rooms", "")), starts_at=_when(request, project,
                                                                                     form.get("starts_at", "")),
                                 ends_at=_when(request, project, form.get("ends_at", "")),
                                 send_at=_when(request, project, form.get("send_at", "")),
                                 actor=signed.principal.actor_id, now=now)
        session.flush()
        return True, notice.id

    try:
        allowed, notice_id = await _in_store(request, apply)
    except notices.NoticeError as exc:
        raise web.HTTPSeeOther(f"{PATH}/notices?error={quote(str(exc)[:200])}") from None
    if not allowed:
        raise web.HTTPForbidden(text="这个项目的通知不归您发布。")
    raise web.HTTPSeeOther(f"{PATH}/notices/{notice_id}")


async def notice_page(request: web.Request) -> web.Response:
    signed = await signed_in(request)
    company, now = request.app[COMPANY], request.app[CLOCK]()
    notice_id = int(request.match_info["notice_id"])

    def load(session: Session) -> tuple[bool | None, dict[str, Any]]:
        notice = session.get(ResidentNotice, notice_id)
        if notice is None:
            return None, {}
        access = authorize(session, signed.principal, Permission.SEND_NOTICES, project=notice.project,
                           interface=INTERFACE, detail=f"notice {notice_id}", now=now)
        if not access.allowed:
            return False, {}
        shown = notices.preview(session, company.rules(notice.project), notice)
        return True, {"notice": notice, "kind": KINDS.get(notice.kind, notice.kind), "preview": shown,
                      "counts": notices.delivery_counts(session, notice.id),
                      "project": company.rules(notice.project).name}

    allowed, data = await _in_store(request, load)
    if allowed is None:
        raise web.HTTPNotFound(text="没有这条通知。")
    if not allowed:
        raise web.HTTPForbidden(text="这个项目的通知不归您发布。")
    return render(request, "notice.html", signed=signed, flash=request.query.get("ok"), **data)


async def notice_action(request: web.Request) -> web.StreamResponse:
    """发送 (schedule: one delivery per household, at the project's pace) or 撤回 (cancel what is unsent)."""
    signed = await signed_in(request)
    check_csrf(signed, await request.post())
    company, now = request.app[COMPANY], request.app[CLOCK]()
    notice_id, action = int(request.match_info["notice_id"]), request.match_info["action"]
    if action not in ("send", "cancel"):
        raise web.HTTPNotFound(text="未知的操作。")

    def apply(session: Session) -> bool | None:
        notice = session.get(ResidentNotice, notice_id)
        if notice is None:
            return None
        access = authorize(session, signed.principal, Permission.SEND_NOTICES, project=notice.project,
                           interface=INTERFACE, detail=f"notice {notice_id} {action}", now=now)
        if access.allowed:
            if action == "send":
                notices.schedule(session, company.rules(notice.project), notice, now)
            else:
                notices.cancel(session, notice, now)
        return access.allowed

    allowed = await _in_store(request, apply)
    if allowed is None:
        raise web.HTTPNotFound(text="没有这条通知。")
    if not allowed:
        raise web.HTTPForbidden(text="这个项目的通知不归您发布。")
    raise web.HTTPSeeOther(f"{PATH}/notices/{notice_id}?ok={action}")


# --- the annual survey ------------------------------------------------------------------------------


async def surveys_page(request: web.Request) -> web.Response:
    signed = await signed_in(request)
    company, now = request.app[COMPANY], request.app[CLOCK]()
    projects = sorted(visible_projects(signed.principal, company.codes))
    campaign = (request.query.get("campaign") or str(now.year)).strip()[:32]

    # Those who read reports, and those who run the survey (supervisors), see its page (and its exports).
    needed = survey_permission(signed.principal)

    def load(session: Session) -> tuple[bool, dict[str, Any]]:
        access = authorize(session, signed.principal, needed, interface=INTERFACE,
                           detail=f"annual survey {campaign}", now=now)
        if not access.allowed:
            return False, {}
        dims = kpis.annual_dimensions(session, projects, campaign, company.default.annual_survey_dimensions)
        places = campaigns.by_place(session, campaign, projects)
        chart = bar_chart(f"{campaign} 年度满意度（四个维度，满分 5）", [d.label for d in dims],
                          [Series("平均分", [d.average for d in dims])])
        return True, {"progress": campaigns.progress(session, campaign, projects), "dimensions": dims,
                      "places": [{"project": company.rules(p.project).name if company.knows(p.project) else p.project,
                                  "building": p.building, "answered": p.answered,
                                  "average": f"{p.average:.2f}" if p.average is not None else "—"} for p in places],
                      "chart": chart}

    allowed, data = await _in_store(request, load)
    if not allowed:
        raise web.HTTPForbidden(text="满意度调查只对主管、项目负责人、公司客服部和经理开放。")
    return render(request, "surveys.html", signed=signed, campaign=campaign, flash=request.query.get("ok"),
                  error=request.query.get("error"),
                  projects=[(c, company.rules(c).name) for c in projects],
                  all_dimensions=company.default.annual_survey_dimensions, **data)


async def survey_action(request: web.Request) -> web.StreamResponse:
    """开始 / 暂停 / 继续 the campaign for the chosen projects; 整改反馈 to the low scorers."""
    signed = await signed_in(request)
    form = await request.post()
    check_csrf(signed, form)
    company, now = request.app[COMPANY], request.app[CLOCK]()
    action = request.match_info["action"]
    campaign = str(form.get("campaign") or "").strip()[:32]
    if action not in ("start", "pause", "resume", "improved") or not campaign:
        raise web.HTTPBadRequest(text="请填写调查名称（如 2026）。")
    mine = visible_projects(signed.principal, company.codes)
    chosen = [str(p) for p in form.getall("project", [])] or sorted(mine)
    for code in chosen:
        _project(request, signed, code)

    def apply(session: Session) -> bool:
        for code in chosen:
            access = authorize(session, signed.principal, Permission.SEND_NOTICES, project=code,
                               interface=INTERFACE, detail=f"annual survey {campaign} {action}", now=now)
            if not access.allowed:
                return False
        for code in chosen:
            rules = company.rules(code)
            if action == "start":
                campaigns.start(session, rules, campaign, dimensions=[str(d) for d in form.getall("dimension", [])],
                                per_minute=PER_MINUTE, now=now)
            elif action == "pause":
                campaigns.pause(session, campaign, [code], now)
            elif action == "resume":
                campaigns.resume(session, campaign, [code], per_minute=PER_MINUTE, now=now)
            else:
                campaigns.tell_improvement(session, rules, campaign, dimension=str(form.get("dimension") or ""),
                                           title=str(form.get("title") or "满意度调查整改反馈")[:20],
                                           text=str(form.get("text") or ""), actor=signed.principal.actor_id, now=now)
        return True

    try:
        allowed = await _in_store(request, apply)
    except notices.NoticeError as exc:
        raise web.HTTPSeeOther(f"{PATH}/surveys?campaign={quote(campaign)}&error={quote(str(exc)[:200])}") from None
    if not allowed:
        raise web.HTTPForbidden(text="这些项目的调查不归您安排。")
    raise web.HTTPSeeOther(f"{PATH}/surveys?campaign={quote(campaign)}&ok={action}")
