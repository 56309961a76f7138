"""The durable job queue: rows in the ticket database, claimed by workers with a lease.

Claiming is one short transaction: on PostgreSQL `SELECT … FOR UPDATE SKIP LOCKED`, so
several workers never take the same job; on SQLite the store's `BEGIN IMMEDIATE` makes
the claiming transaction exclusive. A claimed job carries `locked_until`; a worker that
dies mid-job leaves it there and the job is claimed again once the lease has run out.
Delivery is therefore at least once — handlers make repeats harmless (idempotency keys).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Collection, Sequence, cast

from sqlalchemy import Text, and_, case, func, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from bot.core.rules import FollowUpRules
from bot.db.models import Job, JobStatus, Ticket
from bot.db.store import TicketStore
from bot.db.upsert import insert_once

log = logging.getLogger(__name__)

# Job kinds.
SATISFACTION_CALLBACK = "satisfaction_callback"
PROGRESS_UPDATE = "progress_update"
SLA_CHECK = "sla_check"
SURVEY_REMINDER = "survey_reminder"
SURVEY_CLOSE = "survey_close"
ANNUAL_SURVEY = "annual_survey"
UNCLAIMED_CHECK = "unclaimed_check"
RESIDENT_MESSAGE = "resident_message"  # a staff member's words to a resident
MESSAGE_LOG_RETENTION = "message_log_retention"  # daily purge of old raw message logs
QUARTERLY_REPORT = "quarterly_report"  # quarter end: KPIs and complaint analysis as JSON files
NOTICE_DELIVERY = "notice_delivery"  # one resident's copy of a notice (bot.cases.notices)
PROACTIVE_CARE = "proactive_care"  # daily: welcome callbacks for new households, holiday greetings

DEFAULT_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    project: str
    ticket_id: int | None
    survey_id: int | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    idempotency_key: str
    due_at: datetime


def enqueue(session: Session, *, kind: str, project: str, due_at: datetime, key: str, now: datetime,
            max_attempts: int, ticket_id: int | None = None, survey_id: int | None = None,
            payload: dict[str, Any] | None = None) -> bool:
    """Schedule a job of `project` in the caller's transaction; the same key twice schedules it once."""
    return insert_once(session, Job, "idempotency_key", dict(
        kind=kind, project=project, ticket_id=ticket_id, survey_id=survey_id, payload=payload or {}, due_at=due_at,
        status=JobStatus.PENDING.value, attempts=0, max_attempts=max_attempts, idempotency_key=key[:160],
        created_at=now, updated_at=now))


def cancel_pending(session: Session, ticket_id: int, kinds: Sequence[str], now: datetime) -> int:
    # Session.execute() is typed as returning Result; for this UPDATE it is a CursorResult.
    result = cast("CursorResult[Any]", session.execute(
        update(Job).where(Job.ticket_id == ticket_id, Job.kind.in_(list(kinds)),
                          Job.status == JobStatus.PENDING.value)
        .values(status=JobStatus.CANCELLED.value, updated_at=now, finished_at=now)
    ))
    return result.rowcount or 0


