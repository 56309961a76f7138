"""The annual survey's results (the console's /surveys page) as an Excel workbook and a PDF, and the
owners'-committee version: the same tables built by the same functions (bot.cases.campaigns,
bot.cases.kpis), rendered through bot.console.exports like the quarterly report.

Who may: whoever may open the page (those who read reports, and the supervisors who run the
survey), for the projects they serve; every export is authorised and audited. The public
version has no table that names a room or quotes a resident, and no average computed from
fewer than `PUBLIC_MIN_ANSWERS` answers (a building where one household answered would give
that household's score away)."""
from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any, Sequence
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.orm import Session

from bot.cases import campaigns, kpis
from bot.cases.access import authorize
from bot.console.charts import Series, bar_chart
from bot.console.exports import Report, Table, to_excel, to_pdf
from bot.console.session import CLOCK, COMPANY, signed_in
from bot.console.views import INTERFACE, TEMPLATES, _in_store
from bot.core.access import Decision, Permission, Principal, decide, visible_projects
from bot.core.clock import to_local
from bot.core.company import Company
from bot.core.privacy import mask_room, redact_text

PUBLIC_MIN_ANSWERS = 3
SUPPRESSED = "—（不足 3 份）"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def survey_permission(principal: Principal) -> Permission:
    """What the survey's page and exports are checked against: reading reports for those who
    read them, else sending notices (supervisors run the survey)."""
    return Permission.VIEW_REPORTS if decide(principal, Permission.VIEW_REPORTS, None).allowed \
        else Permission.SEND_NOTICES


def _average(value: float | None, answered: int, public: bool) -> object:
    if value is None:
        return "—"
    if public and answered < PUBLIC_MIN_ANSWERS:
        return SUPPRESSED
    return round(value, 2)


def _rate(progress: campaigns.Progress) -> str:
    rate = progress.response_rate
    return "—" if rate is None else f"{rate * 100:.1f}%（{progress.answered}/{progress.sent}）"


def _progress_row(label: str, p: campaigns.Progress) -> list[object]:
    return [label, p.waiting, p.paused, p.sent, p.answered, p.no_answer, p.unreachable, _rate(p)]


def build_survey_report(session: Session, company: Company, projects: Sequence[str], campaign: str, *,
                        public: bool, contact_data: bool) -> Report:
    """The page's figures (progress, by dimension, by project and building) and, for the internal
    version, the answers to follow up (low scores and comments)."""
    dimensions = company.default.annual_survey_dimensions
    labels = dict(dimensions)

    def name(code: str) -> str:
        return company.rules(code).name if company.knows(code) else code

    overall = kpis.annual_dimensions(session, projects, campaign, dimensions)
    per_project = {code: kpis.annual_dimensions(session, [code], campaign, dimensions) for code in projects}
    progress = [_progress_row(name(code), campaigns.progress(session, campaign, [code])) for code in projects]
    if len(projects) > 1:
        progress.append(_progress_row("合计", campaigns.progress(session, campaign, projects)))
    places = campaigns.by_place(session, campaign, projects)
    rules = company.default
    remarks = campaigns.remarks(session, campaign, projects, low_max=rules.follow_up.dissatisfied_max_score)

    def when(moment: datetime | None, code: str) -> str:
        zone = company.rules(code).timezone if company.knows(code) else rules.timezone
        return f"{to_local(moment, zone):%Y-%m-%d %H:%M}" if moment is not None else ""

    tables = [
        Table("调查进度", ["项目", "待发送", "已暂停", "已发送", "已答复", "未答复", "无法触达", "答复率"], progress),
        Table("按维度", ["维度", "平均分", "答复数"],
              [[d.label, _average(d.average, d.answered, public), d.answered] for d in overall]),
        Table("各项目按维度", ["项目", *[label for _key, label in dimensions]],
              [[name(code), *[_average(d.average, d.answered, public) for d in per_project[code]]]
               for code in projects]),
        Table("按项目和楼栋", ["项目", "楼栋", "答复数", "总体评分"],
              [[name(p.project), p.building, p.answered, _average(p.average, p.answered, public)] for p in places]),
        Table("低分与意见明细", ["项目", "房号", "总体评分", "低分维度", "意见", "答复时间"], [
            [name(r.project), (r.room if contact_data else mask_room(r.room)) or "",
             r.overall if r.overall is not None else "—", "、".join(labels.get(d, d) for d in r.low),
             redact_text(r.comment) if r.comment else "", when(r.answered_at, r.project)]
            for r in remarks], personal=True),
    ]
    chart = bar_chart(f"{campaign} 年度满意度（四个维度，满分 5）", [d.label for d in overall],
                      [Series("平均分", [d.average if not public or d.answered >= PUBLIC_MIN_ANSWERS else None
                                        for d in overall])])
    scope = "、".join(name(code) for code in projects) if len(projects) <= 3 else f"{len(projects)} 个项目"
    return Report(title="年度满意度调查结果" if not public else "年度满意度调查结果公示", scope=scope,
                  period=f"{campaign} 年度调查", previous="", tables=tables, charts=[chart], public=public)


def _campaign(request: web.Request) -> str:
    campaign = request.match_info["campaign"].strip()[:32]
    if not campaign:
        raise web.HTTPBadRequest(text="请填写调查名称（如 2026）。")
    return campaign


async def _survey_report(request: web.Request, form: str) -> tuple[Report, str]:
    signed = await signed_in(request)
    company, now = request.app[COMPANY], request.app[CLOCK]()
    campaign = _campaign(request)
    wanted = request.query.get("project")
    if wanted and not company.knows(wanted):
        raise web.HTTPBadRequest(text="没有这个项目。")
    projects = [wanted] if wanted else sorted(visible_projects(signed.principal, company.codes))
    public = request.query.get("public") == "1"
    needed = survey_permission(signed.principal)

    def load(session: Session) -> tuple[Decision, Report | None]:
        # One project asked for: `authorize` decides on it (refused, and audited, outside one's own).
        access = authorize(session, signed.principal, needed, project=wanted or None, interface=INTERFACE,
                           detail=f"annual survey {campaign} {form} {'public ' if public else ''}"
                                  f"{','.join(projects)}"[:200], now=now)
        if not access.allowed or not projects:
            return access, None
        return access, build_survey_report(session, company, projects, campaign, public=public,
                                           contact_data=access.contact_data)

    access, report = await _in_store(request, load)
    if not access.allowed:
        raise web.HTTPForbidden(text="满意度调查只对主管、项目负责人、公司客服部和经理开放。")
    if report is None:
        raise web.HTTPNotFound(text="没有可以查看的项目。")
    return report, campaign


def _attachment(campaign: str, public: bool, extension: str) -> dict[str, Any]:
    name = f"survey-{campaign}{'-public' if public else ''}.{extension}"
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return {"Content-Disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"}


async def survey_excel(request: web.Request) -> web.Response:
    report, campaign = await _survey_report(request, "xlsx")
    return web.Response(body=to_excel(report), headers=_attachment(campaign, report.public, "xlsx"),
                        content_type=XLSX)


async def survey_pdf(request: web.Request) -> web.Response:
    report, campaign = await _survey_report(request, "pdf")
    html = request.app[TEMPLATES].get_template("report_print.html").render(report=report, path="")
    pdf = await asyncio.to_thread(to_pdf, html, str(request.url))
    return web.Response(body=pdf, headers=_attachment(campaign, report.public, "pdf"),
                        content_type="application/pdf")
