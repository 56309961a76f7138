"""Managers' figures (KPIs): every one defined here, once, as a function of the case, event and
survey tables for a period and a set of projects.

Conventions every figure follows:

- **Periods** are `[start, end)` in naive UTC, built from local calendar days (`quarter_of`,
  `month_of`); `as_of` is `min(period.end, now)`.
- **A complaint** is a resident's complaint: kind `complaint` with a resident, not cancelled. A
  group case (群诉, no resident) is a record that links its members, who are counted; it is
  reported on its own by bot.cases.complaint_analysis.
- **Handled** (处理完毕) is `COALESCE(resolved_at, closed_at)`: the latest completion (办结), or
  the closing of a case found outside the company's responsibility (explained, no callback). A
  reopened case has no `resolved_at` until it is finished again.
- **A case's deadline** is `due_at`, but for a complaint never later than its hard limit
  `final_due_at` (`min(due_at, final_due_at)`): a reopened case is measured by the fresh deadline
  its reopening set, a moved one (预计完成时间) by the new date, and neither can pass the hard limit.
- **Not yet decided is left out**: a case whose deadline is still ahead at `now` and that has not
  met it yet counts neither way (a running quarter's rate is not dragged down by the work that is
  simply not due yet).
- **Callback cases** (the cases that get a satisfaction callback, bot.cases.follow_ups.on_resolved):
  repairs and complaints of a resident, and enquiries a staff member took over. "Resolved in the
  period" means their `resolved_at` (the latest completion) lies in it.
- A callback answer is **satisfied** when its verdict is satisfied or neutral (满意、基本满意), as
  in bot.cases.surveys.CampaignSummary; answers nobody could read (`unclear`) are left out.

Everything is computed by the database in a few aggregate queries (one pass over the tickets of
the projects, one over the surveys, one over the residents, grouped by project); nothing loads
the cases into Python. The per-project figures add up: `kpis()` over several projects is the
sum of their numerators over the sum of their denominators.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Collection, Iterator, Mapping, NamedTuple, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, Integer, and_, case, cast, exists, extract, false, func, literal, or_, select, text
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from bot.core.clock import to_local, to_utc_naive, utcnow
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.lifecycle import OPEN_STATUS_VALUES
from bot.core.rules import ProjectRules
from bot.db.models import Resident, Survey, SurveyScore, SurveyStatus, Ticket, TicketEvent

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)
CALLBACK_WITHIN = timedelta(hours=24)  # 24小时回访率
REPAIR_WITHIN = timedelta(hours=24)  # 一般报修24小时完成率
INFO_FRESH = timedelta(days=365)  # 客户信息更新率: updated within 12 months
CLAIM_EVENT, ESCALATED_EVENT, ON_SITE_EVENT, STATUS_EVENT = "claimed", "escalated", "on_site", "status"
HAPPY_VERDICTS = ("satisfied", "neutral")
JUDGED_VERDICTS = ("satisfied", "neutral", "dissatisfied")


# --- periods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """`[start, end)` in naive UTC, with the label managers read (2026年第4季度, 2026年11月)."""

    start: datetime
    end: datetime
    label: str
    timezone: ZoneInfo = field(default=SHANGHAI, compare=False)
    kind: str = "custom"  # quarter / month / custom

    @property
    def code(self) -> str:
        """A file-name-safe name: 2026-Q4, 2026-11, or the local dates of a custom span."""
        first = to_local(self.start, self.timezone).date()
        if self.kind == "quarter":
            return f"{first.year}-Q{(first.month - 1) // 3 + 1}"
        if self.kind == "month":
            return f"{first.year}-{first.month:02d}"
        return f"{first.isoformat()}_{to_local(self.end, self.timezone).date().isoformat()}"

    def as_of(self, now: datetime) -> datetime:
        """The moment a state figure (backlog, household files) is read at: the period's end, or now."""
        return min(self.end, now)


def _zone(timezone: ZoneInfo | str) -> ZoneInfo:
    return timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)


