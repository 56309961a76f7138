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

Everything is computed by the database in a few aggregate queries, grouped by project and period
(one pass over the tickets of the projects with their callbacks and events, one over the
emergencies, one over the callback answers, one over the residents); nothing loads the cases into
Python. Each pass first groups the rows by what the figures ask of them (a case's kind, status,
where its moments fall among the periods' boundaries, how they compare), then joins those few
thousand groups with the periods: several periods (a quarter and the one before, a trend's months)
cost one pass (`kpis_for_periods`). Only the queries of the figures asked for run (`keys`). The
per-project figures add up: `kpis()` over several projects is the sum of their numerators over the
sum of their denominators. The partial indexes of migration 0012 hold the few rows of the events,
callbacks and cases the passes read.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Collection, Iterator, Mapping, NamedTuple, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    DateTime,
    Integer,
    Interval,
    and_,
    bindparam,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.exc import DBAPIError
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


def _assemble(sums: Mapping[str, float], keys: Collection[str] | None = None) -> list[Kpi]:
    part = dict(sums)
    part["fixed_first_time"] = part.get("resolved", 0.0) - part.get("reopened", 0.0)
    return [make_kpi(key, part.get(_PARTS[key][0], 0.0), part.get(_PARTS[key][1], 0.0)) for key in _keys(keys)]


def _keys(keys: Collection[str] | None) -> list[str]:
    if keys is None:
        return list(KPI_KEYS)
    unknown = set(keys) - set(KPI_KEYS)
    if unknown:
        raise KeyError(f"no such KPI: {', '.join(sorted(unknown))}")
    return [key for key in KPI_KEYS if key in keys]


# Which query a sum comes from: only the queries of the figures asked for run.
_GROUP_OF: dict[str, str] = {
    "timely": "complaints", "timely_due": "complaints", "handled": "complaints", "received": "complaints",
    "called": "callbacks", "called_24h": "callbacks", "callback_cases": "callbacks", "reopened": "callbacks",
    "resolved": "callbacks", "fixed_first_time": "callbacks",
    "arrived": "repairs", "emergencies": "repairs", "done_24h": "repairs", "repairs": "repairs",
    "wait_minutes": "claims", "claimed": "claims", "backlog": "backlog", "backlog_days": "backlog",
    "happy": "surveys", "judged": "surveys", "complaint_happy": "surveys", "complaint_judged": "surveys",
    "households": "households", "households_bound": "households", "households_fresh": "households",
}


def _groups(keys: Collection[str] | None) -> set[str]:
    return {_GROUP_OF[name] for key in _keys(keys) for name in _PARTS[key] if name in _GROUP_OF}


def _total(by_project: Mapping[str, Sums]) -> Sums:
    total: Sums = {}
    for sums in by_project.values():
        _add(total, sums)
    return total


def kpis(session: Session, projects: Collection[str], period: Period, now: datetime,
         keys: Collection[str] | None = None) -> list[Kpi]:
    """Every figure of DEFINITIONS, in that order, for these projects together (only `keys`, in that
    order, when given: only their queries run)."""
    return _assemble(_total(_sums(session, projects, [period], now, keys)[0]), keys)


def kpis_by_project(session: Session, projects: Collection[str], period: Period, now: datetime,
                    keys: Collection[str] | None = None) -> dict[str, list[Kpi]]:
    """The same figures for each project on its own, from the same queries (grouped by project)."""
    return {code: _assemble(sums, keys) for code, sums in _sums(session, projects, [period], now, keys)[0].items()}


def kpis_for_periods(session: Session, projects: Collection[str], periods: Sequence[Period], now: datetime,
                     keys: Collection[str] | None = None) -> list[list[Kpi]]:
    """The figures of several periods (a quarter and the one before, a trend's months) from one pass
    over the tables: one list per period, in the order given."""
    return [_assemble(_total(by_project), keys) for by_project in _sums(session, projects, periods, now, keys)]


def kpis_by_project_for_periods(session: Session, projects: Collection[str], periods: Sequence[Period],
                                now: datetime, keys: Collection[str] | None = None) -> list[dict[str, list[Kpi]]]:
    """Per period, per project: what the quarter-end report of every project is made of."""
    return [{code: _assemble(sums, keys) for code, sums in by_project.items()}
            for by_project in _sums(session, projects, periods, now, keys)]


def merge(groups: Sequence[Sequence[Kpi]]) -> list[Kpi]:
    """The figures of several scopes together (numerators and denominators added up)."""
    numerators: Sums = {}
    denominators: Sums = {}
    for group in groups:
        for kpi in group:
            _add(numerators, {kpi.key: kpi.numerator})
            _add(denominators, {kpi.key: kpi.denominator})
    present = {kpi.key for group in groups for kpi in group}
    return [make_kpi(key, numerators.get(key, 0.0), denominators.get(key, 0.0)) for key in KPI_KEYS
            if key in present or not present]


def by_key(figures: Sequence[Kpi]) -> dict[str, Kpi]:
    return {kpi.key: kpi for kpi in figures}


# --- the SQL --------------------------------------------------------------------------------


def _in(column: Any, period: Any) -> ColumnElement[bool]:
    """Within the period (a Period, or a row of the periods table)."""
    return and_(column >= period.start, column < period.end)


def _seconds(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    """Seconds from `earlier` to `later` (whole seconds on SQLite, which keeps times as text)."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", later), Integer) - cast(func.strftime("%s", earlier), Integer)
    return func.date_part("epoch", later - earlier)  # double precision: cheaper than EXTRACT's numeric


def _within(dialect: str, later: Any, earlier: Any, span: timedelta) -> ColumnElement[bool]:
    """`later` at most `span` after `earlier` (PostgreSQL compares the times themselves)."""
    if dialect == "sqlite":
        return _seconds(dialect, later, earlier) <= span.total_seconds()
    # An interval of seconds only: adding it is an addition (a day's interval goes by the calendar).
    return later <= earlier + cast(literal(f"{span.total_seconds()} seconds"), Interval())


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def handled_at() -> ColumnElement[Any]:
    """When the case was dealt with: its latest completion, or its closing without one."""
    return func.coalesce(Ticket.resolved_at, Ticket.closed_at)


def deadline() -> ColumnElement[Any]:
    """The deadline a case is measured by: `due_at`, never later than a complaint's hard limit."""
    return case((Ticket.due_at.is_(None), Ticket.final_due_at),
                (and_(Ticket.final_due_at.is_not(None), Ticket.final_due_at < Ticket.due_at), Ticket.final_due_at),
                else_=Ticket.due_at)


class CaseColumns(NamedTuple):
    """What the case definitions below read of a case: the ticket's columns, or those of a
    grouped subquery of tickets (`resident`, `assignee`: whether the case has one)."""

    kind: Any
    status: Any
    priority: Any
    resident: Any
    assignee: Any


def ticket_columns() -> CaseColumns:
    return CaseColumns(Ticket.kind, Ticket.status, Ticket.priority, Ticket.resident_id.is_not(None),
                       Ticket.assignee_id.is_not(None))


def resident_complaint(t: CaseColumns | None = None) -> ColumnElement[bool]:
    """A resident's complaint that stands (not cancelled; group cases are not counted)."""
    t = t or ticket_columns()
    return and_(t.kind == TicketKind.COMPLAINT.value, t.resident, t.status != TicketStatus.CANCELLED.value)


def complaints_received(period: Any) -> ColumnElement[bool]:
    """The complaints of a period: residents' complaints received (created) in it."""
    return and_(resident_complaint(), _in(Ticket.created_at, period))


def callback_case(t: CaseColumns | None = None) -> ColumnElement[bool]:
    """Cases that get a satisfaction callback when finished (bot.cases.follow_ups.on_resolved)."""
    t = t or ticket_columns()
    return and_(t.resident, or_(t.kind.in_((TicketKind.REPAIR.value, TicketKind.COMPLAINT.value)),
                                and_(t.kind == TicketKind.ENQUIRY.value, t.assignee)))


def is_emergency(t: CaseColumns | None = None) -> ColumnElement[bool]:
    t = t or ticket_columns()
    return and_(t.kind == TicketKind.REPAIR.value, t.priority == Priority.EMERGENCY.value)


def _emergency(t: CaseColumns) -> ColumnElement[bool]:
    """An emergency repair that stands (紧急到场及时率's cases)."""
    return and_(is_emergency(t), t.status != TicketStatus.CANCELLED.value)


def _normal_repair(t: CaseColumns) -> ColumnElement[bool]:
    """A repair that is no emergency and stands (一般报修24小时完成率's cases)."""
    return and_(t.kind == TicketKind.REPAIR.value, t.status != TicketStatus.CANCELLED.value,
                or_(t.priority.is_(None), t.priority != Priority.EMERGENCY.value))


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


def _case_events(tickets: ColumnElement[bool]) -> Any:
    """Per case (of those `tickets` selects by TicketEvent.ticket_id) with any of the few events
    these figures read: reopened at least once (a status event to reopened), escalated (an
    `escalated` event: any escalation or staff alert). The partial index ix_ticket_events_flags
    holds exactly these events."""
    reopened = and_(TicketEvent.action == STATUS_EVENT, TicketEvent.to_status == TicketStatus.REOPENED.value)
    escalated = TicketEvent.action == ESCALATED_EVENT
    return (select(TicketEvent.ticket_id.label("ticket_id"), func.max(_flag(reopened)).label("reopened"),
                   func.max(_flag(escalated)).label("escalated"))
            .where(or_(escalated, reopened), tickets).group_by(TicketEvent.ticket_id).subquery())


def _first_claims(tickets: ColumnElement[bool]) -> Any:
    """Per case (of those `tickets` selects) that was claimed, its first 接单: the first `claimed`
    event (ix_ticket_events_claimed); a case without one was assigned by 转派, its claimed_at
    counts instead."""
    return (select(TicketEvent.ticket_id.label("ticket_id"), func.min(TicketEvent.at).label("at"))
            .where(TicketEvent.action == CLAIM_EVENT, tickets).group_by(TicketEvent.ticket_id).subquery())


def _callbacks(since: datetime, tickets: ColumnElement[bool] | None = None) -> Any:
    """Per case, when its last callback survey went out (or was answered), among those since
    `since`: the callback of its latest completion, when that completion lies after `since` (one
    callback per completion, bot.cases.surveys.callback_survey_for). `since` is tested on the two
    columns (what COALESCE(sent_at, answered_at) >= since means), which PostgreSQL can estimate."""
    went = func.coalesce(Survey.sent_at, Survey.answered_at)
    recent = or_(Survey.sent_at >= since, and_(Survey.sent_at.is_(None), Survey.answered_at >= since))
    return (select(Survey.ticket_id.label("ticket_id"), func.max(went).label("went"))
            .where(Survey.kind == "callback", Survey.ticket_id.is_not(None), recent,
                   tickets if tickets is not None else true())
            .group_by(Survey.ticket_id).subquery())


def open_at(as_of: datetime, now: datetime) -> ColumnElement[bool]:
    """Open at `as_of`: by status when that is now; for a past moment, reconstructed from the
    columns (received before it, not cancelled, not handled before it — a case reopened since and
    still open counts as open then)."""
    if as_of >= now:
        return and_(Ticket.status.in_(OPEN_STATUS_VALUES), Ticket.created_at <= as_of)
    handled = handled_at()
    return and_(Ticket.created_at < as_of, Ticket.status != TicketStatus.CANCELLED.value,
                or_(handled.is_(None), handled >= as_of))


# PostgreSQL settings for the report queries, in the caller's transaction and put back afterwards:
# they look costly, so PostgreSQL would JIT-compile them and spend longer compiling than running
# them; and it would sort a million rows to add them up where a hash table of a few thousand
# groups does (the queries under these settings have no ORDER BY). It cannot tell how few groups
# the cases make and sizes their hash tables for a million; with a moderate work_mem it reads a
# case's callbacks in ticket order off ix_surveys_callback instead of hashing them all.
_REPORT_SETTINGS = (("jit", "off"), ("work_mem", "16MB"), ("enable_sort", "off"), ("enable_incremental_sort", "off"))
_APPLIED = "kpis.report_settings"  # Session.info: how deep in report_settings the session is


@contextmanager
def report_settings(session: Session) -> Iterator[None]:
    """Run the enclosed report queries with _REPORT_SETTINGS (PostgreSQL; nothing elsewhere).
    Nested uses (a report made of several figures' queries) set them once."""
    if session.get_bind().dialect.name != "postgresql" or session.info.get(_APPLIED):
        yield
        return
    names = [name for name, _value in _REPORT_SETTINGS]
    before = session.execute(text("SELECT " + ", ".join(f"current_setting('{name}')" for name in names))).one()
    session.execute(text("SELECT " + ", ".join(f"set_config('{name}', '{value}', true)"
                                               for name, value in _REPORT_SETTINGS)))
    session.info[_APPLIED] = True
    try:
        yield
    except DBAPIError:  # the transaction failed: its rollback puts the settings back
        session.info.pop(_APPLIED, None)
        raise
    except BaseException:
        session.info.pop(_APPLIED, None)
        _restore(session, names, before)
        raise
    session.info.pop(_APPLIED, None)
    _restore(session, names, before)


def _restore(session: Session, names: Sequence[str], values: Sequence[Any]) -> None:
    session.execute(text("SELECT " + ", ".join(f"set_config('{name}', :v{i}, true)" for i, name in enumerate(names))),
                    {f"v{i}": str(value) for i, value in enumerate(values)})


def _scope(column: Any, projects: Collection[str]) -> ColumnElement[bool]:
    codes = sorted(set(projects))
    return column.in_(codes) if codes else false()


def periods_table(periods: Sequence[Period], now: datetime) -> Any:
    """The periods as rows (index, start, end, as_of, current) to join the tables with: every
    period is computed in the same pass."""
    rows = [select(literal(index, Integer()).label("idx"), literal(period.start, DateTime()).label("start"),
                   literal(period.end, DateTime()).label("end"), literal(period.as_of(now), DateTime()).label("as_of"),
                   literal(1 if period.as_of(now) >= now else 0, Integer()).label("current"))
            for index, period in enumerate(periods)]
    return (rows[0] if len(rows) == 1 else union_all(*rows)).subquery("periods")


# The figures' passes group the rows first by what the figures ask of them — project, where each
# of their moments falls among the periods' boundaries (`_bucket`) and their facts as the bits of
# one integer (`flags`) — and only then join those few groups with the periods: every row's facts
# are worked out once however many periods there are, and the periods' join reads a few
# thousand groups instead of every row.


def _bounds(periods: Sequence[Period], now: datetime) -> list[datetime]:
    """Every moment a period starts, ends or is read at, in order."""
    return sorted({moment for period in periods for moment in (period.start, period.end, period.as_of(now))})


def _bucket(dialect: str, column: Any, bounds: Sequence[datetime]) -> ColumnElement[Any]:
    """How many of `bounds` lie at or before `column` (NULL for NULL): `column` >= bounds[i] when
    this is > i, `column` < bounds[i] when it is <= i."""
    if dialect == "postgresql":
        return func.width_bucket(column, bindparam(None, list(bounds), type_=ARRAY(DateTime())), type_=Integer())
    return case((column.is_(None), None), *[(column < bound, index) for index, bound in enumerate(bounds)],
                else_=len(bounds))


def _ranked_periods(periods: Sequence[Period], now: datetime, bounds: Sequence[datetime]) -> Any:
    """The periods as rows (idx; lo, hi, at: the buckets their start, end and as_of begin; as_of;
    current): a moment lies in the period when lo <= its bucket < hi, before as_of when its
    bucket < at."""
    first = {moment: index + 1 for index, moment in enumerate(bounds)}
    rows = [select(literal(index, Integer()).label("idx"), literal(first[period.start], Integer()).label("lo"),
                   literal(first[period.end], Integer()).label("hi"),
                   literal(first[period.as_of(now)], Integer()).label("at"),
                   literal(period.as_of(now), DateTime()).label("as_of"),
                   literal(1 if period.as_of(now) >= now else 0, Integer()).label("current"))
            for index, period in enumerate(periods)]
    return (rows[0] if len(rows) == 1 else union_all(*rows)).subquery("periods")


class _Flags:
    """The facts of a row as bits of one integer: `term`s added up in the inner query (`column`),
    tested with `has` in the outer one."""

    def __init__(self) -> None:
        self.bits: dict[str, int] = {}

    def term(self, name: str, condition: ColumnElement[bool],
             guard: ColumnElement[bool] | None = None) -> ColumnElement[int]:
        """`condition`'s bit (a correlated subquery is evaluated only where `guard` holds, if given)."""
        bit = self.bits.setdefault(name, 1 << len(self.bits))
        test = case((condition, bit), else_=0)
        return test if guard is None else case((guard, test), else_=0)

    @staticmethod
    def column(terms: Sequence[ColumnElement[int]]) -> ColumnElement[int]:
        total: ColumnElement[int] = terms[0] if terms else literal(0, Integer())
        for term in terms[1:]:
            total = total + term
        return total

    def has(self, flags: Any, name: str) -> ColumnElement[bool]:
        return flags.op("&")(self.bits[name]) != 0


def _per_period(session: Session, inner: Any, table: Any, sums: Sequence[tuple[str, Any]],
                relevant: Sequence[ColumnElement[bool]], periods: Sequence[Period]) -> list[dict[str, Sums]]:
    """The grouped rows joined with the periods they count in, added up per project and period."""
    c, w = inner.c, table.c
    query = (select(c.project, w.idx, *(value for _name, value in sums))
             .select_from(inner).join(table, or_(*relevant)).group_by(c.project, w.idx))
    found: list[dict[str, Sums]] = [{} for _period in periods]
    names = [name for name, _value in sums]
    with report_settings(session):
        for project, index, *values in session.execute(query).all():
            found[index][project] = {name: float(value or 0) for name, value in zip(names, values)}
    return found


def _ticket_sums(session: Session, projects: Collection[str], periods: Sequence[Period], now: datetime,
                 dialect: str, groups: set[str]) -> list[dict[str, Sums]]:
    """The tickets' figures: one pass over the projects' cases (`_case_sums`) and one over the
    emergencies, whose events are looked up (`_emergency_sums`)."""
    found: list[dict[str, Sums]] = [{} for _period in periods]
    parts = []
    if groups & {"complaints", "callbacks", "repairs", "claims", "backlog"}:
        parts.append(_case_sums(session, projects, periods, now, dialect, groups))
    if "repairs" in groups:
        parts.append(_emergency_sums(session, projects, periods, now, dialect))
    for part in parts:
        for index, by_project in enumerate(part):
            for code, sums in by_project.items():
                _add(found[index].setdefault(code, {}), sums)
    for by_project in found:
        for row in by_project.values():
            if "wait_seconds" in row:
                row["wait_minutes"] = row.pop("wait_seconds") / 60
            if "age_seconds" in row:
                row["backlog_days"] = row.pop("age_seconds") / 86400
    return found


def _id_ranges(session: Session, dialect: str, since: datetime) -> list[tuple[int | None, int | None]]:
    """The cases split in two by id on PostgreSQL, [low, high) (None: open): two passes of half the
    cases each, which it can run side by side (a Parallel Append); one pass elsewhere. The split is
    in the middle of the ids received since `since` (where the work is: those of the first complaint
    received since then, found on ix_tickets_complaints, to the last)."""
    if dialect != "postgresql":
        return [(None, None)]
    first_recent = (select(Ticket.id).where(Ticket.kind == TicketKind.COMPLAINT.value, Ticket.created_at >= since)
                    .order_by(Ticket.created_at).limit(1).scalar_subquery())
    low, high, recent = session.execute(select(func.min(Ticket.id), func.max(Ticket.id), first_recent)).one()
    if low is None:
        return [(None, None)]
    middle = (max(low, recent if recent is not None else low) + high + 1) // 2
    return [(None, middle), (middle, None)]


def _id_range(column: Any, low: int | None, high: int | None) -> ColumnElement[bool]:
    return and_(column >= low if low is not None else true(), column < high if high is not None else true())


def _case_sums(session: Session, projects: Collection[str], periods: Sequence[Period], now: datetime,
               dialect: str, groups: set[str]) -> list[dict[str, Sums]]:
    """One pass over the projects' cases, grouped by what the figures ask of a case: its project,
    kind, status, tier, whether it has a resident and a holder, where its moments fall among the
    periods' boundaries, and how its moments compare (`times`: handled by the deadline, the
    callback within 24 hours, reopened, …). Each case is read once with what the figures read of
    its callbacks and events, all in ticket order (merge joins, nothing looked up per case, so that
    the two halves of the cases run side by side); the cases' definitions (resident_complaint,
    callback_case, …) are then applied to the groups, joined with the periods they count in."""
    since = min(period.start for period in periods)
    bounds = _bounds(periods, now)
    handled, limit = handled_at(), deadline()
    t = ticket_columns()

    def bucket(column: Any) -> ColumnElement[Any]:
        return _bucket(dialect, column, bounds)

    times = _Flags()
    keys: list[Any] = [Ticket.project.label("project"), Ticket.kind.label("kind"), Ticket.status.label("status"),
                       Ticket.priority.label("priority"), t.resident.label("resident"), t.assignee.label("assignee"),
                       bucket(Ticket.created_at).label("created")]
    wanted: list[ColumnElement[bool]] = []  # the cases any asked-for figure is about
    if "complaints" in groups:
        keys.append(bucket(limit).label("due"))
        wanted.append(resident_complaint(t))
    if "callbacks" in groups:
        keys.append(bucket(Ticket.resolved_at).label("resolved"))
        wanted.append(callback_case(t))
    if "repairs" in groups:
        wanted.append(_normal_repair(t))
    if "claims" in groups:
        wanted.append(Ticket.claimed_at.is_not(None))
    if "backlog" in groups:
        wanted = []  # nearly every case: no test
    if "complaints" in groups or "backlog" in groups:
        keys.append(bucket(handled).label("handled"))
    start = literal(since, DateTime())
    # A case can count in a period only if something about it happened since the first one began,
    # or it is still unfinished: a cheap test that spares the rest of the history everything else.
    recently = or_(Ticket.created_at >= since, Ticket.resolved_at >= since, handled.is_(None), handled >= since,
                   limit >= since)

    def part(low: int | None, high: int | None) -> Any:
        """The cases with ids in [low, high), grouped. Each part joins the callbacks and events of
        its own cases (PostgreSQL does not carry the range over to them)."""
        source: Any = Ticket.__table__
        terms: list[ColumnElement[int]] = []
        measures: list[Any] = [func.count().label("n")]
        events = claims = None
        if groups & {"callbacks", "claims"}:
            events = _case_events(_id_range(TicketEvent.ticket_id, low, high))
            source = source.outerjoin(events, events.c.ticket_id == Ticket.id)
        if "complaints" in groups:
            terms += [times.term("met", handled <= limit), times.term("deadline_passed", limit <= now)]
        if "callbacks" in groups:
            assert events is not None
            callbacks = _callbacks(since, _id_range(Survey.ticket_id, low, high))
            source = source.outerjoin(callbacks, callbacks.c.ticket_id == Ticket.id)
            went = callbacks.c.went
            terms += [times.term("called", went >= Ticket.resolved_at),
                      times.term("within_24h", _within(dialect, went, Ticket.resolved_at, CALLBACK_WITHIN)),
                      times.term("resolved_long_ago", Ticket.resolved_at <= now - CALLBACK_WITHIN),
                      times.term("reopened", events.c.reopened == 1)]
        if "repairs" in groups:
            terms += [times.term("done_24h", _within(dialect, handled, Ticket.created_at, REPAIR_WITHIN)),
                      times.term("created_long_ago", Ticket.created_at <= now - REPAIR_WITHIN)]
        if "claims" in groups:  # the escalated cases' wait for their first 接单
            assert events is not None
            claims = _first_claims(_id_range(TicketEvent.ticket_id, low, high))
            source = source.outerjoin(claims, claims.c.ticket_id == Ticket.id)
            claimed = and_(Ticket.created_at >= since, Ticket.claimed_at.is_not(None), events.c.escalated == 1)
            terms.append(times.term("claimed", claimed))
            first = func.coalesce(claims.c.at, Ticket.claimed_at)
            measures.append(func.sum(case((claimed, _seconds(dialect, first, Ticket.created_at)),
                                          else_=None)).label("wait"))
        if "backlog" in groups:
            terms.append(times.term("created_by_now", Ticket.created_at <= now))
            # The seconds from `since` to each case's receipt, added up (for the backlog's age).
            measures.append(func.sum(_seconds(dialect, Ticket.created_at, start)).label("received_after"))
        time_column = _Flags.column(terms)
        return (select(*keys, time_column.label("times"), *measures).select_from(source)
                .where(_id_range(Ticket.id, low, high), _scope(Ticket.project, projects),
                       or_(*wanted) if wanted else true(), recently)
                .group_by(*[key.element for key in keys], time_column))

    parts = [part(low, high) for low, high in _id_ranges(session, dialect, since)]
    inner = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("cases")
    table = _ranked_periods(periods, now, bounds)
    c, w = inner.c, table.c
    g = CaseColumns(c.kind, c.status, c.priority, c.resident, c.assignee)

    def has(name: str) -> ColumnElement[bool]:
        return times.has(c.times, name)

    def within(column: Any) -> ColumnElement[bool]:
        return and_(column >= w.lo, column < w.hi)

    def total(*conditions: ColumnElement[bool]) -> Any:
        return func.sum(c.n).filter(and_(*conditions))

    sums: list[tuple[str, Any]] = []
    relevant: list[ColumnElement[bool]] = []
    if "complaints" in groups:
        complaint = resident_complaint(g)
        due_in, received = and_(complaint, within(c.due)), and_(complaint, within(c.created))
        sums += [("timely", total(due_in, has("met"))),
                 ("timely_due", total(due_in, or_(has("met"), has("deadline_passed")))),
                 ("handled", total(received, c.handled < w.at)), ("received", total(received))]
        relevant += [due_in, received]
    if "callbacks" in groups:
        resolved = and_(callback_case(g), within(c.resolved))  # within: at or after `since`
        sums += [("called", total(resolved, has("called"))),
                 ("called_24h", total(resolved, has("called"), has("within_24h"))),
                 ("callback_cases", total(resolved, or_(has("called"), has("resolved_long_ago")))),
                 ("reopened", total(resolved, has("reopened"))), ("resolved", total(resolved))]
        relevant.append(resolved)
    if "repairs" in groups:
        repair = and_(_normal_repair(g), within(c.created))
        sums += [("done_24h", total(repair, has("done_24h"))),
                 ("repairs", total(repair, or_(has("done_24h"), has("created_long_ago"))))]
        relevant.append(repair)
    if "claims" in groups:
        claimed_in = and_(has("claimed"), within(c.created))
        sums += [("wait_seconds", func.sum(c.wait).filter(claimed_in)), ("claimed", total(claimed_in))]
        relevant.append(claimed_in)
    if "backlog" in groups:
        # Open at the period's moment: by status when that is now, else from the columns (open_at).
        backlog = or_(and_(w.current == 1, g.status.in_(OPEN_STATUS_VALUES), has("created_by_now")),
                      and_(w.current == 0, g.status != TicketStatus.CANCELLED.value, c.created < w.at,
                           or_(c.handled.is_(None), c.handled >= w.at)))
        age = c.n * _seconds(dialect, w.as_of, start) - c.received_after  # the ages of a group's cases
        sums += [("backlog", total(backlog)), ("age_seconds", func.sum(age).filter(backlog))]
        relevant.append(backlog)
    return _per_period(session, inner, table, sums, relevant, periods)


def _emergency_sums(session: Session, projects: Collection[str], periods: Sequence[Period], now: datetime,
                    dialect: str) -> list[dict[str, Sums]]:
    """紧急到场及时率: the emergencies received in the periods (ix_tickets_emergencies), whether
    someone was on site in time looked up by id for each."""
    since = min(period.start for period in periods)
    bounds = _bounds(periods, now)
    flags = _Flags()
    created = _bucket(dialect, Ticket.created_at, bounds)
    facts = _Flags.column([flags.term("arrived", arrived_in_time()), flags.term("due_passed", Ticket.due_at <= now)])
    inner = (select(Ticket.project.label("project"), created.label("created"), facts.label("flags"),
                    func.count().label("n"))
             .where(_scope(Ticket.project, projects), is_emergency(), Ticket.status != TicketStatus.CANCELLED.value,
                    Ticket.created_at >= since)
             .group_by(Ticket.project, created, facts).subquery("emergencies"))
    table = _ranked_periods(periods, now, bounds)
    c, w = inner.c, table.c
    received = and_(c.created >= w.lo, c.created < w.hi)
    sums = [("arrived", func.sum(c.n).filter(flags.has(c.flags, "arrived"))),
            ("emergencies", func.sum(c.n).filter(or_(flags.has(c.flags, "arrived"), flags.has(c.flags, "due_passed"))))]
    return _per_period(session, inner, table, sums, [received], periods)


def _survey_sums(session: Session, projects: Collection[str], periods: Sequence[Period],
                 now: datetime, dialect: str) -> list[dict[str, Sums]]:
    """The callback answers of the periods: grouped by project, where the answer falls among the
    periods' boundaries, satisfied or not and on a complaint or not; then per period."""
    bounds = _bounds(periods, now)
    happy = _flag(Survey.verdict.in_(HAPPY_VERDICTS))
    complaint = _flag(Ticket.id.is_not(None))  # the case joined only when it is a complaint
    keys = [Survey.project.label("project"), _bucket(dialect, Survey.answered_at, bounds).label("answered"),
            happy.label("happy"), complaint.label("complaint")]
    inner = (
        select(*keys, func.count().label("n"))
        .select_from(Survey)
        .outerjoin(Ticket, and_(Survey.ticket_id == Ticket.id, Ticket.kind == TicketKind.COMPLAINT.value))
        .where(_scope(Survey.project, projects), Survey.kind == "callback", Survey.ticket_id.is_not(None),
               Survey.status == SurveyStatus.ANSWERED.value, Survey.verdict.in_(JUDGED_VERDICTS),
               Survey.answered_at >= min(period.start for period in periods))
        .group_by(*[key.element for key in keys]).subquery("answers")
    )
    table = _ranked_periods(periods, now, bounds)
    c, w = inner.c, table.c
    answered = and_(c.answered >= w.lo, c.answered < w.hi)
    sums = [("judged", func.sum(c.n)), ("happy", func.sum(c.n).filter(c.happy == 1)),
            ("complaint_judged", func.sum(c.n).filter(c.complaint == 1)),
            ("complaint_happy", func.sum(c.n).filter(and_(c.complaint == 1, c.happy == 1)))]
    return _per_period(session, inner, table, sums, [answered], periods)


def _resident_sums(session: Session, projects: Collection[str], periods: Sequence[Period],
                   now: datetime) -> list[dict[str, Sums]]:
    """The household files at each moment the periods are read at: one pass, a count per moment."""
    moments = sorted({period.as_of(now) for period in periods})
    columns: list[Any] = []
    for as_of in moments:
        there = Resident.created_at < as_of
        columns += [func.count().filter(there),
                    func.count().filter(and_(there, Resident.bound_at.is_not(None), Resident.bound_at < as_of)),
                    func.count().filter(and_(there, Resident.updated_at >= as_of - INFO_FRESH))]
    query = (select(Resident.project, *columns)
             .where(_scope(Resident.project, projects), Resident.created_at < moments[-1])
             .group_by(Resident.project))
    at = {moment: index for index, moment in enumerate(moments)}
    found: list[dict[str, Sums]] = [{} for _period in periods]
    with report_settings(session):
        rows = session.execute(query).all()
    for project, *counts in rows:
        for index, period in enumerate(periods):
            first = 3 * at[period.as_of(now)]
            count, bound, fresh = counts[first:first + 3]
            found[index][project] = {"households": float(count or 0), "households_bound": float(bound or 0),
                                     "households_fresh": float(fresh or 0)}
    return found


def _sums(session: Session, projects: Collection[str], periods: Sequence[Period], now: datetime,
          keys: Collection[str] | None = None) -> list[dict[str, Sums]]:
    """Per period (in order), per project of `projects` (every one, zeros included): the sums."""
    groups = _groups(keys)
    found: list[dict[str, Sums]] = [{code: {} for code in sorted(set(projects))} for _period in periods]
    if not periods or not projects:
        return found
    dialect = session.get_bind().dialect.name
    with report_settings(session):
        parts = [_ticket_sums(session, projects, periods, now, dialect, groups)]
        if "surveys" in groups:
            parts.append(_survey_sums(session, projects, periods, now, dialect))
        if "households" in groups:
            parts.append(_resident_sums(session, projects, periods, now))
    for part in parts:
        for index, by_project in enumerate(part):
            for code, sums in by_project.items():
                _add(found[index].setdefault(code, {}), sums)
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
    with report_settings(session):
        scored = {staff: (float(avg) if avg is not None else None, int(count))
                  for staff, avg, count in session.execute(scores).all()}
        held_rows = session.execute(cases).all()
    loads = [StaffLoad(staff_id=staff, name=name or staff, held=int(count), resolved=int(resolved or 0),
                       on_time=int(on_time or 0), average_score=scored.get(staff, (None, 0))[0],
                       scored=scored.get(staff, (None, 0))[1])
             for staff, name, count, resolved, on_time in held_rows]
    return sorted(loads, key=lambda load: (-load.held, load.staff_id))
