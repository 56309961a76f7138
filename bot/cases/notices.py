"""Notices to residents (停水停电, 施工, 公示, 温馨提示) and proactive care (入住回访, 节日问候).

Staff compose a notice for the project, some buildings or a list of rooms, preview it and
schedule it. Scheduling writes one delivery row per bound, following household contact of
the target (unique per notice and resident) and one job per delivery, spaced to the project's
`notices.per_minute` (WeChat rate-limits template messages); it may be run again at any time —
after a crash, or for households bound since — and creates only what is missing. The worker
sends each delivery once (`notice_delivery` job): a customer-service message inside the
48-hour window, the `notice` template outside it; no way to reach the resident is recorded as
unreachable (no staff alert per resident: the notice's summary is logged when it finishes).
A resident's reply is an ordinary message: it goes to the assistant.

The worker's daily proactive-care job calls `schedule_move_in_callbacks` (one welcome callback
per newly bound household, ever) and `schedule_holiday_greetings` (special-group households,
on the days the project greets; once per household and day); both go through the same rows.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable, NamedTuple, Sequence, cast

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    Interval,
    String,
    Table,
    Text,
    bindparam,
    exists,
    func,
    literal,
    null,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.cases.ports import Notice as Outbound
from bot.core import notices as kinds
from bot.core import replies
from bot.core.clock import to_local, to_utc_naive
from bot.core.notices import DELIVERED, FAILED, PENDING, UNREACHABLE, NoticeError
from bot.core.privacy import mask_name, mask_room
from bot.core.rooms import normalise_room, parse_room
from bot.core.rules import ProjectRules
from bot.db import queue
from bot.db.models import Job, JobStatus, NoticeDelivery, Resident, ResidentNotice
from bot.db.records import SYSTEM
from bot.db.upsert import insert_once

log = logging.getLogger(__name__)

__all__ = ["NoticeError", "DELIVERED", "FAILED", "PENDING", "UNREACHABLE", "Preview", "compose", "preview",
           "schedule", "cancel", "current_notices", "outage_addendum", "recipients", "outbound_for",
           "record_delivery", "delivery_counts", "schedule_move_in_callbacks", "schedule_holiday_greetings",
           "schedule_daily_care", "OUTBOUND_TEMPLATE"]

OUTBOUND_TEMPLATE = "notice"  # the `wechat_templates` entry that carries notices outside the window
SAMPLE_SIZE = 5


class Preview(NamedTuple):
    recipients: int  # bound, following household contacts of the target
    sample: list[str]  # a few of them, masked (3栋2单元*** 王*)
    text: str  # what each receives as a customer-service message


# A room already in the normal form (3栋2单元501, 12栋1202, A座1803): its building is what it
# starts with — what parse_room gives, without its Traditional→Simplified pass, which costs more
# than everything else per household at 20,000 of them.
_NORMAL_ROOM = re.compile(r"([1-9][0-9]{0,2}栋|[A-Z]座)(?:[1-9][0-9]?单元)?[0-9]{3,4}")


def _building(room: str | None) -> str | None:
    if not room:
        return None
    normal = _NORMAL_ROOM.fullmatch(room)
    if normal is not None:
        return normal.group(1)
    parsed = parse_room(room)
    return parsed.building if parsed else None


def _rooms_on_roster(session: Session, project: str) -> set[str]:
    return {str(room) for room in session.execute(
        select(Resident.room).where(Resident.project == project, Resident.room.is_not(None)).distinct()).scalars()}


def compose(session: Session, rules: ProjectRules, *, kind: str, title: str, body: str,
            buildings: Iterable[str] = (), rooms: Iterable[str] = (), starts_at: datetime | None = None,
            ends_at: datetime | None = None, send_at: datetime | None = None, actor: str, now: datetime,
            dedupe_key: str | None = None) -> ResidentNotice:
    """A draft notice of the project. Times are naive UTC; no `send_at`: now. Refused (NoticeError)
    for an unknown kind, a title that does not fit WeChat's template field, a body too long, an
    outage or works notice without its period, a room that cannot be read or is not on the
    roster, a building where the project has no household."""
    if kind not in kinds.KINDS:
        raise NoticeError(f"unknown kind {kind!r}; one of {', '.join(kinds.KINDS)}")
    title, body = kinds.check_text(title, body, rules.notices.body_max_chars)
    if kind in kinds.PERIOD_KINDS and (starts_at is None or ends_at is None):
        raise NoticeError(f"a {kinds.KIND_LABELS_ZH[kind]} notice needs the period it is about (start and end)")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise NoticeError("the period ends before it starts")
    send_at = send_at or now
    if ends_at is not None and send_at >= ends_at:
        raise NoticeError("the notice would go out after the period it is about")
    buildings, rooms = list(buildings), list(rooms)
    on_roster = _rooms_on_roster(session, rules.code) if buildings or rooms else set()
    known_buildings = {b for b in (_building(room) for room in on_roster) if b} if buildings else set()
    wanted_buildings = []
    for raw in buildings:
        building = kinds.normalise_building(raw)
        if building is None or building not in known_buildings:
            raise NoticeError(f"unknown building {raw!r} in project {rules.code}")
        wanted_buildings.append(building)
    wanted_rooms = []
    for raw in rooms:
        room = normalise_room(raw)
        if room is None:
            raise NoticeError(f"cannot read the room {raw!r}")
        if room not in on_roster:
            raise NoticeError(f"room {room} is not on the roster of project {rules.code}")
        wanted_rooms.append(room)
    notice = ResidentNotice(project=rules.code, kind=kind, title=title, body=body,
                            target=kinds.target_of(wanted_buildings, wanted_rooms), starts_at=starts_at,
                            ends_at=ends_at, send_at=send_at, created_by=actor[:64], created_at=now,
                            status=kinds.DRAFT, dedupe_key=dedupe_key)
    session.add(notice)
    session.flush()
    return notice


def _reachable(notice: ResidentNotice) -> list[ColumnElement[bool]]:
    return [Resident.project == notice.project, Resident.bound_at.is_not(None), Resident.subscribed.is_(True),
            Resident.openid.is_not(None)]


def _in_target(notice: ResidentNotice) -> Callable[[str | None], bool]:
    """kinds.in_target for one notice's households by room: its rooms and buildings made sets
    once, a room's building read only when the target names buildings and not that room."""
    target = notice.target or {}
    rooms, buildings = set(target.get("rooms") or ()), set(target.get("buildings") or ())
    if not rooms and not buildings:
        return lambda room: True  # the whole project
    return lambda room: (room is not None and room in rooms) or (bool(buildings) and _building(room) in buildings)


