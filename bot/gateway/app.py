"""Gateway application factory: WeChat push endpoint, staff API, health, dev simulator."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from sqlalchemy import text

from bot.assistant import AssistantClient
from bot.config import Settings
from bot.gateway import staff_api, wechat_routes
from bot.gateway.conversation import ConversationService
from bot.gateway.keys import CONVERSATIONS, CREDENTIALS, HTTP, RULES, SETTINGS, STORE
from bot.rules import ProjectRules, load_rules
from bot.store import TicketStore
from bot.wechat.api import WeChatApi
from bot.wechat.protocol import MAX_BODY_BYTES, WeChatCredentials

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        def ping() -> None:
            with request.app[STORE].transaction() as session:
                session.execute(text("SELECT 1"))

        await asyncio.to_thread(ping)
        checks["store"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report any store failure as unhealthy
        log.warning("health check: store unavailable: %s", exc.__class__.__name__)
        checks["store"] = "unavailable"
    try:
        async with request.app[HTTP].get(f"{request.app[SETTINGS].rasa_url}/status",
                                         timeout=aiohttp.ClientTimeout(total=2)) as response:
            checks["rasa"] = "ok" if response.status == 200 else f"http {response.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError):
        checks["rasa"] = "unavailable"
    # The gateway is healthy when its store works; Rasa being down is reported, not fatal:
    # messages are stored, acknowledged and answered when it is back.
    status = 200 if checks["store"] == "ok" else 503
    return web.json_response({"status": "ok" if status == 200 else "degraded", "checks": checks}, status=status)


async def index(_request: web.Request) -> web.Response:
    return web.json_response({"service": "wuye-assistant gateway", "health": "/healthz", "wechat": "/wechat"})


async def _retry_loop(service: ConversationService, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            answered = await service.retry_waiting()
            if answered:
                log.info("answered %d message(s) that waited for the assistant", answered)
        except Exception:  # noqa: BLE001 - the loop must survive a bad round
            log.exception("retry round failed")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[STORE] = TicketStore(settings.database_url)
    app[HTTP] = aiohttp.ClientSession()
    assistant = AssistantClient(app[HTTP], settings.rasa_url, settings.action_server_url)
    api = WeChatApi(app[HTTP], app[STORE], settings.wechat_api_base_url, settings.wechat_app_id,
                    settings.wechat_app_secret)
    service = ConversationService(app[STORE], app[RULES], assistant, api, settings.passive_reply_budget)
    app[CONVERSATIONS] = service
    retry = asyncio.create_task(_retry_loop(service, settings.retry_interval))
    yield
    retry.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await retry
    await service.drain()
    await app[HTTP].close()
    app[STORE].dispose()


def create_app(settings: Settings, rules: ProjectRules | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[RULES] = rules or load_rules(settings.project_config)
    app[CREDENTIALS] = WeChatCredentials(settings.wechat_token, settings.wechat_app_id,
                                         settings.wechat_encoding_aes_key)
    app.cleanup_ctx.append(_resources)
    app.add_routes([web.get("/", index), web.get("/healthz", healthz)])
    app.add_routes(wechat_routes.ROUTES)
    app.add_routes(staff_api.ROUTES)
    if settings.is_development:
        from bot.gateway import simulator

        simulator.install(app, settings)
    return app
