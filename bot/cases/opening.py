"""Writing a new case: its number, its deadlines and its first event.

What follows an opening (deadline checks, escalation, progress updates) is scheduled by
the callers in `bot.cases.tickets` and `bot.cases.escalation`; this module schedules
nothing, so both can use it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.core.clock import to_local
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.rules import ProjectRules
from bot.core.sla import compute_due_at, compute_final_due_at, compute_first_feedback_due_at
from bot.db.models import Resident, Ticket
from bot.db.numbering import next_ticket_number
from bot.db.records import RESIDENT, SYSTEM, add_event


def insert_case(session: Session, rules: ProjectRules, *, kind: TicketKind, priority: Priority | None,
                resident: Resident | None, description: str, channel: str, now: datetime, room: str | None = None,
                demand: str | None = None, visit_time: str | None = None) -> Ticket:
    local_day = to_local(now, rules.timezone).date()
    ticket = Ticket(
        number=next_ticket_number(session, kind, local_day),
        project=rules.code,
        kind=kind.value,
        status=TicketStatus.NEW.value,
        priority=priority.value if priority else None,
        room=room,
        description=description,
        demand=demand,
        visit_time=visit_time,
        channel=channel,
        resident=resident,
        created_at=now,
        updated_at=now,
        due_at=compute_due_at(kind, priority, now, rules, (resident.tags or ()) if resident else ()),
        final_due_at=compute_final_due_at(kind, priority, now, rules),
        first_feedback_due_at=compute_first_feedback_due_at(kind, now, rules) if resident is not None else None,
    )
    session.add(ticket)
    add_event(session, ticket, actor=RESIDENT if resident else SYSTEM, channel=channel, action="created",
              to_status=ticket.status, content=description, result=f"priority={ticket.priority or '-'}", now=now)
    session.flush()
    return ticket
