"""Prometheus metrics: the gateway's (served on the staff listener only) and the worker's (its own
small listener), scraped over HTTP from real servers on loopback and read with
prometheus_client's own parser."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from bot.app import migrate
from bot.app.gateway import create_app, create_staff_app
from bot.app.metrics import GatewayMetrics, WorkerMetrics, worker_listener
from bot.channels.wechat.models import InboundMessage
from bot.core.clock import utcnow
from bot.db import queue
from bot.db.store import TicketStore
from bot.settings import Settings
from bot.worker import http as worker_http
from tests.live import free_port
from tests.unit.test_wechat_gateway import gateway_settings
from tests.unit.test_worker import MON_10, open_complaint, worker_for
from tests.wechat_fakes import FakeWeChatApi, WeChatServers, text_xml

# --- reading a scrape ---------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value; 0 when the scrape has no such sample (a counter never touched)."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def scrape(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/metrics") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


# --- the gateway, both listeners, with a fake assistant -----------------------------------------


class FakeAssistant:
    """Rasa's REST channel and the action server's /health: answers after `delay` seconds, or
    with HTTP `status` when that is not 200."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.status = 200
        self.server: TestServer | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", lambda _r: web.json_response({"status": "ok"}))
        app.router.add_post("/webhooks/rest/webhook", self._message)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def _message(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"error": "down"}, status=self.status)
        return web.json_response([{"recipient_id": body["sender"], "text": f"收到：{body['message']}"}])

    async def close(self) -> None:
        if self.server:
            await self.server.close()


@dataclass
class Stack:
    public: str
    staff: str
    store: TicketStore
    api: FakeWeChatApi
    assistant: FakeAssistant
    http: aiohttp.ClientSession

    async def push(self, openid: str, text: str, msg_id: int) -> str | None:
        return (await WeChatServers(self.public).push(self.http, text_xml(openid, text, msg_id=msg_id))).reply

    async def settled(self) -> None:
        for _ in range(200):
            with self.store.transaction() as s:
                if not s.execute(select(func.count()).select_from(InboundMessage)
                                 .where(InboundMessage.status == "received")).scalar_one():
                    return
            await asyncio.sleep(0.05)
        raise TimeoutError("messages still unprocessed")

    async def until(self, condition, what: str) -> None:  # type: ignore[no-untyped-def]
        for _ in range(200):
            if condition():
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(what)

    async def metrics(self) -> str:
        return await scrape(self.http, self.staff)


@contextlib.asynccontextmanager
async def gateway_stack(sqlite_url: str, company, *, rasa_down: bool = False,  # type: ignore[no-untyped-def]
                        **overrides) -> AsyncIterator[Stack]:
    """`serve`'s two apps on one GatewayMetrics, as bot.app.listeners builds them."""
    migrate.upgrade(sqlite_url)
    api, assistant = FakeWeChatApi(), FakeAssistant()
    api_url, rasa_url = await api.start(), await assistant.start()
    if rasa_down:
        rasa_url = f"http://127.0.0.1:{free_port()}"  # nobody listens
    settings = gateway_settings(sqlite_url, api_url, rasa_url, **overrides)
    metrics = GatewayMetrics()
    public = TestServer(create_app(settings, company, metrics=metrics), host="127.0.0.1")
    staff = TestServer(create_staff_app(settings, company, metrics=metrics), host="127.0.0.1")
    await public.start_server()
    await staff.start_server()
    store = TicketStore(sqlite_url)
    try:
        async with aiohttp.ClientSession() as http:
            yield Stack(str(public.make_url("")).rstrip("/"), str(staff.make_url("")).rstrip("/"), store, api,
                        assistant, http)
    finally:
        await public.close()
        await staff.close()
        await api.close()
        await assistant.close()
        store.dispose()


async def test_a_passive_reply_is_timed_and_metrics_are_on_the_staff_listener_only(sqlite_url, company):
    async with gateway_stack(sqlite_url, company) as stack:
        before = await stack.metrics()
        assert value(before, "wuye_reply_latency_seconds_count", delivery="passive") == 0
        reply = await stack.push("oMetrics1", "你好", 8800000001)
        assert reply and reply.startswith("收到：你好")
        await stack.settled()
        after = await stack.metrics()
        assert value(after, "wuye_reply_latency_seconds_count", delivery="passive") == 1
        assert value(after, "wuye_reply_latency_seconds_sum", delivery="passive") < 1.0  # within the budget
        assert value(after, "wuye_reply_latency_seconds_count", delivery="custom") == 0
        assert value(after, "wuye_deferred_replies_total") == 0
        assert value(after, "wuye_http_requests_total", listener="public", method="POST", route="/wechat",
                     status="200") == 1
        # The public listener (published to the internet) serves no metrics.
        async with stack.http.get(f"{stack.public}/metrics") as response:
            assert response.status == 404
        assert value(await stack.metrics(), "wuye_http_requests_total", listener="public", method="GET",
                     route="unmatched", status="404") == 1


