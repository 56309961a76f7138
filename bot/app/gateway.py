"""Gateway application factories: the public app (WeChat push endpoint, health, dev simulator)
and the staff app (staff API, health), served on separate listeners.

The one place where the resident channel, the message router, the assistant client and
the staff API meet: each is built here and handed what it needs. The staff API is never
mounted on the public app, so publishing the WeChat port never publishes staff routes.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from sqlalchemy import text

from bot import staff_api
from bot.app.metrics import METRICS, GatewayMetrics, metrics_page
from bot.app.services import assistant_client, company_of, flood_counters, wechat_api
from bot.cases.flood import FloodGuard
from bot.cases.routing import MessageRouter
from bot.cases.sign_in import set_password
from bot.cases.staff_directory import ensure_demo_staff
from bot.channels.wechat import routes as wechat_routes
from bot.channels.wechat.conversation import ConversationService
from bot.channels.wechat.keys import CONVERSATIONS, CREDENTIALS, HTTP
from bot.channels.wechat.protocol import MAX_BODY_BYTES, WeChatCredentials
from bot.console import app as console
from bot.core.clock import utcnow
from bot.core.company import Company
from bot.db.counters import RedisCounters
from bot.db.store import TicketStore
from bot.settings import DEVELOPMENT_VALUES, Settings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", TicketStore)
COMPANY = web.AppKey("company", Company)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("staff_clock")


async def _store_check(store: TicketStore) -> str:
    try:
        def ping() -> None:
            with store.transaction() as session:
                session.execute(text("SELECT 1"))

        await asyncio.to_thread(ping)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - report any store failure as unhealthy
        log.warning("health check: store unavailable: %s", exc.__class__.__name__)
        return "unavailable"


async def _rasa_check(http: aiohttp.ClientSession, settings: Settings) -> str:
    # /status is behind Rasa's auth token (`?token=`, the only form Rasa reads); a refused
    # token shows here as "http 401" before any resident's message meets it.
    try:
        async with http.get(f"{settings.rasa_url}/status", params={"token": settings.rasa_auth_token},
                            timeout=aiohttp.ClientTimeout(total=2)) as response:
            return "ok" if response.status == 200 else f"http {response.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return "unavailable"


def _health_response(checks: dict[str, str]) -> web.Response:
    # Healthy when the store works; Rasa being down is reported, not fatal: messages are
    # stored, acknowledged and answered when it is back.
    status = 200 if checks["store"] == "ok" else 503
    return web.json_response({"status": "ok" if status == 200 else "degraded", "checks": checks}, status=status)


async def healthz(request: web.Request) -> web.Response:
    checks = {"store": await _store_check(request.app[STORE]),
              "rasa": await _rasa_check(request.app[HTTP], request.app[SETTINGS])}
    return _health_response(checks)


async def staff_healthz(request: web.Request) -> web.Response:
    return _health_response({"store": await _store_check(request.app[STORE])})


async def index(_request: web.Request) -> web.Response:
    return web.json_response({"service": "wuye-assistant gateway", "health": "/healthz", "wechat": "/wechat"})


async def _retry_loop(service: ConversationService, interval: float) -> None:
    """Every replica, every `interval`: take over the messages of replicas that stopped (their
    lease ran out), then retry those that waited for the assistant; each message is claimed
    first, so exactly one replica answers it."""
    while True:
        await asyncio.sleep(interval)
        try:
            taken = await service.take_over_stalled()
            if taken:
                log.info("answered %d message(s) left by a gateway replica that stopped", taken)
        except Exception:  # noqa: BLE001 - the loop must survive a bad round
            log.exception("takeover round failed")
        try:
            answered = await service.retry_waiting()
            if answered:
                log.info("answered %d message(s) that waited for the assistant", answered)
        except Exception:  # noqa: BLE001 - the loop must survive a bad round
            log.exception("retry round failed")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = app[STORE] = TicketStore(settings.database_url)
    http = app[HTTP] = aiohttp.ClientSession()
    counters = flood_counters(settings)
    company, metrics = app[COMPANY], app[METRICS]
    # One flood limit per gateway (the default project's): a message is admitted before anyone
    # looks up which project its resident is in.
    router = MessageRouter(store, company, assistant_client(http, settings, metrics),
                           FloodGuard(counters, company.default.flood))
    service = ConversationService(store, router, wechat_api(http, store, settings, metrics),
                                  settings.passive_reply_budget, metrics)
    app[CONVERSATIONS] = service
    retry = asyncio.create_task(_retry_loop(service, settings.retry_interval))
    yield
    retry.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await retry
    await service.drain()
    await http.close()
    if isinstance(counters, RedisCounters):
        await counters.close()
    store.dispose()


def create_app(settings: Settings, company: Company | None = None,
               metrics: GatewayMetrics | None = None) -> web.Application:
    """The public listener: what WeChat's servers (and, in development, the simulator) reach.
    No /metrics here: the staff app given the same `metrics` serves them (bot.app.metrics)."""
    metrics = metrics or GatewayMetrics()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[metrics.middleware("public")])
    app[METRICS] = metrics
    app[SETTINGS] = settings
    app[COMPANY] = company or company_of(settings)
    app[CREDENTIALS] = WeChatCredentials(settings.wechat_token, settings.wechat_app_id,
                                         settings.wechat_encoding_aes_key, settings.wechat_allow_plaintext,
                                         settings.wechat_max_skew_seconds)
    app.cleanup_ctx.append(_resources)
    app.add_routes([web.get("/", index), web.get("/healthz", healthz)])
    app.add_routes(wechat_routes.ROUTES)
    if settings.is_development:
        from bot.channels.wechat import simulator  # only ever loaded in development

        simulator.install(app, settings)
    return app


DEMO_CONSOLE_LOGIN = "demo"


def ensure_development_staff(settings: Settings, company: Company, store: TicketStore) -> None:
    """Development only: the demo staff member (every role, every project), with STAFF_API_TOKEN
    as their API token so a newcomer's scripts keep working. Production creates no one."""
    if not settings.is_development:
        return
    with store.transaction() as session:
        member, issued = ensure_demo_staff(session, known_projects=company.codes,
                                           token=settings.staff_api_token or None)
        if member.password_hash is None:  # the console: login "demo", the development password
            member.console_login = member.console_login or DEMO_CONSOLE_LOGIN
            set_password(session, member, DEVELOPMENT_VALUES["CONSOLE_DEMO_PASSWORD"])
    if issued:
        log.info("development: demo staff member %s (employee number %s) signs in with STAFF_API_TOKEN",
                 member.name, member.employee_number)


