"""The quarterly complaint analysis (投诉分析): what residents complained about, where, how the
complaints were handled, and who complains again — each figure with the previous quarter's beside it.

The complaints counted are those of bot.cases.kpis.complaints_received: residents' complaints
received in the period, cancelled ones left out. A group case (群诉) is not counted among them
(its members are); group cases are listed on their own. The rates are the KPIs of bot.cases.kpis
(投诉处理率, 投诉处理及时率, 投诉满意率), not computed a second time here.

- **by type**: the stored `Ticket.topic` (set when the complaint came in), else the project's
  `escalation.complaint_topics` read from description + demand (bot.cases.escalation.complaint_topic),
  else 其他.
- **by tier and cause**: the tier (重大/紧急/一般) and, as a proxy for the cause, the signals the
  tier was raised by (the `tier_reason` event written when the complaint came in, e.g.
  扬言向外投诉或曝光); a complaint raised by none counts as 无升级信号.
- **by building**: the building of the complaint's room (bot.core.rooms.parse_room), or the place
  named when it is not a flat; 未填房号 without one. Across projects a building is named with its
  project.
- **repeat complainants**: residents with two or more complaints in the period.

The counting is a few grouped queries over the complaints of both quarters (by project and
period, and by tier and topic, by room, by resident — rows only as many as the distinct
combinations; read from the partial index ix_tickets_complaints), one over their tier signals and
one over the group cases; the types of complaints without a stored topic and the buildings of the
rooms are worked out in Python from those rows (keyword and room rules that are Python), each
distinct text and room once.

At each quarter's end the worker writes the analysis and the KPIs of every project and of the
whole company as JSON files (`quarterly_report_for`, `write_reports`).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from sqlalchemy import String, and_, case, func, literal, select
from sqlalchemy.orm import Session

from bot.cases import kpis
from bot.cases.escalation import complaint_topic
from bot.cases.kpis import Kpi, Period
from bot.cases.tickets import TIER_EVENT
from bot.core.clock import utcnow
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.replies import PRIORITY_LABELS_ZH
from bot.core.rooms import parse_room
from bot.core.rules import ProjectRules
from bot.db.models import Resident, Ticket, TicketEvent
from bot.settings import PROJECT_ROOT

OTHER_TOPIC = "其他"
NO_ROOM = "未填房号"
NO_SIGNAL = "无升级信号"
COMPANY = "_company"  # the report file of all projects together
TIERS = (Priority.MAJOR, Priority.URGENT, Priority.GENERAL)
REPEAT_LISTED = 100  # repeat complainants listed by name of room (all are counted)
RATES = (("complaint_handling", "处理率"), ("complaint_timeliness", "及时率"), ("complaint_satisfaction", "满意率"))

RulesFor = Callable[[str], ProjectRules]


@dataclass(frozen=True)
class Row:
    """One line of a breakdown: this quarter's count and the previous quarter's."""

    key: str
    label: str
    current: int
    previous: int

    @property
    def change(self) -> int:
        return self.current - self.previous


@dataclass(frozen=True)
class Compared:
    """A rate of this quarter with the previous quarter's beside it."""

    key: str
    label: str
    current: Kpi
    previous: Kpi


@dataclass(frozen=True)
class RepeatComplainant:
    project: str
    resident_id: int
    room: str | None  # the household file's room; no name or phone in a report
    complaints: int
    numbers: tuple[str, ...]


@dataclass(frozen=True)
class GroupComplaint:
    project: str
    number: str
    topic: str | None
    place: str | None
    status: str
    members: int  # the residents' complaints linked to it
    created_at: datetime
    on_time: bool | None  # met its deadline; None while it is still ahead