async def test_a_missed_passive_window_is_a_deferred_reply(sqlite_url, company):
    async with gateway_stack(sqlite_url, company, passive_reply_budget=0.3) as stack:
        stack.assistant.delay = 0.8
        assert await stack.push("oMetrics2", "我要报修", 8800000002) is None  # "success": answered later
        await stack.until(lambda: stack.api.texts_to("oMetrics2"), "no customer-service message")
        await stack.settled()
        text = await stack.metrics()
        assert value(text, "wuye_deferred_replies_total") == 1
        assert value(text, "wuye_reply_latency_seconds_count", delivery="custom") == 1
        assert value(text, "wuye_reply_latency_seconds_sum", delivery="custom") >= 0.8
        assert value(text, "wuye_reply_latency_seconds_count", delivery="passive") == 0


async def test_a_wechat_errcode_is_counted_by_call_and_code(sqlite_url, company):
    async with gateway_stack(sqlite_url, company, passive_reply_budget=0.3) as stack:
        stack.assistant.delay = 0.6
        stack.api.busy_sends = 1  # WeChat's "system busy" (-1) for the customer-service message
        assert await stack.push("oMetrics3", "我要投诉", 8800000003) is None
        await stack.settled()
        text = await stack.metrics()
        assert value(text, "wuye_wechat_api_errors_total", call="message_custom_send", errcode="-1") == 1
        assert value(text, "wuye_deferred_replies_total") == 1
        # Deferred, but never sent: no latency of a sent answer.
        assert value(text, "wuye_reply_latency_seconds_count", delivery="custom") == 0


async def test_assistant_errors_by_reason_and_the_answer_once_it_is_back(sqlite_url, company):
    async with gateway_stack(sqlite_url, company) as stack:
        stack.assistant.status = 503
        reply = await stack.push("oMetrics4", "你好", 8800000004)
        assert reply  # the holding answer, in the passive reply
        await stack.settled()
        text = await stack.metrics()
        assert value(text, "wuye_assistant_errors_total", reason="http_5xx") >= 1
        assert value(text, "wuye_reply_latency_seconds_count", delivery="passive") == 1
        stack.assistant.status = 200  # back: the retry loop answers the waiting message
        await stack.until(lambda: any(t.startswith("收到：你好") for t in stack.api.texts_to("oMetrics4")),
                          "the waiting message was not answered")
        for _ in range(100):
            text = await stack.metrics()
            if value(text, "wuye_reply_latency_seconds_count", delivery="retried") == 1:
                break
            await asyncio.sleep(0.05)
        assert value(text, "wuye_reply_latency_seconds_count", delivery="retried") == 1


async def test_an_unreachable_assistant_is_counted(sqlite_url, company):
    async with gateway_stack(sqlite_url, company, rasa_down=True) as stack:
        assert await stack.push("oMetrics5", "你好", 8800000005)
        await stack.settled()
        text = await stack.metrics()
        assert value(text, "wuye_assistant_errors_total", reason="action_server_down") >= 1
        assert value(text, "wuye_assistant_errors_total", reason="http_5xx") == 0


async def test_staff_routes_are_labelled_by_their_template_and_open_jobs_are_read_at_scrape(sqlite_url, company, rules):
    async with gateway_stack(sqlite_url, company) as stack:
        async with stack.http.get(f"{stack.staff}/console/cases/R20260101-0001", allow_redirects=False) as response:
            status = response.status
        text = await stack.metrics()
        assert value(text, "wuye_http_requests_total", listener="staff", method="GET",
                     route="/console/cases/{number}", status=str(status)) == 1
        assert not any("R20260101-0001" in line for line in text.splitlines())
        assert value(text, "wuye_jobs_table_readable") == 1
        assert value(text, "wuye_jobs", kind="sla_check", status="pending") == 0  # every kind, zero or not
        open_complaint(stack.store, rules, "oMetricsJobs", now=utcnow())
        text = await stack.metrics()
        assert value(text, "wuye_jobs", kind="sla_check", status="pending") >= 1
        assert value(text, "wuye_jobs_due", kind="sla_check") == 0  # due days from now