def recipients(session: Session, notice: ResidentNotice) -> list[Resident]:
    """Who gets it: the bound, following household contacts (with an openid) of the notice's
    project whose room is in its target."""
    residents = session.execute(
        select(Resident).where(*_reachable(notice)).order_by(Resident.room, Resident.id)).scalars().all()
    targeted = _in_target(notice)
    return [r for r in residents if targeted(r.room)]


def _recipient_ids(session: Session, notice: ResidentNotice) -> list[int]:
    """recipients()' ids, in the same order, from two columns (no Resident objects)."""
    rows = session.execute(select(Resident.id, Resident.room).where(*_reachable(notice))
                           .order_by(Resident.room, Resident.id)).tuples()
    targeted = _in_target(notice)
    return [resident_id for resident_id, room in rows if targeted(room)]


def preview(session: Session, rules: ProjectRules, notice: ResidentNotice) -> Preview:
    """How many will get it, a few of them (masked), and the text."""
    rows = session.execute(select(Resident.room, Resident.name).where(*_reachable(notice))
                           .order_by(Resident.room, Resident.id)).tuples()
    targeted = _in_target(notice)
    found = [(room, name) for room, name in rows if targeted(room)]
    sample = [f"{mask_room(room)} {mask_name(name)}".strip() for room, name in found[:SAMPLE_SIZE]]
    return Preview(len(found), sample, replies.notice_text(notice, rules))


def _job_key(notice_id: int, resident_id: int) -> str:
    return f"{queue.NOTICE_DELIVERY}:{notice_id}:{resident_id}"


BATCH = 5000  # rows per INSERT on SQLite (insertmanyvalues pages)
_DELIVERIES = cast(Table, NoticeDelivery.__table__)
_JOBS = cast(Table, Job.__table__)


