"""Ticket operations: the one place where cases are opened, moved and cancelled.

Every function works inside the caller's transaction (`TicketStore.transaction()`), so
a failure anywhere leaves neither a ticket nor an event behind.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases import escalation, follow_ups
from bot.cases.escalation import HUMAN_REQUEST, escalate
from bot.cases.opening import insert_case
from bot.core.clock import utcnow
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.lifecycle import NOT_STARTED, OPEN_STATUS_VALUES, RESIDENT_CANCELLABLE, check_transition
from bot.core.references import CaseReference, case_reference
from bot.core.rules import ProjectRules
from bot.core.triage import about_our_repair, weigh_complaint
from bot.core.urgency import assess
from bot.db.models import Resident, Ticket, TicketEvent
from bot.db.records import ASSISTANT, RESIDENT, add_event, find_or_create_resident

__all__ = ["ASSISTANT", "RESIDENT", "add_event", "find_or_create_resident"]  # re-exported for callers


class TicketNotCancellable(ValueError):
    """The resident asked to cancel a ticket that is already being worked on or is not theirs."""


# Ticket events that say why a case got its priority (shown to staff).
URGENCY_EVENT = "urgency"
TIER_EVENT = "tier_reason"


def open_case(session: Session, rules: ProjectRules, *, kind: TicketKind, priority: Priority | None,
              resident: Resident | None, description: str, channel: str, room: str | None = None,
              demand: str | None = None, visit_time: str | None = None,
              now: datetime | None = None, grounds: tuple[str, str] | None = None) -> Ticket:
    """A new case, its deadlines' checks, its escalation (if its kind and tier call for one), its updates.

    `grounds` (event action, explanation) says why the case got its priority: it goes into the
    timeline before the escalation it causes, so staff read the reason first."""
    now = now or utcnow()
    ticket = insert_case(session, rules, kind=kind, priority=priority, resident=resident, description=description,
                         channel=channel, room=room, demand=demand, visit_time=visit_time, now=now)
    if grounds is not None:
        add_event(session, ticket, actor=ASSISTANT, channel=channel, action=grounds[0], content=grounds[1], now=now)
    follow_ups.schedule_deadline_checks(session, rules, ticket, now)
    escalation.on_case_opened(session, rules, ticket, now)
    follow_ups.schedule_progress_updates(session, rules, ticket, now)
    return ticket


def open_repair_ticket(session: Session, rules: ProjectRules, *, openid: str, description: str,
                       room: str | None, visit_time: str | None, channel: str,
                       now: datetime | None = None) -> Ticket:
    resident = find_or_create_resident(session, openid, project=rules.code, room=room, now=now)
    return open_repair_for(session, rules, resident, description=description, room=room, visit_time=visit_time,
                           channel=channel, now=now)


def open_repair_for(session: Session, rules: ProjectRules, resident: Resident, *, description: str,
                    room: str | None, visit_time: str | None, channel: str, now: datetime | None = None) -> Ticket:
    """A repair of this household's (the resident wrote, or staff took it on the phone)."""
    urgency = assess(description, rules.urgency)
    # A repair is at the resident's home unless they said otherwise.
    # Why it is urgent, in the case's timeline: staff see the hazard and the words it came from.
    return open_case(session, rules, kind=TicketKind.REPAIR,
                     priority=Priority.EMERGENCY if urgency.emergency else Priority.NORMAL, resident=resident,
                     description=description, channel=channel, room=room or resident.room,
                     visit_time=visit_time, now=now,
                     grounds=(URGENCY_EVENT, urgency.explain()) if urgency.emergency else None)



def urgency_reason(ticket: Ticket) -> str:
    """The explanation stored when the case was found urgent ("" when it was not)."""
    return next((e.content for e in reversed(ticket.events) if e.action == URGENCY_EVENT), "")


def tier_reason(ticket: Ticket) -> str:
    """The signals a complaint's tier was raised by ("" for a general complaint)."""
    return next((e.content for e in reversed(ticket.events) if e.action == TIER_EVENT), "")


