"""Managers' reports in the console: the KPIs and the quarterly complaint analysis of the projects
a person may see (bot.cases.kpis, bot.cases.complaint_analysis — every figure is computed there,
once), as a page with charts, an Excel workbook, a PDF, and the owners'-committee PDF."""
from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any, Sequence
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.orm import Session

from bot.cases import complaint_analysis, kpis
from bot.cases.access import authorize
from bot.console.charts import Series, bar_chart, line_chart
from bot.console.exports import Report, Table, to_excel, to_pdf
from bot.console.session import CLOCK, COMPANY, signed_in
from bot.console.views import INTERFACE, TEMPLATES, _in_store, render
from bot.core.access import Decision, Permission, Principal, visible_projects
from bot.core.clock import to_local
from bot.core.company import Company

QUARTERS_SHOWN = 6
TREND_MONTHS = 6
TREND_KEYS = ("complaint_timeliness", "satisfaction")  # the figures of the trend chart


def _fmt(figure: kpis.Kpi) -> str:
    if figure.value is None:
        return "—"
    if figure.unit == "rate":
        return f"{figure.value * 100:.1f}%（{figure.numerator:g}/{figure.denominator:g}）"
    if figure.unit == "minutes":
        return f"{figure.value:.0f} 分钟"
    if figure.unit == "days":
        return f"{figure.value:.1f} 天"
    return f"{figure.value:g}"


def _quarter(request: web.Request, company: Company) -> tuple[kpis.Period, list[tuple[str, str]]]:
    """The quarter asked for (?quarter=2026Q4), else the current one; and the ones offered."""
    zone = company.default.timezone
    today = to_local(request.app[CLOCK](), zone).date()
    current = kpis.quarter_of(today, zone)
    offered, period = [], current
    for _ in range(QUARTERS_SHOWN):
        offered.append((_key(period), period.label))
        period = kpis.previous(period)
    wanted = request.query.get("quarter")
    if not wanted:
        return current, offered
    try:
        year, quarter = int(wanted[:4]), int(wanted[5:])
        if wanted[4] != "Q" or not 1 <= quarter <= 4:
            raise ValueError(wanted)
    except (ValueError, IndexError):
        raise web.HTTPBadRequest(text="季度格式应为 2026Q4。") from None
    return kpis.quarter_of(date(year, quarter * 3 - 2, 1), zone), offered


def _key(period: kpis.Period) -> str:
    first = to_local(period.start, period.timezone).date()
    return f"{first.year}Q{(first.month - 1) // 3 + 1}"


def _scope(request: web.Request, principal: Principal, company: Company) -> list[str]:
    """The projects asked for (?project=), else all the person serves; `authorize` decides on a
    single one, so asking for another project's report is refused and audited there."""
    wanted = request.query.get("project")
    if wanted:
        if not company.knows(wanted):
            raise web.HTTPBadRequest(text="没有这个项目。")
        return [wanted]
    return sorted(visible_projects(principal, company.codes))


def _rows(rows: Sequence[complaint_analysis.Row]) -> list[list[object]]:
    return [[row.label, row.current, row.previous, row.current - row.previous] for row in rows]


def build_report(session: Session, company: Company, projects: list[str], period: kpis.Period, now: datetime,
                 *, public: bool) -> Report:
    with kpis.report_settings(session):  # set once for all the report's queries
        return _build_report(session, company, projects, period, now, public=public)


