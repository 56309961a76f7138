"""Self-service on the household file (一户一档): a new phone number, and the cases of the past year.

A resident's word never changes the file by itself. A new phone number is applied at once
only when the roster (imported by staff, `bot.cases.residents.import_roster`) already lists
it for the household's room; otherwise it waits in an enquiry case (咨询) until a staff
member has phoned the new number and confirms it (`confirm_phone_change`).
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.cases.residents import bound_resident
from bot.cases.tickets import RESIDENT, add_event, find_ticket, open_staff_follow_up, resolve_ticket
from bot.core.clock import utcnow
from bot.core.kinds import TicketKind, TicketStatus
from bot.core.lifecycle import OPEN_STATUS_VALUES, OPEN_STATUSES
from bot.core.phones import normalise_phone
from bot.core.privacy import mask_openid, mask_phone
from bot.core.rules import ProjectRules
from bot.core.self_service import months_before
from bot.db.models import Resident, Survey, Ticket
from bot.db.records import SYSTEM

log = logging.getLogger(__name__)

PHONE_CHANGE_PREFIX = "住户申请更换手机号"
# The number asked for, in full, is in this event's content: staff phone it before confirming.
# (Staff views show it to managers only; agents see it masked, as all contact data.)
PHONE_CHANGE_EVENT = "phone_change_requested"


class PhoneChangeError(ValueError):
    """Staff tried to confirm something that is not an open phone-change request, or cannot be applied."""


class PhoneChange(str, enum.Enum):
    APPLIED = "applied"  # the roster lists the number for the household's room: the file carries it now
    PENDING = "pending"  # a staff member verifies it first (an enquiry case)
    UNCHANGED = "unchanged"  # it is the number on file already
    NOT_BOUND = "not_bound"  # no household file to change: bind first


@dataclass(frozen=True)
class PhoneChangeResult:
    outcome: PhoneChange
    phone: str
    follow_up_number: str | None = None


def _roster_entry(session: Session, resident: Resident, phone: str) -> Resident | None:
    """The roster's own, unbound entry for this phone in the household's room, if it is this
    resident's (the same name, or a name missing on either side). Another member of the
    household listed with that phone (换成我老公的号码) is for staff to sort out."""
    if not resident.room:
        return None
    entries = session.execute(select(Resident).where(
        Resident.room == resident.room, Resident.phone == phone, Resident.openid.is_(None),
        Resident.id != resident.id).order_by(Resident.id)).scalars().all()
    return next((e for e in entries if not e.name or not resident.name or e.name == resident.name), None)


def _taken_in_room(session: Session, resident: Resident, phone: str) -> bool:
    """Another bound account of the same room already carries this phone."""
    return session.execute(select(Resident.id).where(
        Resident.room == resident.room, Resident.phone == phone, Resident.openid.is_not(None),
        Resident.id != resident.id)).first() is not None


def _apply(session: Session, resident: Resident, phone: str, now: datetime) -> None:
    """The file takes the phone. The roster entry that lists it (if any) is folded in, so that a
    room and a phone stay one record (`import_roster` upserts by them): its cases, surveys and
    special-group tags move over, its name fills a missing one."""
    entry = _roster_entry(session, resident, phone)
    if entry is not None:
        for table in (Ticket, Survey):
            session.execute(update(table).where(table.resident_id == entry.id).values(resident_id=resident.id)
                            .execution_options(synchronize_session=False))
        resident.name = resident.name or entry.name
        resident.tags = list(dict.fromkeys([*(resident.tags or []), *(entry.tags or [])]))
        session.delete(entry)
        session.flush()
    resident.phone = phone
    resident.updated_at = now


def _waiting_request(session: Session, resident: Resident) -> Ticket | None:
    return session.execute(
        select(Ticket).where(Ticket.resident_id == resident.id, Ticket.kind == TicketKind.ENQUIRY.value,
                             Ticket.status.in_(OPEN_STATUS_VALUES), Ticket.description.startswith(PHONE_CHANGE_PREFIX))
        .order_by(Ticket.id.desc()).limit(1)
    ).scalar_one_or_none()


def _describe(resident: Resident, phone: str) -> str:
    return (f"{PHONE_CHANGE_PREFIX}：{resident.room or '房号未登记'}，现登记 {mask_phone(resident.phone) or '无'}，"
            f"申请改为 {mask_phone(phone)}（完整号码见记录）。请致电新号码核实后确认。")


def change_phone(session: Session, rules: ProjectRules, *, openid: str, phone: str, said: str, channel: str,
                 now: datetime | None = None) -> PhoneChangeResult:
    """A bound resident gives a new phone number: applied if the roster confirms it, else a request for staff.

    Asking again while a request waits adds to that request (the newest number counts)."""
    now = now or utcnow()
    number = normalise_phone(phone)
    if number is None:
        raise ValueError("not a mainland mobile number")
    resident = bound_resident(session, openid)
    if resident is None:
        return PhoneChangeResult(PhoneChange.NOT_BOUND, number)
    if resident.phone == number:
        return PhoneChangeResult(PhoneChange.UNCHANGED, number)
    waiting = _waiting_request(session, resident)
    if _roster_entry(session, resident, number) is not None:
        _apply(session, resident, number, now)
        if waiting is not None:
            resolve_ticket(session, rules, waiting, actor=SYSTEM, channel=channel, now=now,
                           note=f"住户档案中已登记 {mask_phone(number)}，已自动更新，无需人工核实。")
        log.info("phone of %s changed to %s (listed on the roster)", mask_openid(openid), mask_phone(number))
        return PhoneChangeResult(PhoneChange.APPLIED, number)
    content = f"新手机号：{number}；居民原话：{said[:500]}"
    if waiting is not None:
        waiting.description = _describe(resident, number)
        waiting.updated_at = now
        add_event(session, waiting, actor=RESIDENT, channel=channel, action=PHONE_CHANGE_EVENT, content=content,
                  now=now)
        ticket = waiting
    else:
        ticket = open_staff_follow_up(session, rules, resident=resident, description=_describe(resident, number),
                                      room=resident.room, channel=channel, now=now)
        add_event(session, ticket, actor=RESIDENT, channel=channel, action=PHONE_CHANGE_EVENT, content=content,
                  now=now)
    log.info("phone change of %s to %s waits for staff (%s)", mask_openid(openid), mask_phone(number), ticket.number)
    return PhoneChangeResult(PhoneChange.PENDING, number, ticket.number)


def requested_phone(ticket: Ticket) -> str | None:
    """The number the resident last asked for on a phone-change request."""
    return next((normalise_phone(e.content) for e in reversed(ticket.events) if e.action == PHONE_CHANGE_EVENT), None)


def confirm_phone_change(session: Session, rules: ProjectRules, number: str, *, actor: str, channel: str,
                         now: datetime | None = None) -> Ticket:
    """A staff member has verified the new number (phoned it): the file takes it and the request is done."""
    now = now or utcnow()
    ticket = find_ticket(session, number)
    if ticket is None or ticket.kind != TicketKind.ENQUIRY.value or \
            not ticket.description.startswith(PHONE_CHANGE_PREFIX):
        raise PhoneChangeError(f"{number} is not a phone-change request")
    if TicketStatus(ticket.status) not in OPEN_STATUSES:
        raise PhoneChangeError(f"{ticket.number} is already {ticket.status}")
    phone, resident = requested_phone(ticket), ticket.resident
    if phone is None or resident is None or resident.bound_at is None:
        raise PhoneChangeError(f"{ticket.number}: no bound household or no number to apply")
    if _taken_in_room(session, resident, phone):
        raise PhoneChangeError(f"{ticket.number}: another account of the room already has {mask_phone(phone)}")
    _apply(session, resident, phone, now)
    resolve_ticket(session, rules, ticket, actor=actor, channel=channel, now=now,
                   note=f"已核实，手机号已更新为 {mask_phone(phone)}。")
    log.info("phone of resident %s changed to %s, confirmed by %s", resident.id, mask_phone(phone), actor)
    return ticket


# --- the cases of the past year ---------------------------------------------------------


def case_history(session: Session, rules: ProjectRules, openid: str, now: datetime) -> Sequence[Ticket]:
    """The resident's cases opened within `self_service.history_months`, closed and cancelled ones too, newest first."""
    since = months_before(now, rules.self_service.history_months)
    return session.execute(
        select(Ticket).join(Resident).where(Resident.openid == openid, Ticket.created_at >= since)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
    ).scalars().all()
