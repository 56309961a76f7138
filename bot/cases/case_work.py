"""What staff do to a case beyond claim, reply and resolve (bot.cases.handoff): hand it to a
colleague, mark that someone is on site, note something internal, move the expected completion,
re-tier a complaint, close it as outside the company's responsibility.

Each step is an event on the case; where the resident should know, they are told (through the
same queued resident message as staff replies)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.cases import escalation, follow_ups
from bot.cases.handoff import Staff, tell_resident
from bot.cases.tickets import transition
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.lifecycle import OPEN_STATUSES
from bot.core.rules import ProjectRules
from bot.core.sla import compute_due_at, compute_final_due_at
from bot.db.models import StaffOutbox, Ticket
from bot.db.records import add_event

COMPLAINT_TIERS = (Priority.GENERAL, Priority.URGENT, Priority.MAJOR)
ON_SITE = "on_site"
INTERNAL_NOTE = "internal_note"


class CaseWorkRefused(ValueError):
    """The step does not apply to this case now (finished, not a complaint, a date in the past…)."""


def _open(ticket: Ticket) -> None:
    if TicketStatus(ticket.status) not in OPEN_STATUSES:
        raise CaseWorkRefused(f"{ticket.number} is already {ticket.status}")


def _actor(staff: Staff) -> str:
    return f"staff:{staff.name}"


def transfer(session: Session, ticket: Ticket, *, by: Staff, to: Staff, note: str, channel: str,
             now: datetime | None = None) -> None:
    """交接班/转派: the case gets a new holder, who is told on their channel."""
    now = now or utcnow()
    _open(ticket)
    if ticket.assignee_id == to.id:
        raise CaseWorkRefused(f"{ticket.number} is already held by {to.name}")
    previous = ticket.assignee or "无人"
    ticket.assignee_id, ticket.assignee, ticket.claimed_at, ticket.updated_at = to.id[:64], to.name[:64], now, now
    add_event(session, ticket, actor=_actor(by), channel=channel, action="transferred",
              content=note.strip()[:500], result=f"{previous} → {to.name}", now=now)
    session.add(StaffOutbox(project=ticket.project, ticket_id=ticket.id, audience=f"staff:{to.id}"[:80],
                            text=f"【{ticket.number}】{by.name} 把这张工单转给了您：{note.strip()[:200]}",
                            created_at=now, attempts=0))


def mark_on_site(session: Session, rules: ProjectRules, ticket: Ticket, staff: Staff, *, channel: str,
                 now: datetime | None = None) -> None:
    """到场: someone is there and working — what an emergency's on-site clock measures."""
    now = now or utcnow()
    _open(ticket)
    if TicketStatus(ticket.status) is not TicketStatus.IN_PROGRESS:
        transition(session, ticket, TicketStatus.IN_PROGRESS, rules=rules, actor=_actor(staff), channel=channel,
                   now=now)
    add_event(session, ticket, actor=_actor(staff), channel=channel, action=ON_SITE, content=staff.name,
              result="on site", now=now)


def add_note(session: Session, ticket: Ticket, staff: Staff, text: str, *, channel: str,
             now: datetime | None = None) -> None:
    """An internal note: on the case for colleagues, never sent to the resident."""
    if not text.strip():
        raise CaseWorkRefused("an empty note")
    add_event(session, ticket, actor=_actor(staff), channel=channel, action=INTERNAL_NOTE,
              content=text.strip()[:2000], now=now or utcnow())


def expect_completion(session: Session, rules: ProjectRules, ticket: Ticket, staff: Staff, *, when: datetime,
                      reason: str, channel: str, now: datetime | None = None) -> None:
    """Parts or an outside contractor are needed: the resident hears the new date, the deadline
    moves (never past the final limit), and the change is on the record."""
    now = now or utcnow()
    _open(ticket)
    if when <= now:
        raise CaseWorkRefused("the expected completion must be in the future")
    if ticket.final_due_at is not None and when > ticket.final_due_at:
        raise CaseWorkRefused(f"{ticket.number} must be finished by its final deadline")
    previous = ticket.due_at
    ticket.due_at, ticket.updated_at = when, now
    add_event(session, ticket, actor=_actor(staff), channel=channel, action="expected_completion",
              content=reason.strip()[:500], result=f"{previous.isoformat() if previous else '-'} → {when.isoformat()}",
              now=now)
    follow_ups.schedule_deadline_checks(session, rules, ticket, now)
    tell_resident(session, rules, ticket, replies.expected_completion(ticket, rules, reason.strip()[:120]),
                  f"expected:{ticket.id}:{when.isoformat()}", now)


def retier(session: Session, rules: ProjectRules, ticket: Ticket, staff: Staff, *, tier: Priority, reason: str,
           channel: str, now: datetime | None = None) -> None:
    """Re-tier a complaint (一般/紧急/重大): the deadline is counted again from when it came in, and
    a raised tier is escalated like one that came in so."""
    now = now or utcnow()
    _open(ticket)
    if ticket.kind != TicketKind.COMPLAINT.value or tier not in COMPLAINT_TIERS:
        raise CaseWorkRefused(f"{ticket.number}: only complaints are tiered (一般/紧急/重大)")
    if not reason.strip():
        raise CaseWorkRefused("say why the tier changes")
    previous = ticket.priority
    if previous == tier.value:
        raise CaseWorkRefused(f"{ticket.number} is already {tier.value}")
    tags = (ticket.resident.tags or ()) if ticket.resident else ()
    ticket.priority = tier.value
    ticket.due_at = compute_due_at(TicketKind.COMPLAINT, tier, ticket.created_at, rules, tags)
    ticket.final_due_at = compute_final_due_at(TicketKind.COMPLAINT, tier, ticket.created_at, rules)
    ticket.updated_at = now
    add_event(session, ticket, actor=_actor(staff), channel=channel, action="retiered", content=reason.strip()[:500],
              result=f"{previous} → {tier.value}", now=now)
    follow_ups.schedule_deadline_checks(session, rules, ticket, now)
    reasons = {Priority.MAJOR: escalation.MAJOR_COMPLAINT, Priority.URGENT: escalation.URGENT_COMPLAINT}
    if tier in reasons:
        escalation.escalate(session, rules, ticket, reasons[tier], f"re-tiered by {staff.name}: {reason[:60]}", now)


def close_outside_responsibility(session: Session, rules: ProjectRules, ticket: Ticket, staff: Staff, *,
                                 explanation: str, department: str, channel: str,
                                 now: datetime | None = None) -> None:
    """Not the company's to do (service rules: outside responsibility → explain): the resident is
    told why and where to turn; the case is closed without a callback."""
    now = now or utcnow()
    _open(ticket)
    if not explanation.strip():
        raise CaseWorkRefused("the resident must be told why")
    transition(session, ticket, TicketStatus.CLOSED, rules=rules, actor=_actor(staff), channel=channel,
               content=explanation.strip()[:1000], result=f"outside our responsibility; refer to {department[:60]}",
               now=now)
    tell_resident(session, rules, ticket,
                  replies.outside_responsibility(ticket.number, explanation.strip()[:300], department.strip()[:60]),
                  f"outside:{ticket.id}", now)
