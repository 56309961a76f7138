"""Gateway application factory.

The WeChat channel arrives in the next milestone; today the gateway serves its health
check (store reachable, Rasa reachable) so `make run` and monitoring can watch it.
"""
from __future__ import annotations

import logging
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from sqlalchemy import text

from bot.config import Settings
from bot.store import TicketStore

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", TicketStore)
HTTP = web.AppKey("http", aiohttp.ClientSession)


async def healthz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        with request.app[STORE].transaction() as session:
            session.execute(text("SELECT 1"))
        checks["store"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report any store failure as unhealthy
        log.warning("health check: store unavailable: %s", exc.__class__.__name__)
        checks["store"] = "unavailable"
    try:
        async with request.app[HTTP].get(f"{request.app[SETTINGS].rasa_url}/status",
                                         timeout=aiohttp.ClientTimeout(total=2)) as response:
            checks["rasa"] = "ok" if response.status == 200 else f"http {response.status}"
    except (aiohttp.ClientError, TimeoutError):
        checks["rasa"] = "unavailable"
    # The gateway itself is healthy when its store works; Rasa being down is reported,
    # not fatal (messages are accepted and answered later).
    status = 200 if checks["store"] == "ok" else 503
    return web.json_response({"status": "ok" if status == 200 else "degraded", "checks": checks}, status=status)


async def index(_request: web.Request) -> web.Response:
    return web.json_response({"service": "wuye-assistant gateway", "health": "/healthz"})


async def _resources(app: web.Application) -> AsyncIterator[None]:
    app[STORE] = TicketStore(app[SETTINGS].database_url)
    app[HTTP] = aiohttp.ClientSession()
    yield
    await app[HTTP].close()
    app[STORE].dispose()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.add_routes([
        web.get("/", index),
        web.get("/healthz", healthz),
    ])
    return app