def open_complaint_ticket(session: Session, rules: ProjectRules, *, openid: str, description: str,
                          demand: str | None, room: str | None, channel: str,
                          now: datetime | None = None) -> Ticket:
    resident = find_or_create_resident(session, openid, project=rules.code, room=room, now=now)
    return open_complaint_for(session, rules, resident, description=description, demand=demand, room=room,
                              channel=channel, now=now)


def open_complaint_for(session: Session, rules: ProjectRules, resident: Resident, *, description: str,
                       demand: str | None, room: str | None, channel: str, now: datetime | None = None) -> Ticket:
    """A complaint of this household's, weighed like one that came in by WeChat."""
    weight = weigh_complaint(f"{description} {demand or ''}", rules.triage)
    # A bound household's verified room identifies the complainant when no room was named.
    home = resident.room if resident.bound_at is not None else None
    # Why this tier, in the timeline and on the staff card.
    ticket = open_case(session, rules, kind=TicketKind.COMPLAINT, priority=weight.tier, resident=resident,
                       description=description, demand=demand, channel=channel, room=room or home, now=now,
                       grounds=(TIER_EVENT, weight.explain()) if weight.reasons else None)
    link_to_repair(session, rules, ticket, f"{description} {demand or ''}", channel=channel, now=now)
    return ticket


LINKED_CASE = "linked_case"
REPAIR_CHASED_EVENT = "chased_by_complaint"


def _repair_complained_about(session: Session, rules: ProjectRules, complaint: Ticket, text: str,
                             now: datetime) -> Ticket | None:
    """The resident's repair the complaint is about: the one named, else the newest open one,
    else the newest finished within `triage.our_repairs.within_days`."""
    resident = complaint.resident
    if resident is None or resident.openid is None:
        return None
    reference = case_reference(text)
    if reference is not None and reference.number:
        named = referenced_case(session, resident.openid, reference, now)
        return named if named is not None and named.kind == TicketKind.REPAIR.value else None
    repairs = select(Ticket).where(Ticket.resident_id == resident.id, Ticket.kind == TicketKind.REPAIR.value,
                                   Ticket.id != complaint.id).order_by(Ticket.created_at.desc(), Ticket.id.desc())
    open_repair = session.execute(repairs.where(Ticket.status.in_(OPEN_STATUS_VALUES)).limit(1)).scalar_one_or_none()
    if open_repair is not None:
        return open_repair
    since = now - timedelta(days=rules.triage.our_repairs.within_days)
    finished = (TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value)
    return session.execute(repairs.where(Ticket.status.in_(finished), Ticket.updated_at >= since)
                           .limit(1)).scalar_one_or_none()


def linked_repair(complaint: Ticket) -> str | None:
    """The number of the repair a complaint was linked to, if any."""
    event = next((e for e in complaint.events if e.action == LINKED_CASE), None)
    return event.result if event is not None else None


def link_to_repair(session: Session, rules: ProjectRules, complaint: Ticket, text: str, *, channel: str,
                   now: datetime | None = None) -> Ticket | None:
    """A complaint about our handling of a repair ("报修两周没人来") is linked to that repair
    both ways and the repair is chased (staff alerted); a repair marked done that the
    resident says never happened is reopened. Returns the repair, or None."""
    now = now or utcnow()
    about = about_our_repair(text, rules.triage.our_repairs)
    repair = _repair_complained_about(session, rules, complaint, text, now) if about else None
    if about is None or repair is None:
        return None
    add_event(session, complaint, actor=ASSISTANT, channel=channel, action=LINKED_CASE,
              content=f"关于报修 {repair.number}（“{about.words}”）", result=repair.number, now=now)
    add_event(session, repair, actor=ASSISTANT, channel=channel, action=REPAIR_CHASED_EVENT,
              content=f"住户投诉 {complaint.number}：{complaint.description[:60]}", now=now)
    if about.never_done and repair.status == TicketStatus.RESOLVED.value:
        transition(session, repair, TicketStatus.REOPENED, rules=rules, actor=RESIDENT, channel=channel,
                   content=f"住户说没有修过（投诉 {complaint.number}）", result="reopened", now=now)
    escalate(session, rules, repair, escalation.REPAIR_CHASED,
             f"complaint {complaint.number} about repair {repair.number}: {complaint.description[:60]}", now)
    return repair