def _midnight(day: date, timezone: ZoneInfo) -> datetime:
    return to_utc_naive(datetime(day.year, day.month, day.day, tzinfo=timezone))


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def quarter_of(day: date, timezone: ZoneInfo | str = SHANGHAI) -> Period:
    """The calendar quarter (local time) that contains `day`."""
    zone = _zone(timezone)
    first = date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    quarter = (first.month - 1) // 3 + 1
    return Period(_midnight(first, zone), _midnight(_add_months(first, 3), zone), f"{first.year}年第{quarter}季度",
                  zone, "quarter")


def month_of(day: date, timezone: ZoneInfo | str = SHANGHAI) -> Period:
    """The calendar month (local time) that contains `day`."""
    zone = _zone(timezone)
    first = date(day.year, day.month, 1)
    return Period(_midnight(first, zone), _midnight(_add_months(first, 1), zone), f"{first.year}年{first.month}月",
                  zone, "month")


def previous(period: Period) -> Period:
    """The period before: the quarter (month) before a quarter (month); a custom span the same
    length right before it."""
    first = to_local(period.start, period.timezone).date()
    if period.kind == "quarter":
        return quarter_of(_add_months(first, -3), period.timezone)
    if period.kind == "month":
        return month_of(_add_months(first, -1), period.timezone)
    return Period(period.start - (period.end - period.start), period.start, f"{period.label}（上期）",
                  period.timezone, "custom")


def months_before(period_end: datetime, n: int, timezone: ZoneInfo | str = SHANGHAI) -> list[Period]:
    """The `n` calendar months that end at `period_end` (exclusive, naive UTC), oldest first: the
    months of a trend line."""
    zone = _zone(timezone)
    last = month_of(to_local(period_end - timedelta(microseconds=1), zone).date(), zone)
    first_day = to_local(last.start, zone).date()
    return [month_of(_add_months(first_day, -back), zone) for back in range(n - 1, -1, -1)]


def last_day(period: Period) -> date:
    """The period's last local calendar day."""
    return to_local(period.end - timedelta(microseconds=1), period.timezone).date()


# --- the figures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    numerator: float
    denominator: float
    unit: str  # rate / minutes / days / count
    value: float | None  # numerator / denominator (the count itself for "count"); None without a denominator


@dataclass(frozen=True)
class KpiDefinition:
    key: str
    label: str
    unit: str
    formula: str  # what managers read under the figure


DEFINITIONS: tuple[KpiDefinition, ...] = (
    KpiDefinition("complaint_timeliness", "投诉处理及时率", "rate",
                  "期限落在本期的投诉中，在期限内处理完毕的比例（期限取 min(due_at, final_due_at)）"),
    KpiDefinition("complaint_handling", "投诉处理率", "rate", "本期受理的投诉中，在期末前处理完毕的比例"),
    KpiDefinition("complaint_satisfaction", "投诉满意率", "rate", "本期答复的投诉回访中，满意或基本满意的比例"),
    KpiDefinition("satisfaction", "客户满意度", "rate", "本期答复的全部回访中，满意或基本满意的比例"),
    KpiDefinition("callback_rate", "回访率", "rate", "本期办结的应回访工单中，已发出回访的比例"),
    KpiDefinition("callback_24h", "24小时回访率", "rate", "本期办结的应回访工单中，办结后 24 小时内发出回访的比例"),
    KpiDefinition("emergency_onsite", "紧急到场及时率", "rate", "本期受理的紧急报修中，在到场时限内有人到场或开始处理的比例"),
    KpiDefinition("repair_24h", "一般报修24小时完成率", "rate", "本期受理的一般报修中，24 小时内处理完毕的比例"),
    KpiDefinition("reopen_rate", "重开率", "rate", "本期办结的应回访工单中，曾被重新打开的比例"),
    KpiDefinition("first_time_fix", "一次解决率", "rate", "本期办结的应回访工单中，从未重新打开的比例"),
    KpiDefinition("claim_wait", "平均接单等待", "minutes", "本期受理并已接单的升级工单，从受理到首次接单的平均分钟数"),
    KpiDefinition("backlog", "积压工单", "count", "期末（或此刻）仍未处理完毕的工单数"),
    KpiDefinition("backlog_age", "平均积压天数", "days", "积压工单自受理起的平均天数"),
    KpiDefinition("info_accuracy", "客户信息准确率", "rate", "住户档案中，已核验绑定（房号+手机号）的比例"),
    KpiDefinition("info_update", "客户信息更新率", "rate", "住户档案中，12 个月内更新过的比例"),
)
_BY_KEY = {d.key: d for d in DEFINITIONS}
KPI_KEYS: tuple[str, ...] = tuple(d.key for d in DEFINITIONS)


