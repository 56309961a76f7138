"""一户一档: the household roster, and binding a WeChat openid to it."""
from __future__ import annotations

import csv
import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Collection, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.cases.tickets import RESIDENT, add_event, find_or_create_resident, open_staff_follow_up
from bot.core.clock import to_local, to_utc_naive, utcnow
from bot.core.kinds import TicketKind
from bot.core.lifecycle import OPEN_STATUS_VALUES
from bot.core.phones import PHONE_RE, normalise_phone
from bot.core.privacy import mask_phone
from bot.core.rooms import normalise_room
from bot.core.rules import ProjectRules
from bot.db.models import BindingAttempt, Resident, Ticket
from bot.db.records import current_contact

SPECIAL_GROUPS = {"空巢老人": "empty_nest_elderly", "独居老人": "living_alone_elderly", "残疾人": "disabled",
                  "智力障碍人员": "intellectual_disability"}
ROSTER_COLUMNS = ("room", "name", "phone")


class RosterError(ValueError):
    pass


def import_roster(session: Session, path: Path, *, projects: Collection[str], default_project: str,
                  now: datetime | None = None) -> tuple[int, int]:
    """Load `room,name,phone[,project,customer_type,property_use,occupancy,tags]` rows (UTF-8 CSV
    with header); a row without a project belongs to `default_project`.

    Upserts by project + room + phone; returns (created, updated). A bad row (an unreadable room
    or phone, a project the registry does not know) aborts the whole import.
    """
    now = now or utcnow()
    created = updated = 0
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ROSTER_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise RosterError(f"missing column(s): {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            room = normalise_room(row["room"])
            phone = normalise_phone(row["phone"])
            if not room or not phone:
                raise RosterError(f"line {line}: cannot read room {row['room']!r} or phone")
            project = (row.get("project") or "").strip() or default_project
            if project not in projects:
                raise RosterError(f"line {line}: unknown project {project!r}")
            tags = [SPECIAL_GROUPS.get(t.strip(), t.strip()) for t in (row.get("tags") or "").split(";") if t.strip()]
            resident = session.execute(
                select(Resident).where(Resident.project == project, Resident.room == room, Resident.phone == phone)
            ).scalar_one_or_none()
            if resident is None:
                resident = Resident(project=project, room=room, phone=phone, created_at=now, tags=[])
                session.add(resident)
                created += 1
            else:
                updated += 1
            resident.name = (row.get("name") or "").strip() or resident.name
            resident.customer_type = (row.get("customer_type") or "").strip() or resident.customer_type or "individual"
            resident.property_use = (row.get("property_use") or "").strip() or resident.property_use or "residential"
            resident.occupancy = (row.get("occupancy") or "").strip() or resident.occupancy or "occupied"
            resident.tags = tags or list(resident.tags or [])
            resident.updated_at = now
    session.flush()
    return created, updated


class BindOutcome(str, enum.Enum):
    BOUND = "bound"
    ALREADY_BOUND = "already_bound"
    MISMATCH = "mismatch"  # room known, phone not on file for it (or taken by another account)
    UNKNOWN_ROOM = "unknown_room"
    TOO_MANY = "too_many"  # the day's failed tries are used up (for this resident or this room)


BINDING_CHECK_PREFIX = "微信绑定核实"


@dataclass(frozen=True)
class BindResult:
    outcome: BindOutcome
    room: str
    follow_up_number: str | None = None


def bound_homes(session: Session, openid: str) -> Sequence[Resident]:
    """The resident's verified households, the one chosen last first (an owner of two flats has two)."""
    return session.execute(
        select(Resident).where(Resident.openid == openid, Resident.bound_at.is_not(None))
        .order_by(Resident.selected_at.desc().nulls_last(), Resident.bound_at.desc(), Resident.id.desc())
    ).scalars().all()


def bound_resident(session: Session, openid: str) -> Resident | None:
    homes = bound_homes(session, openid)
    return homes[0] if homes else None


def bound_room(session: Session, openid: str) -> str | None:
    """The verified room of a bound household; None when the resident is not bound, or has
    several households (then they say which one the case is about)."""
    homes = bound_homes(session, openid)
    return homes[0].room if len(homes) == 1 else None


def home_for_room(session: Session, openid: str, room: str | None) -> Resident | None:
    """The resident's verified household with this room (its project is the case's)."""
    if not room:
        return None
    return next((home for home in bound_homes(session, openid) if home.room == room), None)


def enter_project(session: Session, openid: str, project: str, now: datetime | None = None) -> Resident:
    """The resident came in through a project's own QR code: from now on they are its resident
    (their record there is chosen; created on first contact). The caller checks the code."""
    now = now or utcnow()
    resident = find_or_create_resident(session, openid, project=project, now=now)
    resident.selected_at = now
    resident.updated_at = now
    return resident


def bind_resident(session: Session, rules: ProjectRules, *, openid: str, room: str, phone: str,
                  channel: str, projects: Collection[str] | None = None, now: datetime | None = None) -> BindResult:
    """Bind the openid to the roster entry with this room and phone; never guess. The roster says
    which project the room is in (of `projects`, e.g. those served through this account; None:
    all). `rules` are those of the resident's current project: its limits and its follow-up case.

    A mismatch is answered clearly and opens an enquiry ticket for staff to check.
    """
    now = now or utcnow()
    in_scope = (Resident.project.in_(list(projects)),) if projects is not None else ()
    home = next((h for h in bound_homes(session, openid) if h.room == room and (projects is None
                                                                                or h.project in projects)), None)
    if home is not None:
        return BindResult(BindOutcome.ALREADY_BOUND, home.room or room)
    if _tries_used_up(session, rules, openid=openid, room=room, now=now):
        session.add(BindingAttempt(openid=openid, room=room, outcome=BindOutcome.TOO_MANY.value, at=now))
        return BindResult(BindOutcome.TOO_MANY, room)
    entries = session.execute(select(Resident).where(Resident.room == room, Resident.openid.is_(None), *in_scope)
                              ).scalars().all()
    household = session.execute(select(Resident.id).where(Resident.room == room, *in_scope)).first()
    match = next((r for r in entries if r.phone == phone), None)
    current = session.execute(select(Resident).where(
        Resident.openid == openid, Resident.project == (match.project if match else rules.code))).scalar_one_or_none()
    if current is not None and current.bound_at is not None and match is not None:
        return BindResult(BindOutcome.ALREADY_BOUND, current.room or room)  # one household per project
    if match is None:
        outcome = BindOutcome.MISMATCH if household else BindOutcome.UNKNOWN_ROOM
        session.add(BindingAttempt(openid=openid, room=room, outcome=outcome.value, at=now))
        resident = current or find_or_create_resident(session, openid, project=rules.code, now=now)
        said = (f"住户自报房号 {room}、手机 {mask_phone(phone)}，"
                f"{'与登记电话不符' if household else '登记中没有该房号'}")
        ticket = _open_binding_check(session, rules, resident, channel=channel, room=room, said=said, now=now)
        return BindResult(outcome, room, ticket.number)
    if current is not None:
        # Cases opened before binding move into the household file.
        session.execute(update(Ticket).where(Ticket.resident_id == current.id).values(resident_id=match.id)
                        .execution_options(synchronize_session=False))
        match.subscribed = current.subscribed
        match.last_message_at = current.last_message_at
        session.delete(current)
        session.flush()
    match.openid = openid
    match.bound_at = match.selected_at = match.updated_at = now
    return BindResult(BindOutcome.BOUND, room)


# Failed-binding records count within one local day; after that they only hold an openid and a room.
BINDING_ATTEMPTS_KEPT = timedelta(days=2)


def forget_binding_attempts(session: Session, now: datetime) -> int:
    """Drop failed-binding records past BINDING_ATTEMPTS_KEPT (the daily housekeeping job)."""
    old = session.execute(select(BindingAttempt).where(BindingAttempt.at < now - BINDING_ATTEMPTS_KEPT)).scalars().all()
    for attempt in old:
        session.delete(attempt)
    return len(old)


def _tries_used_up(session: Session, rules: ProjectRules, *, openid: str, room: str, now: datetime) -> bool:
    """The day's failed tries are spent, for this resident or for this room (local day)."""
    local = to_local(now, rules.timezone)
    day_start = to_utc_naive(local.replace(hour=0, minute=0, second=0, microsecond=0))
    today = (BindingAttempt.at >= day_start, BindingAttempt.outcome != BindOutcome.TOO_MANY.value)
    by_resident = session.execute(select(func.count()).select_from(BindingAttempt)
                                  .where(BindingAttempt.openid == openid, *today)).scalar_one()
    by_room = session.execute(select(func.count()).select_from(BindingAttempt)
                              .where(BindingAttempt.room == room, *today)).scalar_one()
    limits = rules.binding
    return by_resident >= limits.max_failures_per_resident_per_day or by_room >= limits.max_failures_per_room_per_day


def _open_binding_check(session: Session, rules: ProjectRules, resident: Resident, *, channel: str, room: str,
                        said: str, now: datetime) -> Ticket:
    """One open check per resident: a further failed try is added to it, not a new case."""
    waiting = session.execute(
        select(Ticket).where(Ticket.resident_id == resident.id, Ticket.kind == TicketKind.ENQUIRY.value,
                             Ticket.status.in_(OPEN_STATUS_VALUES), Ticket.description.startswith(BINDING_CHECK_PREFIX))
        .order_by(Ticket.id.desc()).limit(1)
    ).scalar_one_or_none()
    if waiting is not None:
        add_event(session, waiting, actor=RESIDENT, channel=channel, action="binding_attempt", content=said, now=now)
        return waiting
    return open_staff_follow_up(session, rules, resident=resident, channel=channel, room=room,
                                description=f"{BINDING_CHECK_PREFIX}：{said}，请联系核实后人工绑定。", now=now)


def note_contact(session: Session, openid: str, *, project: str, subscribed: bool | None = None,
                 now: datetime | None = None) -> tuple[Resident, bool]:
    """Record that the resident wrote (or (un)followed), on their current record; a first contact
    lands in `project`. Returns (resident, first_contact)."""
    now = now or utcnow()
    existing = current_contact(session, openid)
    resident = existing or find_or_create_resident(session, openid, project=project, now=now)
    if subscribed is True:
        resident.subscribed = True
        resident.unsubscribed_at = None
    elif subscribed is False:
        resident.subscribed = False
        resident.unsubscribed_at = now
    else:
        resident.last_message_at = now
    resident.updated_at = now
    return resident, existing is None


def mentions_binding(text: str) -> tuple[str, str] | None:
    """(room, phone) when a message carries both, which is how residents bind."""
    phone = normalise_phone(text)
    room = normalise_room(PHONE_RE.sub(" ", text)) if phone else None
    return (room, phone) if room and phone else None

