"""What the system schedules when a case changes: SLA checks, progress updates, callbacks.

Called from `bot.cases.tickets` and `bot.cases.escalation` inside the same transaction as the change itself, so a case
and its follow-ups are written together or not at all.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.core.kinds import Priority, TicketKind
from bot.core.rules import ProjectRules
from bot.core.sla import callback_due_at, callback_send_at, compute_due_at, next_progress_update_at
from bot.db import queue
from bot.db.models import Ticket

FIRST_FEEDBACK = "first_feedback"


def _enqueue(session: Session, rules: ProjectRules, ticket: Ticket, kind: str, due_at: datetime, key: str,
             now: datetime, payload: dict | None = None) -> None:
    queue.enqueue(session, kind=kind, project=ticket.project, due_at=due_at, key=key, now=now, ticket_id=ticket.id,
                  payload=payload,
                  max_attempts=rules.follow_up.job_max_attempts)


def schedule_deadline_checks(session: Session, rules: ProjectRules, ticket: Ticket, now: datetime) -> None:
    """An SLA check at each deadline the ticket carries (keyed by the deadline itself)."""
    for deadline, due in (("due", ticket.due_at), ("final", ticket.final_due_at),
                          (FIRST_FEEDBACK, ticket.first_feedback_due_at)):
        if due is not None:
            _enqueue(session, rules, ticket, queue.SLA_CHECK, due, f"sla:{ticket.id}:{deadline}:{due.isoformat()}",
                     now, {"deadline": deadline})


def schedule_progress_updates(session: Session, rules: ProjectRules, ticket: Ticket, now: datetime) -> None:
    """A complaint's resident hears how it is going at fixed working-day intervals (the first one here)."""
    if ticket.kind == TicketKind.COMPLAINT.value:
        first = next_progress_update_at(ticket.created_at, None, rules)
        _enqueue(session, rules, ticket, queue.PROGRESS_UPDATE, first, f"progress:{ticket.id}:1", now,
                 {"sequence": 1})


def on_resolved(session: Session, rules: ProjectRules, ticket: Ticket, now: datetime) -> None:
    """The satisfaction callback for this completion, and a check that it happened in time.

    Repairs and complaints always get one; so does an enquiry a staff member took over.
    """
    handled_by_staff = ticket.kind == TicketKind.ENQUIRY.value and ticket.assignee_id is not None
    if ticket.resident_id is None or not (
            ticket.kind in (TicketKind.REPAIR.value, TicketKind.COMPLAINT.value) or handled_by_staff):
        return  # praise, suggestions and answered questions need no callback; a group case has no resident
    resolved_at = ticket.resolved_at or now
    ticket.callback_due_at = callback_due_at(resolved_at, rules)
    stamp = resolved_at.isoformat()
    _enqueue(session, rules, ticket, queue.SATISFACTION_CALLBACK, callback_send_at(resolved_at, rules),
             f"callback:{ticket.id}:{stamp}", now, {"resolved_at": stamp})
    _enqueue(session, rules, ticket, queue.SLA_CHECK, ticket.callback_due_at, f"sla:{ticket.id}:callback:{stamp}",
             now, {"deadline": "callback", "resolved_at": stamp})


def on_reopened(session: Session, rules: ProjectRules, ticket: Ticket, now: datetime) -> None:
    """A reopened case gets a fresh deadline of its kind, counted from now."""
    tags = ticket.resident.tags if ticket.resident is not None else ()
    priority = Priority(ticket.priority) if ticket.priority else None
    ticket.due_at = compute_due_at(TicketKind(ticket.kind), priority, now, rules, tags or ())
    ticket.callback_due_at = None
    schedule_deadline_checks(session, rules, ticket, now)


def on_finished(session: Session, ticket: Ticket, now: datetime) -> None:
    """Closed or cancelled: nothing more to chase."""
    queue.cancel_pending(session, ticket.id, [queue.SLA_CHECK, queue.PROGRESS_UPDATE], now)
