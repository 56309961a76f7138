"""`python -m bot serve`: the public app and the staff app in one process, on two listeners.

The public listener (GATEWAY_HOST:GATEWAY_PORT) is the one WeChat's servers reach; the staff
listener (STAFF_HOST:STAFF_PORT) stays on an internal port or behind the intranet reverse
proxy. Two sockets rather than two paths on one: whatever publishes the WeChat port cannot
publish a staff route by mistake.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from bot.app.access_log import PathOnlyAccessLogger
from bot.app.gateway import create_app, create_staff_app
from bot.app.metrics import GatewayMetrics
from bot.app.services import company_of
from bot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.name} on http://{self.host}:{self.port}"


async def serve_gateway(settings: Settings, public: Listener, staff: Listener) -> None:
    """Serve both apps until SIGINT/SIGTERM, then shut both down gracefully (the public one
    first, so no new push arrives while the staff side is closing)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    company = company_of(settings)
    metrics = GatewayMetrics()  # one registry: the staff listener's /metrics tells of both
    apps = ((public, create_app(settings, company, metrics=metrics)),
            (staff, create_staff_app(settings, company, metrics=metrics)))
    started: list[web.AppRunner] = []
    try:
        for listener, app in apps:
            runner = web.AppRunner(app, access_log_class=PathOnlyAccessLogger)
            await runner.setup()
            started.append(runner)
            await web.TCPSite(runner, listener.host, listener.port).start()
            log.info("serving %s", listener)
        await stopping.wait()
    finally:
        for runner in started:
            await runner.cleanup()