def _build_report(session: Session, company: Company, projects: list[str], period: kpis.Period, now: datetime,
                  *, public: bool) -> Report:
    before = kpis.previous(period)
    trend = kpis.months_before(period.end, TREND_MONTHS, company.default.timezone)
    # One pass over the tables for the quarter and the one before, per project; the totals are the
    # projects' figures added up (each carries its numerator and denominator). The complaint
    # analysis reads its rates from the same pass. The trend's months need just the two figures
    # drawn, from a pass of their own over those figures' rows.
    passes = kpis.kpis_by_project_for_periods(session, projects, [period, before], now)
    per_project = passes[0]
    figures = kpis.merge(list(per_project.values()))
    earlier = kpis.by_key(kpis.merge(list(passes[1].values())))
    monthly = [kpis.by_key(month) for month in kpis.kpis_for_periods(session, projects, trend, now, TREND_KEYS)]
    analysis = complaint_analysis.analyse(session, projects, period, before, company.rules, now, figures=passes)
    campaign = str(to_local(period.start, period.timezone).year)
    dimensions = kpis.annual_dimensions(session, projects, campaign, company.default.annual_survey_dimensions)

    def value(figure: kpis.Kpi | None) -> float | None:
        return figure.value if figure is not None else None

    charts = [
        line_chart("投诉处理及时率与客户满意度（近 6 个月）", [m.label for m in trend], [
            Series("投诉处理及时率", [value(m.get("complaint_timeliness")) for m in monthly]),
            Series("客户满意度", [value(m.get("satisfaction")) for m in monthly])], percent=True),
        bar_chart("投诉类型（本季度 / 上季度）", [r.label for r in analysis.by_type[:8]], [
            Series(period.label, [r.current for r in analysis.by_type[:8]]),
            Series(before.label, [r.previous for r in analysis.by_type[:8]])]),
        bar_chart("各项目投诉处理及时率", [company.rules(code).name for code in per_project], [
            Series(period.label, [value(kpis.by_key(per_project[code]).get("complaint_timeliness"))
                                  for code in per_project])], percent=True),
        bar_chart(f"{campaign} 年度满意度调查（GB/T 45698 四个维度，满分 5）", [d.label for d in dimensions], [
            Series("平均分", [d.average for d in dimensions])]),
    ]
    tables = [
        Table("关键指标", ["指标", period.label, before.label], [
            [f.label, _fmt(f), _fmt(earlier[f.key]) if f.key in earlier else "—"] for f in figures]),
        Table("投诉处理率、及时率、满意率", ["指标", period.label, before.label],
              [[c.label, _fmt(c.current), _fmt(c.previous)] for c in analysis.rates]),
        Table("投诉类型", ["类型", "本季度", "上季度", "变化"], _rows(analysis.by_type)),
        Table("投诉级别", ["级别", "本季度", "上季度", "变化"], _rows(analysis.by_tier)),
        Table("投诉原因", ["原因", "本季度", "上季度", "变化"], _rows(analysis.by_cause)),
        Table("楼栋分布", ["楼栋", "本季度", "上季度", "变化"], _rows(analysis.by_building)),
        Table("重复投诉与群诉", ["项目", "本季度", "上季度"], [
            [analysis.repeat_complainants.label, analysis.repeat_complainants.current,
             analysis.repeat_complainants.previous],
            [analysis.group_complaints.label, analysis.group_complaints.current, analysis.group_complaints.previous]]),
        Table("群诉明细", ["工单", "项目", "问题", "地点", "户数", "状态"], [
            [g.number, company.rules(g.project).name if company.knows(g.project) else g.project, g.topic or "",
             g.place or "", g.members, g.status] for g in analysis.groups]),
        Table("重复投诉住户明细", ["房号", "项目", "次数", "工单"], [
            [r.room or "", r.project, r.complaints, "、".join(r.numbers)] for r in analysis.repeaters], personal=True),
        Table("员工工作量（报修汇总）", ["员工", "经手", "已处理", "按时", "按时率", "回访均分"], [
            [s.name, s.held, s.resolved, s.on_time, f"{s.on_time_rate * 100:.0f}%" if s.on_time_rate is not None
             else "—", f"{s.average_score:.1f}" if s.average_score is not None else "—"]
            for s in kpis.staff_workload(session, projects, period, now)], personal=True),
    ]
    names = "、".join(company.rules(code).name for code in projects) if len(projects) <= 3 \
        else f"{len(projects)} 个项目"
    return Report(title="物业服务质量季度报告" if not public else "物业服务质量季度公示", scope=names,
                  period=period.label, previous=before.label, tables=tables, charts=charts, public=public)


async def _report(request: web.Request) -> tuple[Report, dict[str, Any]]:
    signed = await signed_in(request)
    company = request.app[COMPANY]
    period, offered = _quarter(request, company)
    projects = _scope(request, signed.principal, company)
    public = request.query.get("public") == "1"
    now = request.app[CLOCK]()

    def load(session: Session) -> tuple[Decision, Report | None]:
        access = authorize(session, signed.principal, Permission.VIEW_REPORTS,
                           project=projects[0] if len(projects) == 1 else None, interface=INTERFACE,
                           detail=f"report {_key(period)} {'public ' if public else ''}{','.join(projects)}"[:200],
                           now=now)
        if not access.allowed or not projects:
            return access, None
        return access, build_report(session, company, projects, period, now, public=public)

    access, report = await _in_store(request, load)
    if not access.allowed:
        raise web.HTTPForbidden(text="报表只对项目负责人、公司客服部和经理开放。")
    if report is None:
        raise web.HTTPNotFound(text="没有可以查看的项目。")
    query = {k: v for k, v in request.query.items() if k in ("quarter", "project")}
    return report, {"signed": signed, "quarters": offered, "quarter": _key(period),
                    "projects": [(c, company.rules(c).name) for c in sorted(visible_projects(signed.principal,
                                                                                           company.codes))],
                    "project": request.query.get("project", ""), "query": urlencode(query)}


async def report_page(request: web.Request) -> web.Response:
    report, context = await _report(request)
    return render(request, "report.html", report=report, **context)


async def report_excel(request: web.Request) -> web.Response:
    report, context = await _report(request)
    name = f"report-{context['quarter']}{'-public' if report.public else ''}.xlsx"
    return web.Response(body=to_excel(report), headers={"Content-Disposition": f'attachment; filename="{name}"'},
                        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


async def report_pdf(request: web.Request) -> web.Response:
    report, context = await _report(request)
    html = request.app[TEMPLATES].get_template("report_print.html").render(report=report, path="")
    pdf = await asyncio.to_thread(to_pdf, html, str(request.url))
    name = f"report-{context['quarter']}{'-public' if report.public else ''}.pdf"
    return web.Response(body=pdf, headers={"Content-Disposition": f'attachment; filename="{name}"'},
                        content_type="application/pdf")