async def _staff_store(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE] = TicketStore(app[SETTINGS].database_url)
    await asyncio.to_thread(ensure_development_staff, app[SETTINGS], app[COMPANY], store)
    staff_api.attach_store(app, store)
    console.attach_store(app, store)
    app[METRICS].watch_jobs(store, app[CLOCK])
    yield
    app[METRICS].unwatch_jobs()
    store.dispose()


def create_staff_app(settings: Settings, company: Company | None = None,
                     clock: Callable[[], datetime] = utcnow, metrics: GatewayMetrics | None = None) -> web.Application:
    """The staff listener: the staff API, the web console (/console), its health and the
    gateway's /metrics (the public app's too when given the same `metrics`), on an internal
    port (or behind the intranet reverse proxy), never on the public WeChat listener."""
    metrics = metrics or GatewayMetrics()
    app = web.Application(middlewares=[metrics.middleware("staff")])
    app[METRICS] = metrics
    app[CLOCK] = clock
    app[SETTINGS] = settings
    app[COMPANY] = company or company_of(settings)
    app.cleanup_ctx.append(_staff_store)
    app.add_routes([web.get("/healthz", staff_healthz), web.get("/metrics", metrics_page)])
    staff_api.install(app, company=app[COMPANY], clock=clock)
    # The console's cookies travel over HTTPS only, except on a developer's loopback.
    console.install(app, company=app[COMPANY], clock=clock, secure_cookies=not settings.is_development)
    return app