@dataclass(frozen=True)
class ComplaintAnalysis:
    projects: tuple[str, ...]
    period: Period
    previous_period: Period
    received: Row  # 投诉量
    rates: tuple[Compared, ...]  # 处理率, 及时率, 满意率 (the KPIs)
    by_type: tuple[Row, ...]
    by_tier: tuple[Row, ...]
    by_cause: tuple[Row, ...]
    by_building: tuple[Row, ...]
    repeat_complainants: Row  # how many residents complained twice or more
    repeaters: tuple[RepeatComplainant, ...]  # this quarter's, most complaints first (at most REPEAT_LISTED)
    group_complaints: Row
    groups: tuple[GroupComplaint, ...]  # this quarter's

    def rate(self, key: str) -> Compared:
        return next(rate for rate in self.rates if rate.key == key)

    @property
    def handling_rate(self) -> Compared:
        return self.rate("complaint_handling")

    @property
    def timeliness_rate(self) -> Compared:
        return self.rate("complaint_timeliness")

    @property
    def satisfaction_rate(self) -> Compared:
        return self.rate("complaint_satisfaction")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO strings (naive UTC), rates as numerator/denominator/value."""
        return {
            "projects": list(self.projects), "period": period_dict(self.period),
            "previous_period": period_dict(self.previous_period),
            "received": _row(self.received),
            "rates": [{"key": r.key, "label": r.label, "current": kpi_dict(r.current),
                       "previous": kpi_dict(r.previous)} for r in self.rates],
            "by_type": [_row(r) for r in self.by_type], "by_tier": [_row(r) for r in self.by_tier],
            "by_cause": [_row(r) for r in self.by_cause], "by_building": [_row(r) for r in self.by_building],
            "repeat_complainants": _row(self.repeat_complainants),
            "repeaters": [{"project": r.project, "resident_id": r.resident_id, "room": r.room,
                           "complaints": r.complaints, "numbers": list(r.numbers)} for r in self.repeaters],
            "group_complaints": _row(self.group_complaints),
            "groups": [{"project": g.project, "number": g.number, "topic": g.topic, "place": g.place,
                        "status": g.status, "members": g.members, "created_at": g.created_at.isoformat(),
                        "on_time": g.on_time} for g in self.groups],
        }


def period_dict(period: Period) -> dict[str, str]:
    return {"label": period.label, "code": period.code, "start": period.start.isoformat(),
            "end": period.end.isoformat()}


def kpi_dict(kpi: Kpi) -> dict[str, Any]:
    return {"key": kpi.key, "label": kpi.label, "unit": kpi.unit, "numerator": kpi.numerator,
            "denominator": kpi.denominator, "value": kpi.value}


def _row(row: Row) -> dict[str, Any]:
    return {"key": row.key, "label": row.label, "current": row.current, "previous": row.previous}


# --- counting, per project ------------------------------------------------------------------


@dataclass
class _Tally:
    """One project's complaints of one period."""

    received: int = 0
    types: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    causes: dict[str, int] = field(default_factory=dict)
    buildings: dict[str, int] = field(default_factory=dict)
    repeaters: list[tuple[int, int]] = field(default_factory=list)  # (resident id, complaints)
    groups: list[GroupComplaint] = field(default_factory=list)


def _bump(counts: dict[str, int], key: str, by: int) -> None:
    counts[key] = counts.get(key, 0) + by


# A room as the store normally keeps it (bot.core.rooms.Room's form: 3栋2单元501, A座1803): its
# building is read off directly, without parse_room's Chinese-text normalisation.
_NORMAL_ROOM = re.compile(r"([1-9][0-9]{0,2}栋|[A-Z]座)(?:[1-9][0-9]?单元)?[0-9]{3,4}")


@lru_cache(maxsize=65536)
def building_of(room: str | None) -> str:
    """The building of a room (3栋2单元501 → 3栋), the place itself when it names no flat (a group
    case's 3栋, 地下车库), 未填房号 without one."""
    if not room:
        return NO_ROOM
    normal = _NORMAL_ROOM.fullmatch(room)
    if normal is not None:
        return normal.group(1)
    parsed = parse_room(room)
    if parsed is not None:
        return parsed.building
    return re.sub(r"[\s，。,.]+", "", room)[:32] or NO_ROOM


def tier_signals(explanation: str) -> list[str]:
    """The signal labels of a `tier_reason` event: 扬言向外投诉或曝光（“12345”）；… → [扬言向外投诉或曝光, …]."""
    return [part.split("（")[0].strip() for part in explanation.split("；") if part.split("（")[0].strip()]


def _by_building(grouped: Callable[..., Any], dialect: str) -> Any:
    """The complaints by project, period and building: the building of a room in the store's normal
    form (_NORMAL_ROOM) read off by PostgreSQL, each distinct room once; any other room (and every
    room on SQLite) given as it is, for building_of. Rows: project, period, building, room, count."""
    rooms = grouped(Ticket.room.label("room")).cte("complaint_rooms")
    distinct = select(rooms.c.room).distinct().subquery("distinct_rooms")
    if dialect == "postgresql":
        building: Any = func.substring(distinct.c.room, literal("^" + _NORMAL_ROOM.pattern + "$", String()))
    else:
        building = literal(None, String())
    # OFFSET 0: PostgreSQL reads each distinct room's building once, not again for every row joined.
    named = select(distinct.c.room, building.label("building")).offset(0).subquery("named_rooms")
    raw = case((named.c.building.is_(None), rooms.c.room), else_=None)
    return (select(rooms.c.project, rooms.c.idx, named.c.building, raw, func.sum(rooms.c.n))
            .select_from(rooms.outerjoin(named, named.c.room == rooms.c.room))
            .group_by(rooms.c.project, rooms.c.idx, named.c.building, raw))


