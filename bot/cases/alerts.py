"""Staff alerts: the escalation hook. Each alert is stored once (by key) and recorded on
its ticket; the staff bot posts new ones, and the staff API lists them either way."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.privacy import redact_text
from bot.db.models import Job, StaffAlert, Ticket
from bot.db.records import SYSTEM, add_event
from bot.db.upsert import insert_once

log = logging.getLogger(__name__)


# Why staff are alerted (the `reason` column).
SLA_BREACH = "sla_breach"
DISSATISFIED = "dissatisfied"
CALLBACK_MISSED = "callback_missed"
UNREACHABLE = "resident_unreachable"
JOB_PARKED = "job_parked"
SURVEY_UNCLEAR = "survey_unclear"


def raise_alert(session: Session, *, reason: str, detail: str, key: str, ticket: Ticket | None = None,
                project: str | None = None, audience: str = "staff", now: datetime | None = None) -> bool:
    """Store the alert unless one with this key exists; True when it is new. It belongs to its
    ticket's project (or to `project`, for an alert about no case)."""
    now = now or utcnow()
    owner = ticket.project if ticket is not None else project
    if not owner:
        raise ValueError("an alert about no case must name its project")
    created = insert_once(session, StaffAlert, "dedupe_key", dict(
        project=owner, ticket_id=ticket.id if ticket else None, reason=reason, detail=detail, dedupe_key=key[:160],
        audience=audience, created_at=now))
    if created:
        log.warning("staff alert %s%s: %s", reason, f" for {ticket.number}" if ticket else "", redact_text(detail))
        if ticket is not None:
            add_event(session, ticket, actor=SYSTEM, channel=SYSTEM, action="escalated", content=detail,
                      result=reason, now=now)
    return created


def job_parked(session: Session, job: Job, ticket: Ticket | None, error: str, now: datetime) -> None:
    """A job gave up after its last attempt: staff look into it (and may send it back to the queue)."""
    raise_alert(session, reason=JOB_PARKED, ticket=ticket, project=job.project, key=f"parked:{job.id}:{job.attempts}",
                now=now,
                detail=f"{job.kind} gave up after {job.attempts} attempts: {error[:200]}")


def open_alerts(session: Session, limit: int = 200, projects: Collection[str] | None = None) -> Sequence[StaffAlert]:
    """Unacknowledged alerts, oldest first; of `projects` only, when given."""
    stmt = select(StaffAlert).where(StaffAlert.acknowledged_at.is_(None))
    if projects is not None:
        stmt = stmt.where(StaffAlert.project.in_(list(projects)))
    return session.execute(stmt.order_by(StaffAlert.id).limit(limit)).scalars().all()


def acknowledge(session: Session, alert_id: int, who: str, now: datetime | None = None) -> StaffAlert | None:
    alert = session.get(StaffAlert, alert_id)
    if alert is not None and alert.acknowledged_at is None:
        alert.acknowledged_at = now or utcnow()
        alert.acknowledged_by = who[:64]
    return alert
