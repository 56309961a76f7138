"""Prometheus metrics of the gateway and the worker: `bot.core.metrics.Metrics` kept in a
registry of each process's own (never prometheus_client's global one, so several apps in one
test process do not clash), read by a scrape of /metrics.

Where each is served:
  gateway  /metrics on the staff listener (STAFF_HOST:STAFF_PORT) only, with the public
           listener's numbers too (one registry for both apps of `serve`): the public port is
           published to the internet, and what the metrics say (traffic, error codes, the
           queue) is nobody's business there. A Prometheus on the intranet scrapes the staff
           listener; the intranet reverse proxy in front of the console need not forward it.
  worker   /metrics and /healthz on its own small listener (bot.worker.http,
           WORKER_METRICS_HOST:WORKER_METRICS_PORT).

The open jobs (`wuye_jobs…`) are read from the jobs table at each scrape, by both, so they
are the same on every process that reports them: aggregate them with max(), not sum().
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import AsyncIterator, Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bot.core import metrics as names
from bot.core.clock import utcnow
from bot.core.metrics import Metrics
from bot.db import queue
from bot.db.models import JobStatus
from bot.db.store import TicketStore
from bot.settings import Settings
from bot.worker import http as worker_http
from bot.worker.handlers import HANDLERS

log = logging.getLogger(__name__)

# Seconds. WeChat's passive window is 5 s; customer-service replies take longer; a message that
# waited for the assistant to come back takes minutes (up to the retry interval and beyond).
REPLY_BUCKETS = (0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60, 120, 300, 900, 3600)
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
HTTP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

ASSISTANT_REASONS = (names.ACTION_SERVER_DOWN, names.UNREACHABLE, names.TIMEOUT, names.HTTP_5XX,
                     names.AUTH_REFUSED, names.REFUSED)
JOB_RESULTS = ("done", "deferred", "failed", "parked")
SLA_DEADLINES = ("due", "final", "first_feedback", "callback")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ProcessMetrics(Metrics):
    """What both processes report: the assistant's and WeChat's failures (both call them)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._jobs: JobsCollector | None = None
        self.assistant_errors = Counter(
            "wuye_assistant_errors", "Calls to the assistant that failed (Rasa or its action server)",
            ["reason"], registry=self.registry)
        for reason in ASSISTANT_REASONS:
            self.assistant_errors.labels(reason)
        self.wechat_api_errors = Counter(
            "wuye_wechat_api_errors", "WeChat API calls answered with a non-zero errcode",
            ["call", "errcode"], registry=self.registry)

    def assistant_error(self, reason: str) -> None:
        self.assistant_errors.labels(reason).inc()

    def wechat_api_error(self, call: str, errcode: int) -> None:
        self.wechat_api_errors.labels(call, str(errcode)).inc()

    def watch_jobs(self, store: TicketStore, clock: Callable[[], datetime] = utcnow) -> None:
        """Report the open jobs of `store` at each scrape (replacing the store watched before)."""
        self.unwatch_jobs()
        self._jobs = JobsCollector(store, clock)
        self.registry.register(self._jobs)

    def unwatch_jobs(self) -> None:
        if self._jobs is not None:
            self.registry.unregister(self._jobs)
            self._jobs = None

    def exposition(self) -> bytes:
        """The text format of every metric (reads the jobs table: call it off the event loop)."""
        return generate_latest(self.registry)