def test_apps_in_one_process_have_registries_of_their_own(sqlite_url, company):
    settings = Settings(database_url=sqlite_url)
    for _ in range(2):
        create_app(settings, company)
        create_staff_app(settings, company)
    first, second = GatewayMetrics(), GatewayMetrics()
    first.reply_deferred()
    assert b"wuye_deferred_replies_total 1.0" in first.exposition()
    assert b"wuye_deferred_replies_total 0.0" in second.exposition()


# --- the worker ---------------------------------------------------------------------------------


@pytest.fixture
async def wechat() -> AsyncIterator[tuple[FakeWeChatApi, str]]:
    api = FakeWeChatApi()
    url = await api.start()
    yield api, url
    await api.close()


async def test_the_worker_counts_jobs_and_sla_breaches_and_serves_them_with_its_health(store, rules, wechat):
    _api, url = wechat
    open_complaint(store, rules, "oMetricsWorker", chatted=MON_10 - timedelta(hours=1))
    with store.transaction() as s:  # a kind no handler knows: it fails, and is retried later
        queue.enqueue(s, kind="no_such_kind", project="default", due_at=MON_10 - timedelta(hours=1),
                      key="metrics:unknown", now=MON_10 - timedelta(hours=2), max_attempts=3)
    metrics = WorkerMetrics()
    port = free_port()
    async with aiohttp.ClientSession() as http:
        async with worker_listener(Settings(worker_metrics_port=port), metrics, store, lambda: MON_10) as listening:
            assert listening == f"http://127.0.0.1:{port}"
            text = await scrape(http, listening)
            assert value(text, "wuye_worker_jobs_total", kind="sla_check", result="done") == 0
            assert value(text, "wuye_jobs", kind="no_such_kind", status="pending") == 1
            assert value(text, "wuye_jobs_due", kind="no_such_kind") == 1
            assert value(text, "wuye_jobs_lag_seconds", kind="no_such_kind") > 0
            async with http.get(f"{listening}/healthz") as response:  # starting: no beat yet
                assert response.status == 200 and (await response.json())["heartbeat_age_seconds"] is None

            worker = worker_for(store, rules, http, url, MON_10 - timedelta(minutes=1))
            worker.ctx = dataclasses.replace(worker.ctx, metrics=metrics)
            # Before Monday only the SLA check is due (it alerts staff), and the unknown job.
            assert await worker.run_due() == {"done": 1, "failed": 1}

            text = await scrape(http, listening)
            assert value(text, "wuye_worker_jobs_total", kind="sla_check", result="done") == 1
            assert value(text, "wuye_worker_jobs_total", kind="no_such_kind", result="failed") == 1
            assert value(text, "wuye_worker_job_duration_seconds_count", kind="sla_check") == 1
            assert sum(value(text, "wuye_sla_breaches_total", deadline=d)
                       for d in ("due", "final", "first_feedback", "callback")) == 1
            assert value(text, "wuye_worker_heartbeat_timestamp_seconds") > 0
            async with http.get(f"{listening}/healthz") as response:
                body = await response.json()
                assert response.status == 200 and body["status"] == "ok" and body["heartbeat_age_seconds"] < 60
            # The same check again finds no new breach.
            assert await worker.run_due() == {}


async def test_a_silent_worker_is_unhealthy_and_a_taken_port_does_not_stop_it():
    app = worker_http.create_app(lambda: b"", "text/plain", lambda: 301.0, stale_after=300)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.make_url("/healthz")) as response:
                assert response.status == 503 and (await response.json())["status"] == "stale"
    finally:
        await server.close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        async with worker_http.serving(worker_http.create_app(lambda: b"", "text/plain", lambda: None), "127.0.0.1",
                                       taken.getsockname()[1]) as url:
            assert url is None  # logged; the worker runs on
    async with worker_http.serving(worker_http.create_app(lambda: b"", "text/plain", lambda: None), "127.0.0.1",
                                   0) as url:
        assert url is None  # WORKER_METRICS_PORT=0: off


def test_the_worker_listener_port_comes_from_the_environment():
    assert Settings.from_env({}).worker_metrics_port == 8082
    assert Settings.from_env({"WORKER_METRICS_PORT": "9108"}).worker_metrics_port == 9108
    assert Settings.from_env({"WORKER_METRICS_PORT": "0"}).worker_metrics_port == 0
    assert Settings.from_env({"WORKER_METRICS_PORT": ""}).worker_metrics_port == 0
