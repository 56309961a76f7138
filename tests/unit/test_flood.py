"""Flood control (issue 12, item 4): a per-resident rate limit, one message in flight per
resident, answers in order, and other residents untouched.

The gateway runs for real on loopback; Rasa and the action server are a small stand-in
that records every call and can hold a call until the test lets it go.
"""
from __future__ import annotations

import asyncio
import dataclasses
import itertools
import uuid
from typing import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.cases.flood import Admission, FloodGuard
from bot.channels.wechat.models import InboundMessage
from bot.core import replies
from bot.core.company import Company
from bot.core.rules import FloodRules
from bot.db.counters import MemoryCounters, RedisCounters
from tests.unit.test_wechat_gateway import running_gateway
from tests.wechat_fakes import text_xml

ids = itertools.count(1)


def xml(openid: str, text: str) -> str:
    return text_xml(openid, text, msg_id=9900000000 + next(ids))


def first_part(reply: str | None) -> str | None:
    """The assistant's answer without the binding prompt a first contact also gets."""
    return reply.split("\n\n")[0] if reply else reply


class HoldingAssistant:
    """Rasa's REST channel and the action server's /health; calls for `held` senders wait."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.held: set[str] = set()
        self.release = asyncio.Event()
        self.arrived = asyncio.Condition()
        self.server: TestServer | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", lambda _r: web.json_response({"status": "ok"}))
        app.router.add_post("/webhooks/rest/webhook", self._message)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self.url = str(self.server.make_url("")).rstrip("/")
        return self.url

    async def _message(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self.arrived:
            self.calls.append((body["sender"], body["message"]))
            self.arrived.notify_all()
        if body["sender"] in self.held:
            await self.release.wait()
        return web.json_response([{"recipient_id": body["sender"], "text": f"收到：{body['message']}"}])

    async def wait_for_calls(self, count: int) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.calls) >= count), 10)

    def texts_of(self, sender: str) -> list[str]:
        return [text for who, text in self.calls if who == sender]


@pytest.fixture
async def assistant() -> AsyncIterator[HoldingAssistant]:
    fake = HoldingAssistant()
    await fake.start()
    yield fake
    fake.release.set()
    assert fake.server is not None
    await fake.server.close()


def limited(rules, max_messages: int):  # type: ignore[no-untyped-def]
    """A registry whose (default) project allows `max_messages` a minute: the gateway's limit."""
    return Company.of(dataclasses.replace(rules, flood=FloodRules(max_messages=max_messages, window_seconds=60)))


async def test_over_the_limit_one_polite_answer_then_quiet_and_no_assistant_call(sqlite_url, rules, assistant):
    url = assistant.url
    async with running_gateway(sqlite_url, limited(rules, 3), rasa_url=url, action_server_url=url) as gateway:
        servers = gateway.servers(safe_mode=True)
        answers = [first_part((await servers.push(gateway.http, xml("oFlooder", f"第{n}条"))).reply)
                   for n in range(1, 7)]
        assert answers[:3] == ["收到：第1条", "收到：第2条", "收到：第3条"]
        assert answers[3] == replies.sending_too_fast()
        assert answers[4:] == [None, None]  # asked once to wait; the rest of the window is quiet
        assert assistant.texts_of("oFlooder") == ["第1条", "第2条", "第3条"]
        other = await servers.push(gateway.http, xml("oNeighbour", "电梯坏了"))
        assert first_part(other.reply) == "收到：电梯坏了"  # another resident is not limited
        await gateway.settled()
        with gateway.store.transaction() as s:
            rows = s.execute(select(InboundMessage.content, InboundMessage.status)
                             .where(InboundMessage.openid == "oFlooder").order_by(InboundMessage.id)).all()
        # Every message is kept, the ones over the limit marked as such.
        assert [tuple(r) for r in rows] == [("第1条", "answered"), ("第2条", "answered"), ("第3条", "answered"),
                                            ("第4条", "throttled"), ("第5条", "throttled"), ("第6条", "throttled")]


