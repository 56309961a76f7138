"""The worker's small HTTP side: /metrics (Prometheus text format) and /healthz (its heartbeat).

`python -m bot worker` serves it on WORKER_METRICS_HOST:WORKER_METRICS_PORT (127.0.0.1:8082 by
default; WORKER_METRICS_PORT=0 turns it off). An internal port, like the staff listener's:
nothing here is for the internet. A port that is taken (a second worker on one host) is
logged and the worker runs on without it: metrics are never worth stopping the follow-ups.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncIterator, Callable, Optional

from aiohttp import web

log = logging.getLogger(__name__)

# The loop beats after every job and every round (every 2 s when idle); a single job may take
# a while (the quarter's report), so silence is only alarming well past that.
STALE_AFTER = 300.0

Exposition = Callable[[], bytes]  # the metrics in Prometheus' text format (may read the store)
BeatAge = Callable[[], Optional[float]]  # seconds since the worker's last beat; None before the first

EXPOSITION: web.AppKey[Exposition] = web.AppKey("worker_exposition")
CONTENT_TYPE = web.AppKey("worker_metrics_content_type", str)
BEAT_AGE: web.AppKey[BeatAge] = web.AppKey("worker_beat_age")
STALE = web.AppKey("worker_stale_after", float)
STARTED = web.AppKey("worker_started", float)


async def metrics(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(request.app[EXPOSITION])  # the jobs table is read off the loop
    return web.Response(body=body, headers={"Content-Type": request.app[CONTENT_TYPE]})


async def healthz(request: web.Request) -> web.Response:
    """200 while the worker's loop turns; 503 once it has been silent for longer than allowed
    (before its first beat it counts from when the listener started)."""
    age = request.app[BEAT_AGE]()
    since = age if age is not None else time.monotonic() - request.app[STARTED]
    healthy = since <= request.app[STALE]
    body = {"status": "ok" if healthy else "stale",
            "heartbeat_age_seconds": None if age is None else round(age, 1)}
    return web.json_response(body, status=200 if healthy else 503)


def create_app(exposition: Exposition, content_type: str, beat_age: BeatAge,
               stale_after: float = STALE_AFTER) -> web.Application:
    app = web.Application()
    app[EXPOSITION] = exposition
    app[CONTENT_TYPE] = content_type
    app[BEAT_AGE] = beat_age
    app[STALE] = stale_after
    app[STARTED] = time.monotonic()
    app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz)])
    return app


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[str | None]:
    """Serve `app` on host:port for the body of the `with`; yields its URL, or None when the
    port is 0 (off) or cannot be had."""
    if not port:
        yield None
        return
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except OSError as exc:
            log.error("worker metrics listener not started on %s:%d: %s", host, port, exc)
            yield None
            return
        log.info("worker metrics and health on http://%s:%d", host, port)
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