def open_staff_follow_up(session: Session, rules: ProjectRules, *, resident: Resident, description: str,
                         room: str | None, channel: str, now: datetime | None = None) -> Ticket:
    """An enquiry (咨询) case for staff to follow up, e.g. a household binding to verify."""
    return open_case(session, rules, kind=TicketKind.ENQUIRY, priority=None, resident=resident,
                     description=description, channel=channel, room=room, now=now)


HUMAN_REQUEST_PREFIX = "居民请求人工客服"


def request_human(session: Session, rules: ProjectRules, *, openid: str, context: str, channel: str,
                  now: datetime | None = None) -> Ticket:
    """A resident asked for a person: one open enquiry case for staff per resident.

    Asking again while that case is still waiting adds an event to it rather than a second case.
    """
    now = now or utcnow()
    resident = find_or_create_resident(session, openid, project=rules.code, now=now)
    waiting = session.execute(
        select(Ticket).where(Ticket.resident_id == resident.id, Ticket.kind == TicketKind.ENQUIRY.value,
                             Ticket.status.in_([s.value for s in NOT_STARTED]),
                             Ticket.description.startswith(HUMAN_REQUEST_PREFIX))
        .order_by(Ticket.id.desc()).limit(1)
    ).scalar_one_or_none()
    if waiting is not None:
        add_event(session, waiting, actor=RESIDENT, channel=channel, action="asked_again", content=context,
                  now=now)
        return waiting
    description = f"{HUMAN_REQUEST_PREFIX}：{context}" if context else HUMAN_REQUEST_PREFIX
    ticket = open_staff_follow_up(session, rules, resident=resident, description=description, room=resident.room,
                                  channel=channel, now=now)
    escalate(session, rules, ticket, HUMAN_REQUEST, f"resident asked for a person: {context[:80]}", now)
    return ticket


def record_feedback(session: Session, rules: ProjectRules, *, kind: TicketKind, openid: str, text: str,
                    channel: str, now: datetime | None = None) -> Ticket:
    """Suggestions (建议) and praise (表扬) are cases too: numbered, recorded, followed up."""
    if kind not in (TicketKind.SUGGESTION, TicketKind.PRAISE):
        raise ValueError(f"not a feedback kind: {kind}")
    resident = find_or_create_resident(session, openid, project=rules.code, now=now)
    return open_case(session, rules, kind=kind, priority=None, resident=resident, description=text,
                     channel=channel, now=now)


def transition(session: Session, ticket: Ticket, target: TicketStatus, *, rules: ProjectRules, actor: str,
               channel: str, content: str = "", result: str = "", now: datetime | None = None) -> TicketEvent:
    """Move a ticket along the state machine; every move is recorded as an event and
    schedules what follows it (callback after completion, fresh deadline after reopening)."""
    now = now or utcnow()
    current = TicketStatus(ticket.status)
    check_transition(ticket.number, current, target)
    ticket.status = target.value
    ticket.updated_at = now
    if target is TicketStatus.RESOLVED:
        ticket.resolved_at = now
    elif target is TicketStatus.CLOSED:
        ticket.closed_at = now
    elif target is TicketStatus.REOPENED:
        ticket.resolved_at = None
    record = add_event(session, ticket, actor=actor, channel=channel, action="status", from_status=current.value,
                       to_status=target.value, content=content, result=result, now=now)
    if target is TicketStatus.RESOLVED:
        follow_ups.on_resolved(session, rules, ticket, now)
    elif target is TicketStatus.REOPENED:
        follow_ups.on_reopened(session, rules, ticket, now)
    elif target in (TicketStatus.CLOSED, TicketStatus.CANCELLED):
        follow_ups.on_finished(session, ticket, now)
    return record