def _insert_new(session: Session, table: Table, rows: list[dict[str, Any]], unique: list[str]) -> int:
    """INSERT … ON CONFLICT (unique) DO NOTHING RETURNING the key, for SQLite: how many this call
    created (a row another scheduler wrote first is left alone). A Core statement compiled once
    and run for every row (SQLAlchemy's insertmanyvalues: `BATCH` rows a statement), plain dicts."""
    if not rows:
        return 0
    statement = (sqlite.insert(table).on_conflict_do_nothing(index_elements=unique).returning(table.c[unique[0]])
                 .execution_options(insertmanyvalues_page_size=BATCH))
    return len(session.execute(statement, rows).all())


def _ids(ids: Sequence[int]) -> Any:
    """PostgreSQL: the ids as one integer[] parameter, a row each (with its position `n`, from 1)."""
    array = sql_cast(bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer)), postgresql.ARRAY(Integer))
    return func.unnest(array).table_valued("id", with_ordinality="n").render_derived()


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _new_deliveries(session: Session, notice: ResidentNotice, resident_ids: Sequence[int]) -> int:
    """A pending delivery for each of them that has none: how many this call created."""
    if not resident_ids:
        return 0
    if session.get_bind().dialect.name != "postgresql":
        return _insert_new(session, _DELIVERIES, [
            {"notice_id": notice.id, "resident_id": resident_id, "project": notice.project, "status": kinds.PENDING}
            for resident_id in resident_ids], ["notice_id", "resident_id"])
    # One INSERT … SELECT FROM unnest(ids): the rows are made in the server, not in Python.
    ids = _ids(resident_ids)
    rows = select(literal(notice.id, Integer), ids.c.id, literal(notice.project, String),
                  literal(kinds.PENDING, String)).select_from(ids)
    statement = (postgresql.insert(_DELIVERIES)
                 .from_select(["notice_id", "resident_id", "project", "status"], rows)
                 .on_conflict_do_nothing(index_elements=["notice_id", "resident_id"]))
    return _rowcount(session.execute(statement))


def _new_jobs(session: Session, rules: ProjectRules, notice: ResidentNotice, resident_ids: Sequence[int],
              start: datetime, spacing: timedelta, now: datetime) -> int:
    """A `notice_delivery` job for each of them, the n-th due at start + n × spacing (unless one
    is there under its key): how many this call created."""
    if not resident_ids:
        return 0
    prefix = _job_key(notice.id, 0)[:-1]
    common = {"kind": queue.NOTICE_DELIVERY, "project": notice.project, "ticket_id": None, "survey_id": None,
              "status": JobStatus.PENDING.value, "attempts": 0, "max_attempts": rules.follow_up.job_max_attempts,
              "created_at": now, "updated_at": now}
    if session.get_bind().dialect.name != "postgresql":
        return _insert_new(session, _JOBS, [
            {**common, "payload": {"notice_id": notice.id, "resident_id": resident_id},
             "due_at": start + spacing * index, "idempotency_key": f"{prefix}{resident_id}"}
            for index, resident_id in enumerate(resident_ids)], ["idempotency_key"])
    # One INSERT … SELECT: the due times, keys and payloads computed in the server. The payload is
    # built as jsonb and stored as json: the text json.dumps writes ({"notice_id": 1, "resident_id": 2}).
    ids = _ids(resident_ids)
    values: dict[str, Any] = {name: literal(value, _JOBS.c[name].type) if value is not None else null()
                              for name, value in common.items()}
    values["payload"] = sql_cast(func.jsonb_build_object(literal("notice_id", Text), literal(notice.id, Integer),
                                                         literal("resident_id", Text), ids.c.id), JSON)
    values["due_at"] = literal(start, DateTime) + literal(spacing, Interval) * (ids.c.n - 1)
    values["idempotency_key"] = literal(prefix, String) + sql_cast(ids.c.id, String)
    statement = (postgresql.insert(_JOBS).from_select(list(values), select(*values.values()).select_from(ids))
                 .on_conflict_do_nothing(index_elements=["idempotency_key"]))
    return _rowcount(session.execute(statement))


def _queue_end(session: Session, project: str) -> datetime | None:
    """When the project's last waiting delivery is due: a new notice queues behind it, so two
    notices at once still keep to the rate (a retry waiting out its backoff holds nobody up)."""
    return session.execute(select(func.max(Job.due_at)).where(
        Job.kind == queue.NOTICE_DELIVERY, Job.project == project, Job.status == JobStatus.PENDING.value,
        Job.attempts == 0)).scalar()


