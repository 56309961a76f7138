"""What staff see of tickets: JSON views with personal data masked as the access decision
says (bot.core.access: unmasked contact data and special-group tags only for roles that need them)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Collection, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from bot.core import notices as notice_states
from bot.core.access import Decision
from bot.core.clock import to_local, to_utc_naive, utcnow
from bot.core.kinds import TicketStatus
from bot.core.lifecycle import OPEN_STATUS_VALUES
from bot.core.privacy import mask_name, mask_openid, mask_phone, mask_room, redact_text
from bot.core.rules import ProjectRules
from bot.core.sla import overdue_deadlines
from bot.db.models import Job, Resident, ResidentNotice, StaffAlert, Ticket, TicketEvent


def _time(moment: datetime | None, rules: ProjectRules) -> str | None:
    return to_local(moment, rules.timezone).isoformat(timespec="seconds") if moment else None


def resident_view(resident: Resident | None, access: Decision) -> dict[str, Any] | None:
    if resident is None:
        return None
    full = access.contact_data
    return {
        "id": resident.id,
        "project": resident.project,
        "name": resident.name if full else mask_name(resident.name),
        "phone": resident.phone if full else mask_phone(resident.phone),
        "openid": resident.openid if full else mask_openid(resident.openid),
        "room": resident.room,
        "bound": resident.bound_at is not None,
        # Special-group tags (独居老人 …) only for the roles that care for these residents.
        "tags": list(resident.tags or []) if access.special_groups else None,
    }


def event_view(event: TicketEvent, access: Decision, rules: ProjectRules) -> dict[str, Any]:
    return {
        "at": _time(event.at, rules),
        "actor": event.actor,
        "channel": event.channel,
        "action": event.action,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "content": event.content if access.contact_data else redact_text(event.content),
        "result": event.result,
    }


def ticket_view(ticket: Ticket, access: Decision, rules: ProjectRules,
                now: datetime | None = None) -> dict[str, Any]:
    """`rules`: those of the ticket's project (its time zone)."""
    full = access.contact_data
    return {
        "number": ticket.number,
        "project": ticket.project,
        "kind": ticket.kind,
        "status": ticket.status,
        "priority": ticket.priority,
        "room": ticket.room,
        "description": ticket.description if full else redact_text(ticket.description),
        "demand": ticket.demand,
        "visit_time": ticket.visit_time,
        "channel": ticket.channel,
        "assignee": ticket.assignee,
        "resident": resident_view(ticket.resident, access),
        "created_at": _time(ticket.created_at, rules),
        "updated_at": _time(ticket.updated_at, rules),
        "due_at": _time(ticket.due_at, rules),
        "final_due_at": _time(ticket.final_due_at, rules),
        "callback_due_at": _time(ticket.callback_due_at, rules),
        "overdue": overdue_deadlines(ticket, now or utcnow()),
        "resolved_at": _time(ticket.resolved_at, rules),
        "closed_at": _time(ticket.closed_at, rules),
        "events": [event_view(e, access, rules) for e in ticket.events],
    }


def search_tickets(session: Session, *, projects: Collection[str], kind: str | None = None,
                   status: str | None = None, resident: str | None = None, created_from: datetime | None = None,
                   created_to: datetime | None = None, overdue_at: datetime | None = None,
                   limit: int = 100) -> Sequence[Ticket]:
    """Tickets of `projects` (those the staff member serves) matching the filters, newest first."""
    stmt = (select(Ticket).options(selectinload(Ticket.events), selectinload(Ticket.resident))
            .where(Ticket.project.in_(list(projects))))
    if overdue_at is not None:
        # Any deadline in the past; deadline_missed then drops those that were met.
        stmt = stmt.where(or_(Ticket.due_at < overdue_at, Ticket.final_due_at < overdue_at,
                              Ticket.callback_due_at < overdue_at),
                          Ticket.status.in_(OPEN_STATUS_VALUES + (TicketStatus.RESOLVED.value,)))
    if kind:
        stmt = stmt.where(Ticket.kind == kind)
    if status:
        stmt = stmt.where(Ticket.status == status)
    if resident:
        stmt = stmt.join(Resident).where(Resident.openid == resident)
    if created_from:
        stmt = stmt.where(Ticket.created_at >= to_utc_naive(created_from))
    if created_to:
        stmt = stmt.where(Ticket.created_at < to_utc_naive(created_to))
    rows = session.execute(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)).scalars().all()
    if overdue_at is not None:
        rows = [t for t in rows if overdue_deadlines(t, overdue_at)]
    return rows


def alert_view(alert: StaffAlert, rules: ProjectRules) -> dict[str, Any]:
    return {"id": alert.id, "project": alert.project, "reason": alert.reason,
            "ticket": alert.ticket.number if alert.ticket else None,
            "detail": redact_text(alert.detail), "created_at": _time(alert.created_at, rules),
            "acknowledged_at": _time(alert.acknowledged_at, rules), "acknowledged_by": alert.acknowledged_by}


def job_view(job: Job, rules: ProjectRules) -> dict[str, Any]:
    return {"id": job.id, "project": job.project, "kind": job.kind, "status": job.status, "ticket_id": job.ticket_id,
            "due_at": _time(job.due_at, rules), "attempts": job.attempts, "max_attempts": job.max_attempts,
            "last_error": job.last_error}


def notice_view(notice: ResidentNotice, access: Decision, rules: ProjectRules,
                counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A notice as staff see it; its target's rooms masked for those who do not see contact data,
    and how its deliveries stand when `counts` (bot.cases.notices.delivery_counts) is given."""
    target = dict(notice.target or {})
    rooms = [str(room) for room in target.get("rooms") or ()]
    view: dict[str, Any] = {
        "id": notice.id, "project": notice.project, "kind": notice.kind, "title": notice.title, "body": notice.body,
        "status": notice.status,
        "target": {"buildings": [str(b) for b in target.get("buildings") or ()],
                   "rooms": rooms if access.contact_data else [mask_room(room) for room in rooms]},
        "starts_at": _time(notice.starts_at, rules), "ends_at": _time(notice.ends_at, rules),
        "send_at": _time(notice.send_at, rules), "created_by": notice.created_by,
        "created_at": _time(notice.created_at, rules)}
    if counts is not None:
        view["deliveries"] = delivery_summary(counts)
    return view


def delivery_summary(counts: dict[str, int]) -> dict[str, int]:
    """Deliveries by outcome (bot.core.notices: sent, failed, unreachable, pending, withdrawn)."""
    names = {"sent": notice_states.DELIVERED, "failed": notice_states.FAILED, "unreachable": notice_states.UNREACHABLE,
             "pending": notice_states.PENDING, "withdrawn": notice_states.WITHDRAWN}
    summary = {name: counts.get(status, 0) for name, status in names.items()}
    summary["total"] = sum(counts.values())
    return summary