def resolve_ticket(session: Session, rules: ProjectRules, ticket: Ticket, *, actor: str, channel: str,
                   note: str, now: datetime | None = None) -> TicketEvent:
    """Staff mark the work done (办结). A case nobody accepted yet is accepted on the way."""
    now = now or utcnow()
    if TicketStatus(ticket.status) is TicketStatus.NEW:
        transition(session, ticket, TicketStatus.ACCEPTED, rules=rules, actor=actor, channel=channel, now=now)
    return transition(session, ticket, TicketStatus.RESOLVED, rules=rules, actor=actor, channel=channel,
                      content=note, result="resolved", now=now)


def resident_tickets(session: Session, openid: str, *, open_only: bool = True) -> Sequence[Ticket]:
    stmt = select(Ticket).join(Resident).where(Resident.openid == openid)
    if open_only:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUS_VALUES))
    return session.execute(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc())).scalars().all()


def cancellable_tickets(session: Session, openid: str) -> Sequence[Ticket]:
    return [t for t in resident_tickets(session, openid) if TicketStatus(t.status) in RESIDENT_CANCELLABLE]


def referenced_case(session: Session, openid: str, reference: CaseReference, now: datetime,
                    within_days: int = 365) -> Ticket | None:
    """The resident's own case a message points at; never someone else's (None then)."""
    stmt = select(Ticket).join(Resident).where(Resident.openid == openid)
    if reference.number:
        return session.execute(stmt.where(Ticket.number == reference.number)).scalar_one_or_none()
    if reference.kind is None:
        return None
    return session.execute(stmt.where(Ticket.kind == reference.kind.value,
                                      Ticket.created_at >= now - timedelta(days=within_days))
                           .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(1)).scalar_one_or_none()


def find_ticket(session: Session, number: str) -> Ticket | None:
    return session.execute(select(Ticket).where(Ticket.number == number.upper())).scalar_one_or_none()


def cancel_by_resident(session: Session, rules: ProjectRules, ticket: Ticket, *, openid: str, channel: str,
                       reason: str = "", now: datetime | None = None) -> TicketEvent:
    if ticket.resident is None or ticket.resident.openid != openid:
        raise TicketNotCancellable(f"ticket {ticket.number} does not belong to this resident")
    if TicketStatus(ticket.status) not in RESIDENT_CANCELLABLE:
        raise TicketNotCancellable(f"ticket {ticket.number} is already {ticket.status}")
    return transition(session, ticket, TicketStatus.CANCELLED, rules=rules, actor=RESIDENT, channel=channel,
                      content=reason or "resident cancelled", result="cancelled", now=now)


def attach_evidence(session: Session, openid: str, *, picture_url: str, media_id: str, channel: str,
                    now: datetime | None = None) -> Ticket | None:
    """Add a resident's photo to their most recent open case; None if they have none."""
    open_cases = resident_tickets(session, openid)
    if not open_cases:
        return None
    ticket = open_cases[0]
    add_event(session, ticket, actor=RESIDENT, channel=channel, action="evidence", content=picture_url,
              result=f"media_id={media_id}", now=now)
    ticket.updated_at = now or utcnow()
    return ticket


ROOM_CORRECTED = "room_corrected"


class RoomNotCorrectable(ValueError):
    """The case is not the resident's, or it is already finished."""


def correct_room(session: Session, ticket: Ticket, room: str, *, openid: str, channel: str,
                 now: datetime | None = None) -> TicketEvent:
    """The resident corrects the room of a case they just filed ("不对 是1202"): the case
    keeps its number and deadlines, and the timeline says what the room was."""
    if ticket.resident is None or ticket.resident.openid != openid:
        raise RoomNotCorrectable(f"ticket {ticket.number} does not belong to this resident")
    if ticket.status not in OPEN_STATUS_VALUES:
        raise RoomNotCorrectable(f"ticket {ticket.number} is already {ticket.status}")
    previous = ticket.room or "（未填）"
    ticket.room = room
    ticket.updated_at = now or utcnow()
    return add_event(session, ticket, actor=RESIDENT, channel=channel, action=ROOM_CORRECTED,
                     content=f"{previous} → {room}", now=now)