def _collect(session: Session, codes: Sequence[str], periods: Sequence[Period], rules_for: RulesFor,
             now: datetime) -> list[dict[str, _Tally]]:
    """Per period, per project: the complaints counted every way, each from a grouped pass over the
    complaints of all the periods — by tier and type, by room, by resident (those with two or more)
    — and one over their tier signals, one over the group cases."""
    found: list[dict[str, _Tally]] = [{code: _Tally() for code in codes} for _period in periods]
    if not codes or not periods:
        return found
    table = kpis.periods_table(periods, now)
    w = table.c
    received = kpis.complaints_received(w)
    text_of = (case((Ticket.topic.is_(None), Ticket.description), else_=None),
               case((Ticket.topic.is_(None), Ticket.demand), else_=None))

    def grouped(*keys: Any, having: Any = None) -> Any:
        query = (select(Ticket.project.label("project"), w.idx, *keys, func.count().label("n"))
                 .select_from(Ticket).join(table, received)
                 .where(Ticket.project.in_(codes)).group_by(Ticket.project, w.idx, *keys))
        return query if having is None else query.having(having)

    topics: dict[tuple[Any, str, str], str] = {}
    configured: dict[str, Any] = {}  # project -> its escalation.complaint_topics
    connection = session.connection()  # many plain rows: Core's result, without the ORM's
    by_building = _by_building(grouped, session.get_bind().dialect.name)
    with kpis.report_settings(session):
        by_type = connection.execute(grouped(Ticket.priority, Ticket.topic, *text_of)).all()
        by_room = connection.execute(by_building).all()
        repeated = connection.execute(grouped(Ticket.resident_id, having=func.count() >= 2)).all()
        signals = connection.execute(
            select(Ticket.project, w.idx, TicketEvent.content, func.count()).select_from(Ticket).join(table, received)
            .join(TicketEvent, and_(TicketEvent.ticket_id == Ticket.id, TicketEvent.action == TIER_EVENT))
            .where(Ticket.project.in_(codes)).group_by(Ticket.project, w.idx, TicketEvent.content)).all()
    for code, index, priority, topic, description, demand, count in by_type:
        part = found[index][code]
        part.received += count
        _bump(part.tiers, priority or Priority.GENERAL.value, count)
        if topic is None:  # read from the words, once for each text and project configuration
            if code not in configured:
                configured[code] = rules_for(code).escalation.complaint_topics
            said = (configured[code], description or "", demand or "")
            if said not in topics:
                topics[said] = complaint_topic(f"{said[1]} {said[2]}", rules_for(code)) or OTHER_TOPIC
            topic = topics[said]
        _bump(part.types, topic, count)
    for code, index, building, room, count in by_room:  # the others: building_of (once a room: its cache)
        _bump(found[index][code].buildings, building or building_of(room), int(count))
    for code, index, resident_id, count in repeated:
        found[index][code].repeaters.append((resident_id, count))
    signalled: dict[tuple[int, str], int] = {}
    for code, index, content, count in signals:
        signalled[(index, code)] = signalled.get((index, code), 0) + count
        for signal in tier_signals(content or ""):
            _bump(found[index][code].causes, signal, count)
    for index, tallies in enumerate(found):
        for code, part in tallies.items():
            plain = part.received - signalled.get((index, code), 0)
            if plain > 0:
                _bump(part.causes, NO_SIGNAL, plain)
    _collect_groups(session, codes, table, now, found)
    return found


def _collect_groups(session: Session, codes: Sequence[str], table: Any, now: datetime,
                    found: list[dict[str, _Tally]]) -> None:
    w = table.c
    met, limit = kpis.met_deadline(), kpis.deadline()
    groups = session.execute(
        select(w.idx, Ticket.id, Ticket.project, Ticket.number, Ticket.topic, Ticket.room, Ticket.status,
               Ticket.created_at, met, limit)
        .select_from(Ticket).join(table, and_(Ticket.created_at >= w.start, Ticket.created_at < w.end))
        .where(Ticket.project.in_(codes), Ticket.kind == TicketKind.COMPLAINT.value, Ticket.resident_id.is_(None),
               Ticket.status != TicketStatus.CANCELLED.value)
        .order_by(Ticket.created_at, Ticket.id)).all()
    ids = sorted({row[1] for row in groups})
    members: dict[int | None, int] = {parent: count for parent, count in session.execute(
        select(Ticket.parent_id, func.count()).where(Ticket.parent_id.in_(ids)).group_by(Ticket.parent_id)).all()
    } if ids else {}
    for index, group_id, code, number, topic, room, status, created_at, was_met, due in groups:
        on_time = True if was_met else (False if due is not None and due <= now else None)
        found[index].setdefault(code, _Tally()).groups.append(GroupComplaint(
            project=code, number=number, topic=topic, place=room, status=status, members=int(members.get(group_id, 0)),
            created_at=created_at, on_time=on_time))