class GatewayMetrics(ProcessMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.reply_latency = Histogram(
            "wuye_reply_latency_seconds",
            "From a resident's message reaching the WeChat endpoint to its answer being sent, by how it went",
            ["delivery"], buckets=REPLY_BUCKETS, registry=self.registry)
        for delivery in (names.PASSIVE, names.CUSTOM, names.RETRIED):
            self.reply_latency.labels(delivery)
        self.deferred_replies = Counter(
            "wuye_deferred_replies", "Answers that missed the passive-reply window and went as customer-service "
            "messages", registry=self.registry)
        self.http_requests = Counter(
            "wuye_http_requests", "HTTP requests served, by listener, route and status",
            ["listener", "method", "route", "status"], registry=self.registry)
        self.http_duration = Histogram(
            "wuye_http_request_duration_seconds", "Time to answer an HTTP request, by listener and route",
            ["listener", "route"], buckets=HTTP_BUCKETS, registry=self.registry)

    def reply_sent(self, delivery: str, seconds: float) -> None:
        self.reply_latency.labels(delivery).observe(max(0.0, seconds))

    def reply_deferred(self) -> None:
        self.deferred_replies.inc()

    def middleware(self, listener: str):  # type: ignore[no-untyped-def]
        """Counts every request of the app it is added to (first, so it sees the final status)."""

        @web.middleware
        async def observe(request: web.Request, handler):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                route = route_of(request)
                method = request.method if request.method in HTTP_METHODS else "other"
                self.http_requests.labels(listener, method, route, str(status)).inc()
                self.http_duration.labels(listener, route).observe(time.perf_counter() - started)

        return observe


class WorkerMetrics(ProcessMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.jobs_run = Counter("wuye_worker_jobs", "Jobs the worker ran, by kind and result "
                                "(failed: retried later; parked: gave up, staff alerted)",
                                ["kind", "result"], registry=self.registry)
        self.job_duration = Histogram("wuye_worker_job_duration_seconds", "Time to run one job, by kind",
                                      ["kind"], buckets=JOB_BUCKETS, registry=self.registry)
        for kind in HANDLERS:
            self.job_duration.labels(kind)
            for result in JOB_RESULTS:
                self.jobs_run.labels(kind, result)
        self.sla_breaches = Counter("wuye_sla_breaches", "Cases found past a deadline (staff alerted), by deadline",
                                    ["deadline"], registry=self.registry)
        for deadline in SLA_DEADLINES:
            self.sla_breaches.labels(deadline)
        self.last_beat = Gauge("wuye_worker_heartbeat_timestamp_seconds",
                               "When the worker last finished a job or a round of its loop (Unix time)",
                               registry=self.registry)
        self._beat: float | None = None  # time.monotonic() of the last beat

    def job_finished(self, kind: str, result: str, seconds: float) -> None:
        self.jobs_run.labels(kind, result).inc()
        self.job_duration.labels(kind).observe(seconds)
        self.heartbeat()

    def sla_breach(self, deadline: str) -> None:
        self.sla_breaches.labels(deadline).inc()

    def heartbeat(self) -> None:
        self._beat = time.monotonic()
        self.last_beat.set_to_current_time()

    def beat_age(self) -> float | None:
        """Seconds since the last beat; None before the first."""
        return None if self._beat is None else time.monotonic() - self._beat


class JobsCollector:
    """The open jobs, read from the jobs table when scraped (every known kind reported, zero or not)."""

    def __init__(self, store: TicketStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("wuye_jobs_table_readable", "1 when this scrape could read the jobs table"),
                GaugeMetricFamily("wuye_jobs", "Open jobs in the queue, by kind and status",
                                  labels=["kind", "status"]),
                GaugeMetricFamily("wuye_jobs_due", "Pending jobs due by now (waiting for a worker), by kind",
                                  labels=["kind"]),
                GaugeMetricFamily("wuye_jobs_lag_seconds", "How long the most overdue pending job has waited past "
                                  "its due time, by kind (0: none overdue)", labels=["kind"]))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()  # the names, without reading the table

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        readable, jobs, due, lag = self._families()
        try:
            with self.store.transaction() as session:
                counts = queue.open_job_counts(session, now)
        except Exception as exc:  # noqa: BLE001 - a scrape reports the store down, it does not fail
            log.warning("metrics: jobs table not readable: %s", exc.__class__.__name__)
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        by_key = {(count.kind, count.status): count for count in counts}
        for kind in sorted(set(HANDLERS) | {count.kind for count in counts}):
            for status in queue.OPEN_JOBS:
                count = by_key.get((kind, status))
                jobs.add_metric([kind, status], count.jobs if count else 0)
            pending = by_key.get((kind, JobStatus.PENDING.value))
            due.add_metric([kind], pending.due if pending else 0)
            overdue = (now - pending.earliest_due).total_seconds() if pending and pending.earliest_due else 0.0
            lag.add_metric([kind], max(0.0, overdue))
        yield jobs
        yield due
        yield lag


def route_of(request: web.Request) -> str:
    """The route's template (/console/cases/{number}), never the path itself: a bounded label."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


METRICS = web.AppKey("metrics", ProcessMetrics)


async def metrics_page(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(request.app[METRICS].exposition)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@contextlib.asynccontextmanager
async def worker_listener(settings: Settings, metrics: WorkerMetrics, store: TicketStore,
                          clock: Callable[[], datetime] = utcnow) -> AsyncIterator[str | None]:
    """The worker's /metrics and /healthz (bot.worker.http) on WORKER_METRICS_HOST:PORT while the
    `with` runs; yields its URL (None: WORKER_METRICS_PORT=0, or the port was taken)."""
    metrics.watch_jobs(store, clock)
    app = worker_http.create_app(metrics.exposition, CONTENT_TYPE_LATEST, metrics.beat_age)
    try:
        async with worker_http.serving(app, settings.worker_metrics_host, settings.worker_metrics_port) as url:
            yield url
    finally:
        metrics.unwatch_jobs()