def schedule(session: Session, rules: ProjectRules, notice: ResidentNotice, now: datetime) -> tuple[int, int]:
    """One delivery row and one job per recipient, the jobs spaced to `notices.per_minute` from
    the notice's send time (behind the project's other waiting deliveries). Running it again
    creates only what is missing. Returns (deliveries created, already there)."""
    if notice.status == kinds.CANCELLED:
        raise NoticeError(f"notice {notice.id} was cancelled")
    spacing = timedelta(seconds=60 / max(rules.notices.per_minute, 1))
    start = max(notice.send_at, now)
    waiting = _queue_end(session, notice.project)
    if waiting is not None and waiting + spacing > start:
        start = waiting + spacing
    existing = {resident_id: status for resident_id, status in session.execute(
        select(NoticeDelivery.resident_id, NoticeDelivery.status).where(NoticeDelivery.notice_id == notice.id))}
    # A job is written with its delivery, in the same transaction: none yet, none queued (the
    # LIKE on the keys reads every job of the table, so it is only asked on a rerun).
    queued = set(session.execute(select(Job.idempotency_key).where(
        Job.kind == queue.NOTICE_DELIVERY, Job.idempotency_key.startswith(_job_key(notice.id, 0)[:-1],
                                                                          autoescape=True))).scalars()) \
        if existing else set()
    targets = _recipient_ids(session, notice)
    created = _new_deliveries(session, notice, [resident_id for resident_id in targets if resident_id not in existing])
    already = len(targets) - created  # there before, or written meanwhile by another scheduler
    unqueued = [resident_id for resident_id in targets
                if existing.get(resident_id, kinds.PENDING) == kinds.PENDING
                and _job_key(notice.id, resident_id) not in queued]
    jobs = _new_jobs(session, rules, notice, unqueued, start, spacing, now)
    if notice.status == kinds.DRAFT:
        notice.status = kinds.SCHEDULED
    elif notice.status == kinds.SENT and (created or jobs):
        notice.status = kinds.SENDING  # households bound since it went out get it too
    if not existing and not created:
        _finish_if_done(session, notice)  # nobody in the target: done at once
    log.info("notice %d (%s, %s): %d deliveries scheduled, %d already there, from %s", notice.id, notice.kind,
             notice.project, created, already, start.isoformat(timespec="seconds"))
    return created, already