async def test_one_message_in_flight_per_resident_answered_in_order(sqlite_url, company, assistant):
    url = assistant.url
    assistant.held.add("oQuick")
    async with running_gateway(sqlite_url, company, rasa_url=url, action_server_url=url,
                               passive_reply_budget=0.2) as gateway:
        servers = gateway.servers()
        first = asyncio.create_task(servers.push(gateway.http, xml("oQuick", "我要报修")))
        await assistant.wait_for_calls(1)
        second = asyncio.create_task(servers.push(gateway.http, xml("oQuick", "厨房漏水")))
        # While the first is answered, another resident is served at once...
        other = await servers.push(gateway.http, xml("oOther", "你好"))
        assert first_part(other.reply) == "收到：你好"
        await asyncio.gather(first, second)  # both passive windows pass; the answers will be pushed
        # ...but the same resident's second message has not reached the assistant: it waits its turn.
        assert assistant.texts_of("oQuick") == ["我要报修"]
        assistant.release.set()
        await gateway.settled()
        assert assistant.texts_of("oQuick") == ["我要报修", "厨房漏水"]
        assert [first_part(t) for t in gateway.api.texts_to("oQuick")] == ["收到：我要报修", "收到：厨房漏水"]


async def test_counters_slide_and_ask_once_per_window():
    now = [1000.0]
    counters = MemoryCounters(clock=lambda: now[0])
    assert [await counters.hit("k", 60) for _ in range(3)] == [1, 2, 3]
    now[0] += 59
    assert await counters.hit("k", 60) == 4
    now[0] += 2  # the first three are older than the window now
    assert await counters.hit("k", 60) == 2
    assert await counters.first_in_window("told", 60) is True
    assert await counters.first_in_window("told", 60) is False
    now[0] += 61
    assert await counters.first_in_window("told", 60) is True


async def test_memory_counters_stay_bounded():
    now = [0.0]
    counters = MemoryCounters(clock=lambda: now[0], max_keys=100)
    for n in range(1000):
        now[0] += 1
        await counters.hit(f"resident{n}", 10)
    assert len(counters._hits) <= 100


async def test_redis_counters_are_shared_between_replicas(redis_server):
    one, two = RedisCounters(redis_server, prefix="wuye-test:"), RedisCounters(redis_server, prefix="wuye-test:")
    key = f"resident:oShared{uuid.uuid4().hex}"  # Redis outlives the test run: a key of its own
    try:
        assert await one.hit(key, 60) == 1
        assert await two.hit(key, 60) == 2  # the other replica sees the first hit
        assert await one.first_in_window(f"told:{key}", 60) is True
        assert await two.first_in_window(f"told:{key}", 60) is False
        keys = [k.decode() async for k in one.client.scan_iter("wuye-test:*")]
        assert keys and not any("oShared" in k for k in keys)  # openids never stored in Redis
    finally:
        await one.close()
        await two.close()


class DownCounters:
    async def hit(self, key: str, window_seconds: float) -> int:
        raise ConnectionError("Redis is down")

    async def first_in_window(self, key: str, window_seconds: float) -> bool:
        raise ConnectionError("Redis is down")


async def test_a_down_counter_store_admits_rather_than_silencing_residents(caplog):
    guard = FloodGuard(DownCounters(), FloodRules(max_messages=1))
    assert await guard.admit("oAnyone") is Admission.ADMITTED
    assert "flood counters unavailable" in caplog.text and "oAnyone" not in caplog.text


async def test_turn_slots_are_forgotten_when_nobody_waits():
    guard = FloodGuard(MemoryCounters(), FloodRules())
    async with guard.turn("oSlot"):
        assert guard.waiting("oSlot") == 1
    assert guard.waiting("oSlot") == 0 and guard._turns == {}