def _repeaters(session: Session, period: Period, tallies: Mapping[str, _Tally]) -> dict[int, RepeatComplainant]:
    """The repeat complainants to list, with their rooms and case numbers (each project's first
    REPEAT_LISTED: enough for it, and for any scope made of several)."""
    wanted = {resident_id: (code, count) for code, part in tallies.items() for resident_id, count in part.repeaters}
    ids = [rid for part in tallies.values()
           for rid, _count in sorted(part.repeaters, key=lambda item: (-item[1], item[0]))[:REPEAT_LISTED]]
    if not ids:
        return {}
    rooms: dict[int, str | None] = {rid: room for rid, room in session.execute(
        select(Resident.id, Resident.room).where(Resident.id.in_(ids))).all()}
    numbers: dict[int, list[str]] = {}
    for resident_id, number in session.execute(
            select(Ticket.resident_id, Ticket.number).where(kpis.complaints_received(period), Ticket.resident_id.in_(ids))
            .order_by(Ticket.created_at, Ticket.id)).all():
        numbers.setdefault(resident_id, []).append(number)
    return {rid: RepeatComplainant(project=wanted[rid][0], resident_id=rid, room=rooms.get(rid),
                                   complaints=wanted[rid][1], numbers=tuple(numbers.get(rid, ())))
            for rid in ids}


@dataclass
class _PeriodData:
    tallies: dict[str, _Tally]
    figures: dict[str, list[Kpi]]
    repeaters: dict[int, RepeatComplainant] = field(default_factory=dict)  # by resident id (current period only)


def _both_periods(session: Session, codes: Sequence[str], period: Period, previous_period: Period,
                  rules_for: RulesFor, now: datetime, keys: Collection[str] | None,
                  figures: Sequence[Mapping[str, list[Kpi]]] | None = None) -> tuple[_PeriodData, _PeriodData]:
    with kpis.report_settings(session):
        tallies = _collect(session, codes, [period, previous_period], rules_for, now)
        if figures is None:
            figures = kpis.kpis_by_project_for_periods(session, codes, [period, previous_period], now, keys)
        current = _PeriodData(tallies[0], dict(figures[0]), _repeaters(session, period, tallies[0]))
    return current, _PeriodData(tallies[1], dict(figures[1]))


# --- one scope from the per-project counts ---------------------------------------------------


def _rows(current: Mapping[str, int], before: Mapping[str, int], labels: Callable[[str], str] = str,
          order: Sequence[str] | None = None) -> tuple[Row, ...]:
    keys = list(order) if order is not None else sorted(
        set(current) | set(before), key=lambda k: (-current.get(k, 0), -before.get(k, 0), k))
    return tuple(Row(key, labels(key), current.get(key, 0), before.get(key, 0)) for key in keys)


def _merged(tallies: Mapping[str, _Tally], codes: Sequence[str], field_name: str,
            prefix: Callable[[str], str] | None = None) -> dict[str, int]:
    total: dict[str, int] = {}
    for code in codes:
        part = tallies.get(code)
        for key, count in (getattr(part, field_name) if part else {}).items():
            _bump(total, prefix(code) + key if prefix else key, count)
    return total