def cancel(session: Session, notice: ResidentNotice, now: datetime) -> int:
    """Withdraw it: what was not sent yet is not sent (its jobs and deliveries cancelled), and
    it no longer counts as current for the FAQ. Returns how many deliveries were withdrawn."""
    notice.status = kinds.CANCELLED
    session.execute(update(Job).where(
        Job.kind == queue.NOTICE_DELIVERY, Job.status == JobStatus.PENDING.value,
        Job.idempotency_key.startswith(f"{queue.NOTICE_DELIVERY}:{notice.id}:", autoescape=True))
        .values(status=JobStatus.CANCELLED.value, updated_at=now, finished_at=now)
        .execution_options(synchronize_session=False))
    result = session.execute(update(NoticeDelivery).where(
        NoticeDelivery.notice_id == notice.id, NoticeDelivery.status == kinds.PENDING)
        .values(status=kinds.WITHDRAWN).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def current_notices(session: Session, project: str, now: datetime, kind: str | Sequence[str] | None = None,
                    *, within_days: int = 3) -> list[ResidentNotice]:
    """The project's announced notices (their send time has come, not cancelled) whose period
    covers now or starts within `within_days`; a notice about no period counts for
    `within_days` after it went out. Soonest first."""
    stmt = select(ResidentNotice).where(ResidentNotice.project == project, ResidentNotice.send_at <= now,
                                        ResidentNotice.status.in_(kinds.ANNOUNCED))
    if kind is not None:
        stmt = stmt.where(ResidentNotice.kind.in_([kind] if isinstance(kind, str) else list(kind)))
    ahead = timedelta(days=within_days)
    found = [n for n in session.execute(stmt).scalars() if kinds.is_current(n, now, ahead)]
    return sorted(found, key=lambda n: (n.starts_at or n.send_at, n.id))


def outage_addendum(session: Session, rules: ProjectRules, now: datetime) -> str:
    """What the FAQ's 停水停电 answer adds: the project's current outage and works notices ("" for none)."""
    found = current_notices(session, rules.code, now, kinds.OUTAGE_KINDS,
                            within_days=rules.notices.current_within_days)
    return replies.current_notices(found, rules)


# --- the worker's side: one delivery ----------------------------------------------------------


def _delivery(session: Session, notice_id: int, resident_id: int) -> NoticeDelivery | None:
    return session.execute(select(NoticeDelivery).where(
        NoticeDelivery.notice_id == notice_id, NoticeDelivery.resident_id == resident_id)).scalar_one_or_none()


def _values(notice: ResidentNotice, rules: ProjectRules, now: datetime) -> dict[str, str]:
    """What the `notice` template's fields may use (see `wechat_templates` in the project file)."""
    return {"project": rules.name, "time": f"{to_local(now, rules.timezone):%Y-%m-%d %H:%M}", "title": notice.title,
            "period": replies.notice_period_field(notice, rules), "summary": notice.body,
            "kind": kinds.KIND_LABELS_ZH.get(notice.kind, ""), "number": "", "status": ""}


def outbound_for(session: Session, rules: ProjectRules, notice_id: int, resident_id: int,
                 now: datetime) -> Outbound | None:
    """The message for one pending delivery; None when there is nothing to send (already sent,
    withdrawn, or the resident cannot be reached any more: then recorded as unreachable)."""
    delivery = _delivery(session, notice_id, resident_id)
    if delivery is None or delivery.status != kinds.PENDING:
        return None
    notice = session.get(ResidentNotice, notice_id)
    if notice is None or notice.status == kinds.CANCELLED:
        delivery.status = kinds.WITHDRAWN
        return None
    resident = session.get(Resident, resident_id)
    if resident is None or not resident.openid or not resident.subscribed:
        record_delivery(session, notice_id, resident_id, status=kinds.UNREACHABLE, now=now,
                        error="no longer following the official account")
        return None
    if notice.status == kinds.SCHEDULED:
        notice.status = kinds.SENDING
    return Outbound(resident.openid, replies.notice_text(notice, rules), key=f"notice:{notice_id}:{resident_id}",
                    template=OUTBOUND_TEMPLATE, values=_values(notice, rules, now), project=notice.project)


def record_delivery(session: Session, notice_id: int, resident_id: int, *, status: str, now: datetime,
                    via: str | None = None, error: str | None = None) -> None:
    """What came of one attempt: sent, failed (for good), unreachable, or still pending (a failed
    attempt the job retries; its error is kept). A finished notice is marked sent, with a summary."""
    delivery = _delivery(session, notice_id, resident_id)
    if delivery is None or delivery.status != kinds.PENDING:
        return
    delivery.status = status
    delivery.error = error[:2000] if error else None
    if via:
        delivery.via = via
    if status == kinds.DELIVERED:
        delivery.sent_at = now
    if status in kinds.FINISHED:
        notice = session.get(ResidentNotice, notice_id)
        if notice is not None:
            session.flush()
            _finish_if_done(session, notice)


def delivery_counts(session: Session, notice_id: int) -> dict[str, int]:
    return {status: count for status, count in session.execute(
        select(NoticeDelivery.status, func.count()).where(NoticeDelivery.notice_id == notice_id)
        .group_by(NoticeDelivery.status))}


def _finish_if_done(session: Session, notice: ResidentNotice) -> None:
    if notice.status not in (kinds.SCHEDULED, kinds.SENDING):
        return
    if session.execute(select(exists().where(NoticeDelivery.notice_id == notice.id,
                                             NoticeDelivery.status == kinds.PENDING))).scalar():
        return  # one index probe per delivery sent, not counting all of the notice's rows each time
    counts = delivery_counts(session, notice.id)
    notice.status = kinds.SENT
    summary = ", ".join(f"{counts[s]} {s}" for s in kinds.FINISHED if counts.get(s)) or "nobody in its target"
    log.info("notice %d (%s, %s) finished: %s", notice.id, notice.kind, notice.project, summary)


# --- proactive care ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Household:
    room: str
    first_bound: datetime | None
    tags: frozenset[str]


def _households(session: Session, project: str) -> dict[str, _Household]:
    """The project's occupied households by room (一户一档: every contact of a room), with when the
    first of them was bound and the special-group tags any of them carries."""
    contacts: dict[str, list[Resident]] = {}
    for resident in session.execute(select(Resident).where(Resident.project == project,
                                                           Resident.room.is_not(None))).scalars():
        contacts.setdefault(str(resident.room), []).append(resident)
    households = {}
    for room, people in contacts.items():
        if not any(person.occupancy == "occupied" for person in people):
            continue  # 空关 / 装修: nobody lives there yet
        bound = [person.bound_at for person in people if person.bound_at is not None]
        households[room] = _Household(room, min(bound) if bound else None,
                                      frozenset(str(tag) for person in people for tag in person.tags or ()))
    return households


def _care_notice(session: Session, rules: ProjectRules, *, key: str, kind: str, title: str, text: str,
                 rooms: Sequence[str], send_at: datetime, now: datetime) -> tuple[ResidentNotice, bool]:
    """The system's notice under `key`, created once (whichever worker gets there first)."""
    body = text.format(project=rules.name, phone=rules.service_hours.phone)
    created = insert_once(session, ResidentNotice, "dedupe_key", dict(
        project=rules.code, kind=kind, title=title, body=body, target=kinds.target_of((), rooms), starts_at=None,
        ends_at=None, send_at=send_at, created_by=SYSTEM, created_at=now, status=kinds.DRAFT, dedupe_key=key))
    notice = session.execute(select(ResidentNotice).where(ResidentNotice.dedupe_key == key)).scalar_one()
    return notice, created


def _care_time(rules: ProjectRules, day: date, now: datetime) -> datetime:
    local = datetime.combine(day, rules.notices.care_time, tzinfo=rules.timezone)
    return max(to_utc_naive(local), now)


def schedule_move_in_callbacks(session: Session, rules: ProjectRules, now: datetime) -> int:
    """A welcome callback (入住回访) to every occupied household of the project first bound within
    `notices.welcome.within_days` that never had one: one notice per household, ever, to each of
    its bound contacts. Returns how many households were newly scheduled."""
    since = now - timedelta(days=rules.notices.welcome_within_days)
    created = 0
    for room, household in sorted(_households(session, rules.code).items()):
        if household.first_bound is None or household.first_bound < since:
            continue
        notice, new = _care_notice(session, rules, key=f"welcome:{rules.code}:{room}", kind=kinds.WELCOME_CALLBACK,
                                   title=rules.notices.welcome_title, text=rules.notices.welcome_text, rooms=[room],
                                   send_at=now, now=now)
        if new:
            schedule(session, rules, notice, now)
            created += 1
    return created


def schedule_holiday_greetings(session: Session, rules: ProjectRules, day: date, *, now: datetime) -> int:
    """On a day the project greets (`notices.greetings.days`: a date, or an official holiday's first
    day off), the special-group households (`notices.greetings.tags`, on any of the room's contacts)
    get the greeting at `notices.care_time`: one notice per project and day, one delivery per
    contact. Returns how many deliveries were newly scheduled."""
    text = kinds.greeting_for(day, rules.notices.greetings, rules.calendar.use_official)
    if not text:
        return 0
    wanted = set(rules.notices.greeting_tags)
    rooms = sorted(room for room, household in _households(session, rules.code).items() if household.tags & wanted)
    if not rooms:
        return 0
    notice, _new = _care_notice(session, rules, key=f"greeting:{rules.code}:{day.isoformat()}",
                                kind=kinds.HOLIDAY_GREETING, title=rules.notices.greeting_title, text=text,
                                rooms=rooms, send_at=_care_time(rules, day, now), now=now)
    if notice.status == kinds.CANCELLED:
        return 0
    known = list((notice.target or {}).get("rooms") or ())
    if set(rooms) - set(known):
        notice.target = kinds.target_of((), sorted(set(known) | set(rooms)))  # tagged since the first run
    created, _already = schedule(session, rules, notice, now)
    return created


def schedule_daily_care(session: Session, rules: ProjectRules, now: datetime) -> bool:
    """The day's proactive-care job (the worker runs both of the above for every project) at
    `notices.care_time`, tomorrow's once that has passed; one per local day. True when new."""
    local = to_local(now, rules.timezone)
    at = local.replace(hour=rules.notices.care_time.hour, minute=rules.notices.care_time.minute, second=0,
                       microsecond=0)
    if at < local:
        at = at + timedelta(days=1)
    return queue.enqueue(session, kind=queue.PROACTIVE_CARE, project=rules.code, due_at=to_utc_naive(at),
                         key=f"{queue.PROACTIVE_CARE}:{at.date().isoformat()}", now=now,
                         max_attempts=rules.follow_up.job_max_attempts)