def definition(key: str) -> KpiDefinition:
    return _BY_KEY[key]


def make_kpi(key: str, numerator: float, denominator: float) -> Kpi:
    """A figure from its two sums (a count's value is its numerator)."""
    spec = _BY_KEY[key]
    if spec.unit == "count":
        return Kpi(key, spec.label, float(numerator), 1.0, spec.unit, float(numerator))
    value = numerator / denominator if denominator else None
    return Kpi(key, spec.label, float(numerator), float(denominator), spec.unit, value)


# The sums each figure is made of (numerator, denominator), by KPI key.
_PARTS: dict[str, tuple[str, str]] = {
    "complaint_timeliness": ("timely", "timely_due"),
    "complaint_handling": ("handled", "received"),
    "complaint_satisfaction": ("complaint_happy", "complaint_judged"),
    "satisfaction": ("happy", "judged"),
    "callback_rate": ("called", "callback_cases"),
    "callback_24h": ("called_24h", "callback_cases"),
    "emergency_onsite": ("arrived", "emergencies"),
    "repair_24h": ("done_24h", "repairs"),
    "reopen_rate": ("reopened", "resolved"),
    "first_time_fix": ("fixed_first_time", "resolved"),
    "claim_wait": ("wait_minutes", "claimed"),
    "backlog": ("backlog", "one"),
    "backlog_age": ("backlog_days", "backlog"),
    "info_accuracy": ("households_bound", "households"),
    "info_update": ("households_fresh", "households"),
}


Sums = dict[str, float]  # named sums of one project (or several, added up)


def _add(total: Sums, more: Mapping[str, float]) -> Sums:
    for name, value in more.items():
        total[name] = total.get(name, 0.0) + value
    return total


def _assemble(sums: Mapping[str, float]) -> list[Kpi]:
    part = dict(sums)
    part["fixed_first_time"] = part.get("resolved", 0.0) - part.get("reopened", 0.0)
    return [make_kpi(key, part.get(_PARTS[key][0], 0.0), part.get(_PARTS[key][1], 0.0)) for key in KPI_KEYS]


def kpis(session: Session, projects: Collection[str], period: Period, now: datetime) -> list[Kpi]:
    """Every figure of DEFINITIONS, in that order, for these projects together."""
    total: Sums = {}
    for sums in _sums_by_project(session, projects, period, now).values():
        _add(total, sums)
    return _assemble(total)


def kpis_by_project(session: Session, projects: Collection[str], period: Period,
                    now: datetime) -> dict[str, list[Kpi]]:
    """The same figures for each project on its own, from the same queries (grouped by project)."""
    return {code: _assemble(sums) for code, sums in _sums_by_project(session, projects, period, now).items()}


def merge(groups: Sequence[Sequence[Kpi]]) -> list[Kpi]:
    """The figures of several scopes together (numerators and denominators added up)."""
    numerators: Sums = {}
    denominators: Sums = {}
    for group in groups:
        for kpi in group:
            _add(numerators, {kpi.key: kpi.numerator})
            _add(denominators, {kpi.key: kpi.denominator})
    return [make_kpi(key, numerators.get(key, 0.0), denominators.get(key, 0.0)) for key in KPI_KEYS]