def _build(codes: Sequence[str], period: Period, previous_period: Period, now_data: _PeriodData,
           before: _PeriodData, rules_for: RulesFor) -> ComplaintAnalysis:
    def total(data: _PeriodData, name: str) -> dict[str, int]:
        return _merged(data.tallies, codes, name)

    def count(data: _PeriodData, what: Callable[[_Tally], int]) -> int:
        return sum(what(data.tallies[c]) for c in codes if c in data.tallies)

    many = len(codes) > 1
    # A building is a building of one project: across projects it is named with its project.
    place = (lambda code: f"{code}:") if many else None

    def building_label(key: str) -> str:
        if not many:
            return key
        code, _, building = key.partition(":")
        return f"{rules_for(code).name}·{building}"

    current_figures = kpis.by_key(kpis.merge([now_data.figures.get(c, []) for c in codes]))
    previous_figures = kpis.by_key(kpis.merge([before.figures.get(c, []) for c in codes]))
    rates = tuple(Compared(key, label, current_figures[key], previous_figures[key]) for key, label in RATES)
    repeat_now = [now_data.repeaters[rid] for c in codes if c in now_data.tallies
                  for rid, _n in now_data.tallies[c].repeaters if rid in now_data.repeaters]
    repeat_now.sort(key=lambda r: (-r.complaints, r.resident_id))
    groups = sorted((g for c in codes if c in now_data.tallies for g in now_data.tallies[c].groups),
                    key=lambda g: (g.created_at, g.number))
    tier_order = [tier.value for tier in TIERS]
    return ComplaintAnalysis(
        projects=tuple(codes), period=period, previous_period=previous_period,
        received=Row("received", "投诉量", count(now_data, lambda t: t.received), count(before, lambda t: t.received)),
        rates=rates,
        by_type=_rows(total(now_data, "types"), total(before, "types")),
        by_tier=_rows(total(now_data, "tiers"), total(before, "tiers"),
                      lambda key: PRIORITY_LABELS_ZH[Priority(key)], tier_order),
        by_cause=_rows(total(now_data, "causes"), total(before, "causes")),
        by_building=_rows(_merged(now_data.tallies, codes, "buildings", place),
                          _merged(before.tallies, codes, "buildings", place), building_label),
        repeat_complainants=Row("repeat_complainants", "重复投诉住户", count(now_data, lambda t: len(t.repeaters)),
                                count(before, lambda t: len(t.repeaters))),
        repeaters=tuple(repeat_now[:REPEAT_LISTED]),
        group_complaints=Row("group_complaints", "群诉", count(now_data, lambda t: len(t.groups)),
                             count(before, lambda t: len(t.groups))),
        groups=tuple(groups),
    )


def analyse(session: Session, projects: Collection[str], period: Period, previous_period: Period,
            rules_for: RulesFor, now: datetime | None = None, *,
            figures: Sequence[Mapping[str, list[Kpi]]] | None = None) -> ComplaintAnalysis:
    """The complaint analysis of these projects together, the previous period beside each figure.
    `figures`: the projects' KPIs of the two periods when the caller has them already
    (kpis.kpis_by_project_for_periods over [period, previous_period]): not worked out again."""
    codes = sorted(set(projects))
    current, before = _both_periods(session, codes, period, previous_period, rules_for, now or utcnow(),
                                    [key for key, _label in RATES], figures)
    return _build(codes, period, previous_period, current, before, rules_for)


# --- the quarter-end report -----------------------------------------------------------------


def quarterly_report_for(session: Session, projects: Collection[str], period: Period, previous_period: Period,
                         rules_for: RulesFor, now: datetime) -> dict[str, dict[str, Any]]:
    """The report of every project and of the company (key COMPANY): the KPIs and the complaint
    analysis, each with the previous period's values. One set of queries for all projects."""
    codes = sorted(set(projects))
    current, before = _both_periods(session, codes, period, previous_period, rules_for, now, None)
    scopes: dict[str, tuple[list[str], str]] = {code: ([code], rules_for(code).name) for code in codes}
    scopes[COMPANY] = (codes, "全公司")
    reports: dict[str, dict[str, Any]] = {}
    for scope, (members, name) in scopes.items():
        figures = kpis.merge([current.figures.get(c, []) for c in members])
        earlier = kpis.by_key(kpis.merge([before.figures.get(c, []) for c in members]))
        analysis = _build(members, period, previous_period, current, before, rules_for)
        reports[scope] = {
            "scope": scope, "name": name, "projects": members, "generated_at": now.isoformat(),
            "period": period_dict(period), "previous_period": period_dict(previous_period),
            "kpis": [dict(kpi_dict(kpi), previous=kpi_dict(earlier[kpi.key])) for kpi in figures],
            "complaints": analysis.to_dict(),
        }
    return reports


def reports_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the quarterly reports go: REPORTS_DIR, or var/reports of the checkout."""
    value = (os.environ if env is None else env).get("REPORTS_DIR")
    return Path(value) if value else PROJECT_ROOT / "var" / "reports"


def write_reports(reports: Mapping[str, Mapping[str, Any]], directory: Path, period: Period) -> list[Path]:
    """`<directory>/<period code>/<scope>.json`, each written whole (a temporary file renamed)."""
    folder = directory / period.code
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for scope, report in reports.items():
        path = folder / f"{re.sub(r'[^0-9A-Za-z_.-]', '_', scope)}.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(temporary, path)
        written.append(path)
    return written
