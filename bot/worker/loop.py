"""`python -m bot worker`: claims due jobs and runs them, until stopped (or once, with --once).

Several workers may run against PostgreSQL; each claims its own jobs (SKIP LOCKED). With
`--now` the worker runs on a given clock: what is due at that moment runs, nothing else.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from sqlalchemy.orm import Session

from bot.cases import alerts
from bot.core import heartbeat as heartbeat_file
from bot.core.clock import utcnow
from bot.db import queue
from bot.db.models import Job, Ticket
from bot.worker.handlers import HANDLERS, Context, Deferred, schedule_daily

log = logging.getLogger(__name__)

POLL_INTERVAL = 2.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, ctx: Context, name: str, clock: Callable[[], datetime] = utcnow, batch: int = 10,
                 heartbeat: Path | None = None) -> None:
        self.ctx = ctx
        # Touched each round and after each job: a supervisor without HTTP (make run, Docker)
        # reads its age; stale means stuck.
        self.heartbeat = heartbeat
        self.name = name
        self.clock = clock
        self.batch = batch
        self.stopping = asyncio.Event()
        self._housekeeping_checked: datetime | None = None

    async def run_job(self, job: queue.ClaimedJob) -> str:
        # Each job runs on the rules of its own project.
        ctx = self.ctx.for_project(job.project)
        store, rules, now = ctx.store, ctx.rules, self.clock()
        handler = HANDLERS.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"unknown job kind {job.kind!r}")
            await handler(ctx, job, now)
        except Deferred as wait:
            await asyncio.to_thread(queue.defer, store, job.id, self.name, wait.until, now, str(wait))
            log.info("job %d (%s) deferred to %s: %s", job.id, job.kind, wait.until.isoformat(timespec="minutes"), wait)
            return "deferred"
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried, never fatal
            error = f"{exc.__class__.__name__}: {exc}"

            def alert_staff(session: Session, parked_job: Job, ticket: Ticket | None) -> None:
                alerts.job_parked(session, parked_job, ticket, error, now)

            parked = await asyncio.to_thread(queue.fail, store, job.id, self.name, error, now, rules.follow_up,
                                             alert_staff)
            log.log(logging.ERROR if parked else logging.WARNING, "job %d (%s) attempt %d/%d failed%s: %s",
                    job.id, job.kind, job.attempts, job.max_attempts, " and is parked" if parked else "", exc)
            return "parked" if parked else "failed"
        await asyncio.to_thread(queue.complete, store, job.id, self.name, now)
        log.info("job %d (%s) done", job.id, job.kind)
        return "done"

    async def run_due(self) -> dict[str, int]:
        """Run everything due now; returns counts by result."""
        counts: dict[str, int] = {}
        while not self.stopping.is_set():
            jobs = await asyncio.to_thread(queue.claim_due, self.ctx.store, self.name, self.clock(), limit=self.batch)
            if not jobs:
                break
            for job in jobs:
                started = time.monotonic()
                result = await self.run_job(job)
                self.ctx.metrics.job_finished(job.kind, result, time.monotonic() - started)
                counts[result] = counts.get(result, 0) + 1
                self.beat()
        return counts

    def beat(self) -> None:
        if self.heartbeat is not None:
            heartbeat_file.beat(self.heartbeat)

    async def schedule_housekeeping(self) -> None:
        """Once per hour at most: make sure the next daily housekeeping job is queued."""
        hour = self.clock().replace(minute=0, second=0, microsecond=0)
        if hour != self._housekeeping_checked:
            await asyncio.to_thread(schedule_daily, self.ctx.store, self.ctx.rules, self.clock())
            self._housekeeping_checked = hour

    async def run_forever(self, poll_interval: float = POLL_INTERVAL) -> None:
        log.info("worker %s started (poll every %.1f s)", self.name, poll_interval)
        while not self.stopping.is_set():
            self.beat()
            try:
                await self.schedule_housekeeping()
                await self.run_due()
                self.ctx.metrics.heartbeat()
            except Exception:  # noqa: BLE001 - e.g. the database is briefly down: try again
                log.exception("worker round failed; retrying in %.0f s", poll_interval * 5)
                await asyncio.sleep(poll_interval * 4)
            try:
                await asyncio.wait_for(self.stopping.wait(), poll_interval)
            except asyncio.TimeoutError:
                pass
        log.info("worker %s stopped", self.name)
