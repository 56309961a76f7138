"""Concrete services for the long-running processes: which channel reaches residents, which
assistant answers them. The one place that knows WeChat and Rasa are what is behind the ports."""
from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import datetime
from typing import AsyncIterator

import aiohttp

from bot.app.metrics import WorkerMetrics, worker_listener
from bot.assistant.client import AssistantClient
from bot.assistant.tracker import RasaApiMemory, SqlTrackerMemory
from bot.cases.ports import ConversationMemory, ResidentChannel
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.delivery import WeChatResidentChannel
from bot.core.clock import utcnow
from bot.core.company import Company, cached_company
from bot.core.metrics import NO_METRICS, Metrics
from bot.db.counters import MemoryCounters, RedisCounters
from bot.db.store import TicketStore
from bot.settings import Settings
from bot.worker.handlers import Context
from bot.worker.loop import Worker, worker_name


def wechat_api(http: aiohttp.ClientSession, store: TicketStore, settings: Settings,
               metrics: Metrics = NO_METRICS) -> WeChatApi:
    return WeChatApi(http, store, settings.wechat_api_base_url, settings.wechat_app_id, settings.wechat_app_secret,
                     metrics=metrics)


def assistant_client(http: aiohttp.ClientSession, settings: Settings, metrics: Metrics = NO_METRICS) -> AssistantClient:
    return AssistantClient(http, settings.rasa_url, settings.action_server_url, settings.rasa_auth_token,
                           metrics=metrics)


def flood_counters(settings: Settings) -> MemoryCounters | RedisCounters:
    """Redis when replicas must share what each resident sent; this process's memory otherwise."""
    return RedisCounters(settings.redis_url) if settings.redis_url else MemoryCounters()


def conversation_memory(http: aiohttp.ClientSession, settings: Settings) -> SqlTrackerMemory | RasaApiMemory:
    """Rasa's SQL tracker store when its URL is configured; else the running Rasa's in-memory one."""
    if settings.tracker_store_url:
        return SqlTrackerMemory(settings.tracker_store_url)
    return RasaApiMemory(http, settings.rasa_url, settings.rasa_auth_token)


def worker_context(http: aiohttp.ClientSession, store: TicketStore, settings: Settings,
                   company: Company, metrics: Metrics = NO_METRICS) -> Context:
    residents = WeChatResidentChannel(wechat_api(http, store, settings, metrics), store, company)
    return Context(store, company, residents, assistant_client(http, settings, metrics),
                   conversation_memory(http, settings), metrics=metrics)


@contextlib.asynccontextmanager
async def rights_ports(store: TicketStore, settings: Settings,
                       company: Company) -> AsyncIterator[tuple[ResidentChannel, ConversationMemory]]:
    """The channel and the assistant's memory, for a resident's export or erasure."""
    async with aiohttp.ClientSession() as http:
        memory = conversation_memory(http, settings)
        try:
            yield WeChatResidentChannel(wechat_api(http, store, settings), store, company), memory
        finally:
            if isinstance(memory, SqlTrackerMemory):
                memory.dispose()


async def run_worker(settings: Settings, company: Company, *, once: bool, now: datetime | None) -> dict[str, int]:
    """`python -m bot worker`: until SIGINT/SIGTERM, or one pass over what is due (`--once`)."""
    store = TicketStore(settings.database_url)
    metrics = WorkerMetrics()
    async with aiohttp.ClientSession() as http:
        worker = Worker(worker_context(http, store, settings, company, metrics), worker_name(),
                        clock=(lambda: now) if now else utcnow,
                        heartbeat=None if once else settings.worker_heartbeat_file)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, worker.stopping.set)  # finish the job in hand, then stop
        try:
            if once:
                return await worker.run_due()
            async with worker_listener(settings, metrics, store):  # /metrics, /healthz (bot.worker.http)
                await worker.run_forever()
            return {}
        finally:
            store.dispose()


def company_of(settings: Settings) -> Company:
    """The project registry this deployment runs on (read and checked once per process)."""
    return cached_company(settings.project_config, settings.projects_dir)
