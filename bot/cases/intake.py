"""Staff taking a resident's business by phone or at the desk (一户一档): a contact noted on the
household file, a case opened on their behalf, a correction of their details — each recorded
with who did it. A bound resident is told a new case's number on WeChat."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.cases import handoff
from bot.cases.handoff import Staff
from bot.cases.tickets import add_event, open_case, open_complaint_for, open_repair_for
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.kinds import TicketKind
from bot.core.phones import normalise_phone
from bot.core.privacy import mask_phone
from bot.core.rooms import normalise_room
from bot.core.rules import ProjectRules
from bot.db.models import Resident, ResidentEvent, Ticket

CHANNELS = {"phone": "电话", "walk_in": "来访", "visit": "上门"}
CONTACT, CORRECTED = "contact", "corrected"


class IntakeRefused(ValueError):
    """Nothing to record (an empty note, an unknown channel, an unreadable phone or room)."""


def _channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise IntakeRefused(f"unknown channel {channel!r}; one of {sorted(CHANNELS)}")
    return channel


def record_contact(session: Session, resident: Resident, staff: Staff, *, channel: str, note: str,
                   now: datetime | None = None) -> ResidentEvent:
    """A phone call or a walk-in, on the household file (not every contact is a case)."""
    if not note.strip():
        raise IntakeRefused("say what the resident wanted")
    event = ResidentEvent(resident_id=resident.id, project=resident.project, at=now or utcnow(),
                          actor=f"staff:{staff.name}"[:64], channel=_channel(channel), action=CONTACT,
                          content=note.strip()[:2000])
    session.add(event)
    return event


def open_case_for(session: Session, rules: ProjectRules, resident: Resident, staff: Staff, *, kind: TicketKind,
                  description: str, room: str | None, channel: str, now: datetime | None = None) -> Ticket:
    """A case the resident told staff about (channel: phone / walk-in), triaged like one from WeChat."""
    now = now or utcnow()
    if not description.strip():
        raise IntakeRefused("describe the case")
    channel, text, where = _channel(channel), description.strip()[:2000], room or resident.room
    if kind is TicketKind.REPAIR:
        ticket = open_repair_for(session, rules, resident, description=text, room=where, visit_time=None,
                                 channel=channel, now=now)
    elif kind is TicketKind.COMPLAINT:
        ticket = open_complaint_for(session, rules, resident, description=text, demand=None, room=where,
                                    channel=channel, now=now)
    else:
        ticket = open_case(session, rules, kind=kind, priority=None, resident=resident, description=text,
                           channel=channel, room=where, now=now)
    add_event(session, ticket, actor=f"staff:{staff.name}", channel=channel, action="taken_by_staff",
              content=f"{CHANNELS[channel]}受理", result=staff.id, now=now)
    if resident.openid and resident.bound_at is not None:
        handoff.tell_resident(session, rules, ticket, replies.case_opened_by_staff(ticket, rules, CHANNELS[channel]),
                              f"taken:{ticket.id}", now)
    return ticket


def correct_resident(session: Session, resident: Resident, staff: Staff, *, name: str | None = None,
                     phone: str | None = None, room: str | None = None, now: datetime | None = None) -> list[str]:
    """Correct the file's name, phone or room; the file's record says who changed what (phones
    masked there). Returns what changed."""
    now = now or utcnow()
    changes = []
    if name is not None and name.strip() and name.strip() != (resident.name or ""):
        changes.append(f"姓名 {resident.name or '-'} → {name.strip()[:64]}")
        resident.name = name.strip()[:64]
    if phone is not None and phone.strip():
        number = normalise_phone(phone)
        if number is None:
            raise IntakeRefused(f"cannot read the phone number {mask_phone(phone)}")
        if number != resident.phone:
            changes.append(f"电话 {mask_phone(resident.phone)} → {mask_phone(number)}")
            resident.phone = number
    if room is not None and room.strip():
        parsed = normalise_room(room)
        if parsed is None:
            raise IntakeRefused(f"cannot read the room {room[:20]!r}")
        if parsed != resident.room:
            changes.append(f"房号 {resident.room or '-'} → {parsed}")
            resident.room = parsed
    if changes:
        resident.updated_at = now
        session.add(ResidentEvent(resident_id=resident.id, project=resident.project, at=now,
                                  actor=f"staff:{staff.name}"[:64], channel="console", action=CORRECTED,
                                  content="；".join(changes)))
    return changes
