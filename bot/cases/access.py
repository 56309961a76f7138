"""Authorising staff requests, and the audit trail that every authorisation leaves.

`authorize` is the only writer of `audit_log`: each call — allowed or refused — adds one row
to the caller's transaction. It never raises on a refusal, so the caller can commit (keeping
the refusal's row) and then refuse; `AccessDenied` is there for callers that raise after commit.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Collection, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.access import Decision, Permission, Principal, decide
from bot.core.clock import to_local, to_utc_naive, utcnow
from bot.db.models import AuditEntry, Ticket

log = logging.getLogger(__name__)

_NAME_LENGTH = 64  # audit_log.staff_name
_INTERFACE_LENGTH = 16  # audit_log.interface


class AccessDenied(Exception):
    """A refused request, raised by callers after the transaction holding its audit row committed."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


def authorize(session: Session, principal: Principal, permission: Permission, *, interface: str,
              project: str | None = None, ticket: Ticket | None = None, resident_id: int | None = None,
              detail: str = "", now: datetime | None = None) -> Decision:
    """Decide, and audit the request in `session`; the caller commits, then acts or refuses.

    With a ticket, the ticket's own project is the one decided on (a project argument that
    disagrees is a caller's mistake, and must not widen anybody's access)."""
    if ticket is not None:
        if project is not None and project != ticket.project:
            log.warning("authorize: %s asked for project %s but ticket %s belongs to %s; deciding on the ticket's",
                        principal.actor_id, project, ticket.number, ticket.project)
        project = ticket.project
        if resident_id is None:
            resident_id = ticket.resident_id
    decision = decide(principal, permission, project)
    session.add(AuditEntry(
        at=now or utcnow(),
        staff_id=principal.staff_id,
        staff_name=principal.name[:_NAME_LENGTH],
        action=permission.value,
        allowed=decision.allowed,
        interface=interface[:_INTERFACE_LENGTH],
        project=project,
        ticket_number=ticket.number if ticket is not None else None,
        resident_id=resident_id,
        personal_data=decision.contact_data,
        detail=detail,
    ))
    if not decision.allowed:
        # Ids only: no staff or resident names, no tokens.
        log.warning("refused %s %s (project %s, ticket %s) via %s: %s", principal.actor_id, permission.value,
                    project or "company-wide", ticket.number if ticket is not None else "-", interface,
                    decision.reason)
    return decision


def audit_entries(session: Session, *, staff_id: int | None = None, project: str | None = None,
                  projects: Collection[str] | None = None, ticket_number: str | None = None,
                  since: datetime | None = None, until: datetime | None = None, action: str | None = None,
                  allowed: bool | None = None, limit: int = 100) -> Sequence[AuditEntry]:
    """Audit rows, newest first. `since` is inclusive, `until` exclusive (aware or naive UTC);
    `projects` restricts the rows to those projects (a reader who does not serve them all)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = select(AuditEntry)
    if staff_id is not None:
        query = query.where(AuditEntry.staff_id == staff_id)
    if project is not None:
        query = query.where(AuditEntry.project == project)
    if projects is not None:
        query = query.where(AuditEntry.project.in_(sorted(projects)))
    if ticket_number is not None:
        query = query.where(AuditEntry.ticket_number == ticket_number)
    if since is not None:
        query = query.where(AuditEntry.at >= to_utc_naive(since))
    if until is not None:
        query = query.where(AuditEntry.at < to_utc_naive(until))
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if allowed is not None:
        query = query.where(AuditEntry.allowed == allowed)
    return session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)).all()


def audit_view(entry: AuditEntry, timezone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": to_local(entry.at, timezone).isoformat(timespec="seconds"),
        "staff_id": entry.staff_id,
        "staff_name": entry.staff_name,
        "action": entry.action,
        "allowed": entry.allowed,
        "interface": entry.interface,
        "project": entry.project,
        "ticket_number": entry.ticket_number,
        "resident_id": entry.resident_id,
        "personal_data": entry.personal_data,
        "detail": entry.detail,
    }