def by_key(figures: Sequence[Kpi]) -> dict[str, Kpi]:
    return {kpi.key: kpi for kpi in figures}


# --- the SQL --------------------------------------------------------------------------------


def _in(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def _seconds(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    """Whole seconds from `earlier` to `later` (SQLite keeps times as text)."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", later), Integer) - cast(func.strftime("%s", earlier), Integer)
    return extract("epoch", later - earlier)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _only_if(condition: ColumnElement[bool], test: ColumnElement[bool]) -> ColumnElement[int]:
    """1 when both hold; `test` (a correlated subquery) is evaluated only where `condition` holds."""
    return case((condition, case((test, 1), else_=0)), else_=0)


def handled_at() -> ColumnElement[Any]:
    """When the case was dealt with: its latest completion, or its closing without one."""
    return func.coalesce(Ticket.resolved_at, Ticket.closed_at)


def deadline() -> ColumnElement[Any]:
    """The deadline a case is measured by: `due_at`, never later than a complaint's hard limit."""
    return case((Ticket.due_at.is_(None), Ticket.final_due_at),
                (and_(Ticket.final_due_at.is_not(None), Ticket.final_due_at < Ticket.due_at), Ticket.final_due_at),
                else_=Ticket.due_at)


def resident_complaint() -> ColumnElement[bool]:
    """A resident's complaint that stands (not cancelled; group cases are not counted)."""
    return and_(Ticket.kind == TicketKind.COMPLAINT.value, Ticket.resident_id.is_not(None),
                Ticket.status != TicketStatus.CANCELLED.value)


def complaints_received(period: Period) -> ColumnElement[bool]:
    """The complaints of a period: residents' complaints received (created) in it."""
    return and_(resident_complaint(), _in(Ticket.created_at, period))


def callback_case() -> ColumnElement[bool]:
    """Cases that get a satisfaction callback when finished (bot.cases.follow_ups.on_resolved)."""
    return and_(Ticket.resident_id.is_not(None),
                or_(Ticket.kind.in_((TicketKind.REPAIR.value, TicketKind.COMPLAINT.value)),
                    and_(Ticket.kind == TicketKind.ENQUIRY.value, Ticket.assignee_id.is_not(None))))


def is_emergency() -> ColumnElement[bool]:
    return and_(Ticket.kind == TicketKind.REPAIR.value, Ticket.priority == Priority.EMERGENCY.value)


def arrived_in_time() -> ColumnElement[bool]:
    """Someone was there, or work had started (or was done), by the emergency's deadline: an
    `on_site` event (到场), or a status event to in_progress or resolved, at or before `due_at`."""
    event = aliased(TicketEvent)
    return exists().where(event.ticket_id == Ticket.id, event.at <= Ticket.due_at,
                          or_(event.action == ON_SITE_EVENT,
                              and_(event.action == STATUS_EVENT,
                                   event.to_status.in_((TicketStatus.IN_PROGRESS.value,
                                                        TicketStatus.RESOLVED.value)))))


def met_deadline() -> ColumnElement[bool]:
    """The case met its deadline: an emergency repair by arriving in time, any other case by being
    handled by its deadline (a case without one: by being handled)."""
    handled, limit = handled_at(), deadline()
    return case((is_emergency(), arrived_in_time()),
                (limit.is_(None), handled.is_not(None)),
                else_=and_(handled.is_not(None), handled <= limit))


def _reopened() -> ColumnElement[bool]:
    event = aliased(TicketEvent)
    return exists().where(event.ticket_id == Ticket.id, event.action == STATUS_EVENT,
                          event.to_status == TicketStatus.REOPENED.value)


def _called_back(dialect: str, within: timedelta | None = None) -> ColumnElement[bool]:
    """A callback survey went out (or was answered) for the case's latest completion."""
    survey = aliased(Survey)
    went = func.coalesce(survey.sent_at, survey.answered_at)
    conditions = [survey.ticket_id == Ticket.id, survey.kind == "callback", went.is_not(None),
                  went >= Ticket.resolved_at]
    if within is not None:
        conditions.append(_seconds(dialect, went, Ticket.resolved_at) <= within.total_seconds())
    return exists().where(*conditions)


def _escalated() -> ColumnElement[bool]:
    event = aliased(TicketEvent)
    return exists().where(event.ticket_id == Ticket.id, event.action == ESCALATED_EVENT)


def first_claim() -> ColumnElement[Any]:
    """The first 接单: the first `claimed` event, else `claimed_at` (a case assigned by 转派)."""
    event = aliased(TicketEvent)
    first = select(func.min(event.at)).where(event.ticket_id == Ticket.id, event.action == CLAIM_EVENT)
    return func.coalesce(first.scalar_subquery(), Ticket.claimed_at)


def open_at(as_of: datetime, now: datetime) -> ColumnElement[bool]:
    """Open at `as_of`: by status when that is now; for a past moment, reconstructed from the
    columns (received before it, not cancelled, not handled before it — a case reopened since and
    still open counts as open then)."""
    if as_of >= now:
        return and_(Ticket.status.in_(OPEN_STATUS_VALUES), Ticket.created_at <= as_of)
    handled = handled_at()
    return and_(Ticket.created_at < as_of, Ticket.status != TicketStatus.CANCELLED.value,
                or_(handled.is_(None), handled >= as_of))


@contextmanager
def _without_jit(session: Session) -> Iterator[None]:
    """PostgreSQL would compile these one-pass aggregates (their correlated subqueries make them look
    costly) and spend longer compiling than running them: JIT is off for them, then as it was."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    before = session.execute(text("SELECT set_config('jit', 'off', true)")).scalar()
    try:
        yield
    finally:
        session.execute(text("SELECT set_config('jit', :value, true)"), {"value": before})


def _scope(column: Any, projects: Collection[str]) -> ColumnElement[bool]:
    codes = sorted(set(projects))
    return column.in_(codes) if codes else false()


def _ticket_sums(session: Session, projects: Collection[str], period: Period, now: datetime,
                 dialect: str) -> dict[str, Sums]:
    as_of = period.as_of(now)
    handled, limit = handled_at(), deadline()
    created_in = _in(Ticket.created_at, period)
    not_cancelled = Ticket.status != TicketStatus.CANCELLED.value
    complaint_due = and_(resident_complaint(), _in(limit, period))
    resolved_case = and_(callback_case(), _in(Ticket.resolved_at, period))
    emergency = and_(is_emergency(), not_cancelled, created_in)
    repair = and_(Ticket.kind == TicketKind.REPAIR.value, not_cancelled, created_in,
                  or_(Ticket.priority.is_(None), Ticket.priority != Priority.EMERGENCY.value))
    claimed = and_(created_in, Ticket.claimed_at.is_not(None))
    backlog = open_at(as_of, now)
    met = and_(handled.is_not(None), handled <= limit)
    done_24h = and_(handled.is_not(None), _seconds(dialect, handled, Ticket.created_at) <= REPAIR_WITHIN.total_seconds())
    rows = select(
        Ticket.project.label("project"),
        _flag(complaint_due).label("complaint_due"),
        _flag(and_(complaint_due, met)).label("complaint_met"),
        _flag(limit <= now).label("deadline_passed"),
        _flag(complaints_received(period)).label("received"),
        _flag(and_(complaints_received(period), handled < as_of)).label("handled"),
        _flag(resolved_case).label("resolved"),
        _flag(Ticket.resolved_at <= now - CALLBACK_WITHIN).label("resolved_long_ago"),
        _only_if(resolved_case, _called_back(dialect)).label("called"),
        _only_if(resolved_case, _called_back(dialect, CALLBACK_WITHIN)).label("called_24h"),
        _only_if(resolved_case, _reopened()).label("reopened"),
        _flag(emergency).label("emergency"),
        _only_if(emergency, arrived_in_time()).label("arrived"),
        _flag(Ticket.due_at <= now).label("due_passed"),
        _flag(repair).label("repair"),
        _flag(and_(repair, done_24h)).label("done_24h"),
        _flag(Ticket.created_at <= now - REPAIR_WITHIN).label("created_long_ago"),
        case((claimed, case((_escalated(), _seconds(dialect, first_claim(), Ticket.created_at)), else_=None)),
             else_=None).label("wait_seconds"),
        _flag(backlog).label("backlog"),
        case((backlog, _seconds(dialect, literal(as_of, DateTime()), Ticket.created_at)), else_=0).label("age_seconds"),
    ).where(_scope(Ticket.project, projects),
            or_(created_in, _in(Ticket.resolved_at, period), _in(limit, period), backlog)
    ).offset(0).subquery()  # OFFSET 0: each row's flags computed once, not inlined into every sum that reads them
    r = rows.c
    total = func.sum
    query = select(
        r.project,
        total(_flag(and_(r.complaint_due == 1, r.complaint_met == 1))),
        total(_flag(and_(r.complaint_due == 1, or_(r.complaint_met == 1, r.deadline_passed == 1)))),
        total(r.handled), total(r.received),
        total(r.called), total(r.called_24h),
        total(_flag(and_(r.resolved == 1, or_(r.called == 1, r.resolved_long_ago == 1)))),
        total(r.reopened), total(r.resolved),
        total(r.arrived), total(_flag(and_(r.emergency == 1, or_(r.arrived == 1, r.due_passed == 1)))),
        total(r.done_24h), total(_flag(and_(r.repair == 1, or_(r.done_24h == 1, r.created_long_ago == 1)))),
        total(r.wait_seconds), func.count(r.wait_seconds),
        total(r.backlog), total(r.age_seconds),
    ).group_by(r.project)
    names = ("timely", "timely_due", "handled", "received", "called", "called_24h", "callback_cases", "reopened",
             "resolved", "arrived", "emergencies", "done_24h", "repairs", "wait_seconds", "claimed", "backlog",
             "age_seconds")
    found: dict[str, Sums] = {}
    with _without_jit(session):
        result = session.execute(query).all()
    for project, *values in result:
        sums = {name: float(value or 0) for name, value in zip(names, values)}
        sums["wait_minutes"] = sums.pop("wait_seconds") / 60
        sums["backlog_days"] = sums.pop("age_seconds") / 86400
        found[project] = sums
    return found


def _survey_sums(session: Session, projects: Collection[str], period: Period) -> dict[str, Sums]:
    happy = Survey.verdict.in_(HAPPY_VERDICTS)
    complaint = Ticket.kind == TicketKind.COMPLAINT.value
    query = (
        select(Survey.project, func.count(), func.sum(_flag(happy)), func.sum(_flag(complaint)),
               func.sum(_flag(and_(complaint, happy))))
        .select_from(Survey).join(Ticket, Survey.ticket_id == Ticket.id)
        .where(_scope(Survey.project, projects), Survey.kind == "callback",
               Survey.status == SurveyStatus.ANSWERED.value, Survey.verdict.in_(JUDGED_VERDICTS),
               _in(Survey.answered_at, period))
        .group_by(Survey.project)
    )
    return {project: {"judged": float(judged or 0), "happy": float(satisfied or 0),
                      "complaint_judged": float(on_complaints or 0), "complaint_happy": float(happy_complaints or 0)}
            for project, judged, satisfied, on_complaints, happy_complaints in session.execute(query).all()}


def _resident_sums(session: Session, projects: Collection[str], period: Period,
                   now: datetime) -> dict[str, Sums]:
    as_of = period.as_of(now)
    query = (
        select(Resident.project, func.count(),
               func.sum(_flag(and_(Resident.bound_at.is_not(None), Resident.bound_at < as_of))),
               func.sum(_flag(Resident.updated_at >= as_of - INFO_FRESH)))
        .where(_scope(Resident.project, projects), Resident.created_at < as_of)
        .group_by(Resident.project)
    )
    return {project: {"households": float(count or 0), "households_bound": float(bound or 0),
                      "households_fresh": float(fresh or 0)}
            for project, count, bound, fresh in session.execute(query).all()}


def _sums_by_project(session: Session, projects: Collection[str], period: Period,
                     now: datetime) -> dict[str, Sums]:
    dialect = session.get_bind().dialect.name
    found: dict[str, Sums] = {code: {} for code in sorted(set(projects))}
    for part in (_ticket_sums(session, projects, period, now, dialect), _survey_sums(session, projects, period),
                 _resident_sums(session, projects, period, now)):
        for code, sums in part.items():
            _add(found.setdefault(code, {}), sums)
    return found


# --- the annual survey ------------------------------------------------------------------------


class DimensionScore(NamedTuple):
    key: str
    label: str
    average: float | None
    answered: int


def annual_dimensions(session: Session, projects: Collection[str], campaign: str,
                      dimensions: Sequence[tuple[str, str]] = ProjectRules().annual_survey_dimensions,
                      ) -> list[DimensionScore]:
    """The annual survey's GB/T 45698 dimensions (服务质量、服务态度、服务效率、服务设施): the average
    score 1–5 of each and how many residents scored it, in the order of `dimensions`."""
    query = (
        select(SurveyScore.dimension, func.avg(SurveyScore.score), func.count(Survey.id.distinct()))
        .join(Survey, SurveyScore.survey_id == Survey.id)
        .where(Survey.kind == "annual", Survey.campaign == campaign, _scope(Survey.project, projects))
        .group_by(SurveyScore.dimension)
    )
    found = {key: (float(avg), int(count)) for key, avg, count in session.execute(query).all()}
    return [DimensionScore(key, label, found[key][0] if key in found else None, found.get(key, (None, 0))[1])
            for key, label in dimensions]


# --- staff ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffLoad:
    """One holder's cases of a period (报修汇总表): cases received in the period they hold."""

    staff_id: str
    name: str
    held: int
    resolved: int  # handled before the period ended (or now)
    on_time: int  # met their deadline (met_deadline)
    average_score: float | None  # callback answers on those cases, 1–5 (overall, else the dimensions' mean)
    scored: int

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.held if self.held else None


def staff_workload(session: Session, projects: Collection[str], period: Period,
                   now: datetime | None = None) -> list[StaffLoad]:
    """Per holder (`assignee_id`): the cases received in the period they hold, how many are handled,
    how many met their deadline, and the average callback score on them; most cases first."""
    now = now or utcnow()
    held = and_(_scope(Ticket.project, projects), _in(Ticket.created_at, period), Ticket.assignee_id.is_not(None))
    handled = handled_at()
    cases = (
        select(Ticket.assignee_id, func.max(Ticket.assignee), func.count(),
               func.sum(_flag(and_(handled.is_not(None), handled < period.as_of(now)))),
               func.sum(_flag(met_deadline())))
        .where(held).group_by(Ticket.assignee_id)
    )
    mean = select(func.avg(SurveyScore.score)).where(SurveyScore.survey_id == Survey.id).scalar_subquery()
    score = func.coalesce(Survey.overall_score, mean)
    scores = (
        select(Ticket.assignee_id, func.avg(score), func.count(score))
        .select_from(Survey).join(Ticket, Survey.ticket_id == Ticket.id)
        .where(held, Survey.kind == "callback", Survey.status == SurveyStatus.ANSWERED.value)
        .group_by(Ticket.assignee_id)
    )
    with _without_jit(session):
        scored = {staff: (float(avg) if avg is not None else None, int(count))
                  for staff, avg, count in session.execute(scores).all()}
        held_rows = session.execute(cases).all()
    loads = [StaffLoad(staff_id=staff, name=name or staff, held=int(count), resolved=int(resolved or 0),
                       on_time=int(on_time or 0), average_score=scored.get(staff, (None, 0))[0],
                       scored=scored.get(staff, (None, 0))[1])
             for staff, name, count, resolved, on_time in held_rows]
    return sorted(loads, key=lambda load: (-load.held, load.staff_id))