def claim_due(store: TicketStore, worker: str, now: datetime, *, limit: int = 10,
              lease: timedelta = DEFAULT_LEASE) -> list[ClaimedJob]:
    """Take up to `limit` jobs that are due (or whose previous worker's lease ran out)."""
    with store.transaction() as session:
        stmt = (
            select(Job)
            .where(or_(and_(Job.status == JobStatus.PENDING.value, Job.due_at <= now),
                       and_(Job.status == JobStatus.RUNNING.value, Job.locked_until < now)))
            .order_by(Job.due_at, Job.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        claimed = []
        for job in session.execute(stmt).scalars().all():
            if job.status == JobStatus.RUNNING.value:
                log.warning("job %d (%s): lease of %s ran out, claiming it again", job.id, job.kind, job.locked_by)
            job.status = JobStatus.RUNNING.value
            job.locked_by = worker[:64]
            job.locked_until = now + lease
            job.attempts += 1
            job.updated_at = now
            claimed.append(ClaimedJob(job.id, job.kind, job.project, job.ticket_id, job.survey_id, dict(job.payload or {}),
                                      job.attempts, job.max_attempts, job.idempotency_key, job.due_at))
        return claimed


def _owned(session: Session, job_id: int, worker: str) -> Job | None:
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.RUNNING.value or job.locked_by != worker[:64]:
        return None  # another worker took it over after our lease ran out; it finishes it
    return job


def complete(store: TicketStore, job_id: int, worker: str, now: datetime) -> None:
    with store.transaction() as session:
        job = _owned(session, job_id, worker)
        if job is not None:
            job.status = JobStatus.DONE.value
            job.locked_until = None
            job.finished_at = now
            job.updated_at = now
            job.last_error = None


def defer(store: TicketStore, job_id: int, worker: str, until: datetime, now: datetime, reason: str) -> None:
    """Run again later without counting this as a failed attempt (e.g. the resident is busy)."""
    with store.transaction() as session:
        job = _owned(session, job_id, worker)
        if job is not None:
            job.status = JobStatus.PENDING.value
            job.attempts -= 1
            job.due_at = until
            job.locked_until = None
            job.updated_at = now
            job.last_error = reason


def backoff(attempts: int, rules: FollowUpRules) -> timedelta:
    seconds = rules.job_backoff_seconds * (2 ** max(attempts - 1, 0))
    return timedelta(seconds=min(seconds, rules.job_backoff_max_seconds))


def fail(store: TicketStore, job_id: int, worker: str, error: str, now: datetime, rules: FollowUpRules,
         on_parked: Callable[[Session, Job, Ticket | None], None] | None = None) -> bool:
    """Record a failed attempt: retry later with backoff, or park it. True when parked.

    `on_parked` runs in the same transaction as the parking (the worker alerts staff there),
    so a parked job and what it triggers are written together.
    """
    with store.transaction() as session:
        job = _owned(session, job_id, worker)
        if job is None:
            return False
        job.last_error = error[:2000]
        job.locked_until = None
        job.updated_at = now
        if job.attempts >= job.max_attempts:
            job.status = JobStatus.PARKED.value
            job.finished_at = now
            if on_parked is not None:
                on_parked(session, job, session.get(Ticket, job.ticket_id) if job.ticket_id else None)
            return True
        job.status = JobStatus.PENDING.value
        job.due_at = now + backoff(job.attempts, rules)
        return False


def retry_parked(session: Session, job_id: int, now: datetime, extra_attempts: int = 3) -> Job | None:
    """Staff put a parked job back in the queue, with a fresh set of attempts."""
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.PARKED.value:
        return None
    job.status = JobStatus.PENDING.value
    job.due_at = now
    job.max_attempts = job.attempts + extra_attempts
    job.finished_at = None
    job.updated_at = now
    return job


def jobs_with_status(session: Session, status: JobStatus, limit: int = 200,
                     projects: Collection[str] | None = None) -> Sequence[Job]:
    stmt = select(Job).where(Job.status == status.value)
    if projects is not None:
        stmt = stmt.where(Job.project.in_(list(projects)))
    return session.execute(stmt.order_by(Job.due_at, Job.id).limit(limit)).scalars().all()


FINISHED = (JobStatus.DONE.value, JobStatus.CANCELLED.value, JobStatus.PARKED.value)


def forget_old_payloads(session: Session, before: datetime, now: datetime) -> int:
    """Retention: finished jobs last touched before `before` lose their payloads and errors (a
    staff member's words, an openid). The rows stay, so their idempotency keys still hold and
    nothing is scheduled twice; a parked job that old is cancelled, it cannot run without them."""
    old = and_(Job.status.in_(FINISHED), Job.updated_at < before)
    session.execute(update(Job).where(old, Job.status == JobStatus.PARKED.value)
                    .values(status=JobStatus.CANCELLED.value, finished_at=now)
                    .execution_options(synchronize_session=False))
    # Session.execute() is typed as returning Result; for this UPDATE it is a CursorResult.
    result = cast("CursorResult[Any]", session.execute(
        update(Job).where(old, or_(sql_cast(Job.payload, Text) != "{}", Job.last_error.is_not(None)))
        .values(payload={}, last_error=None).execution_options(synchronize_session=False)))
    return result.rowcount or 0


# Jobs still to be run or looked at; done and cancelled rows are history (they grow without
# end, and the worker counts them as it finishes them).
OPEN_JOBS = (JobStatus.PENDING.value, JobStatus.RUNNING.value, JobStatus.PARKED.value)


@dataclass(frozen=True)
class JobCount:
    kind: str
    status: str
    jobs: int
    due: int  # of them, due by `now`
    earliest_due: datetime | None


def open_job_counts(session: Session, now: datetime) -> list[JobCount]:
    """Pending, running and parked jobs by kind and status, in one grouped pass over the
    (status, due_at) index (what the metrics read at each scrape)."""
    due = func.coalesce(func.sum(case((Job.due_at <= now, 1), else_=0)), 0)
    rows = session.execute(select(Job.kind, Job.status, func.count(), due, func.min(Job.due_at))
                           .where(Job.status.in_(OPEN_JOBS)).group_by(Job.kind, Job.status))
    return [JobCount(kind, status, int(jobs), int(due_jobs), earliest)
            for kind, status, jobs, due_jobs, earliest in rows]
