"""Gateway replicas sharing one database (issue 17, item 3): every message's answer goes out
exactly once, never zero, never twice, whichever replica WeChat reaches and whichever stops.

Each "replica" is a ConversationService of its own (own store engine, own HTTP session, own
router) over the same database, SQLite file and PostgreSQL. Rasa is a stand-in on loopback
with a tracker (GET /conversations/<sender>/tracker) that holds what it answered; WeChat's API
is tests/wechat_fakes.py's, which records every customer-service message. A replica is
"killed" by cancelling its work mid-way: nothing it would have written afterwards is written.
Leases run out on an injected clock, not by waiting.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import event, select
from wechatpy import parse_message

from bot.assistant.client import AssistantClient, answers_after
from bot.cases.routing import MessageRouter
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.conversation import LEASE, ConversationService
from bot.channels.wechat.models import InboundMessage, OutboundMessage
from bot.channels.wechat.protocol import split_for_wechat
from bot.core.clock import utcnow
from bot.db.store import TicketStore
from tests.wechat_fakes import APP_ID, APP_SECRET, FakeWeChatApi, text_xml

RASA_TOKEN = "replica-test-token"
ids = itertools.count(7700000001)


class Clock:
    """The wall clock every replica reads its leases against (they agree, as NTP makes them)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Call:
    sender: str
    text: str
    metadata: dict[str, Any]
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class FakeRasa:
    """Rasa's REST channel, its tracker endpoint and the action server's /health.

    A call whose text is in `held` waits for `release`; Rasa then completes the turn (tracker
    and answer) unless `complete_held` is False (the turn never ran).
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.arrived = asyncio.Condition()
        self.held: set[str] = set()
        self.release = asyncio.Event()
        self.complete_held = True
        self.down = False
        self.delay = 0.0
        self.answers: dict[str, str] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.tracker_reads = 0
        self.server: TestServer | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", lambda _r: web.json_response({"status": "ok"}))
        app.router.add_post("/webhooks/rest/webhook", self._message)
        app.router.add_get("/conversations/{sender}/tracker", self._tracker)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self.url = str(self.server.make_url("")).rstrip("/")
        return self.url

    async def close(self) -> None:
        self.release.set()
        if self.server:
            await self.server.close()

    async def _message(self, request: web.Request) -> web.Response:
        assert request.query.get("token") == RASA_TOKEN
        body = await request.json()
        if self.down:
            return web.json_response({"error": "down"}, status=503)
        call = Call(body["sender"], body["message"], body.get("metadata") or {})
        async with self.arrived:
            self.calls.append(call)
            self.arrived.notify_all()
        # Shielded: the turn runs to its end even when the caller has gone (a replica killed
        # just after Rasa answered, or a proxy in between that does not abort on close).
        answer = await asyncio.shield(self._turn(call))
        if answer is None:
            return web.json_response({"error": "gone"}, status=503)
        return web.json_response([{"recipient_id": call.sender, "text": answer}])

    async def _turn(self, call: Call) -> str | None:
        try:
            await asyncio.sleep(self.delay)
            if call.text in self.held:
                await self.release.wait()
                if not self.complete_held:
                    return None
            answer = self.answers.get(call.text, f"收到：{call.text}")
            self.events.setdefault(call.sender, []).extend([
                {"event": "action", "name": "action_listen"},
                {"event": "user", "text": call.text, "metadata": call.metadata},
                {"event": "action", "name": "utter_answer"},
                {"event": "bot", "text": answer, "data": {}},
                {"event": "action", "name": "action_listen"},
            ])
            return answer
        finally:
            call.finished.set()

    async def _tracker(self, request: web.Request) -> web.Response:
        assert request.query.get("token") == RASA_TOKEN and request.query.get("include_events") == "ALL"
        if self.down:
            return web.json_response({"error": "down"}, status=503)
        self.tracker_reads += 1
        sender = request.match_info["sender"]
        return web.json_response({"sender_id": sender, "events": self.events.get(sender, [])})

    async def wait_for_call(self, text: str) -> Call:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: any(c.text == text for c in self.calls)), 10)
        return next(c for c in self.calls if c.text == text)

    def turns(self, sender: str) -> list[str]:
        """The turns Rasa completed for this sender (its tracker's user events)."""
        return [e["text"] for e in self.events.get(sender, []) if e["event"] == "user"]


class GatedApi:
    """WeChat's API for one replica, stopping at the customer-service send of `text`: before
    WeChat has it (`before`), or after WeChat accepted it (the irreducible window)."""

    def __init__(self, inner: WeChatApi, text: str, before: bool) -> None:
        self.inner = inner
        self.text = text
        self.before = before
        self.stopped = asyncio.Event()

    async def send_text(self, openid: str, text: str) -> None:
        if text == self.text:
            if not self.before:
                await self.inner.send_text(openid, text)
            self.stopped.set()
            await asyncio.Event().wait()  # until the replica is killed
        await self.inner.send_text(openid, text)


@dataclass
class Replica:
    service: ConversationService
    store: TicketStore
    http: aiohttp.ClientSession

    async def say(self, openid: str, text: str, msg_id: int) -> str | None:
        return await self.service.handle(parse_message(text_xml(openid, text, msg_id=msg_id)))

    async def kill(self) -> None:
        """kill -9, as far as the database can tell: the replica's work stops where it is."""
        tasks = list(self.service._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Cluster:
    url: str
    rasa: FakeRasa
    wechat: FakeWeChatApi
    wechat_url: str
    clock: Clock
    company: Any
    replicas: list[Replica] = field(default_factory=list)

    async def replica(self, name: str, passive_budget: float = 0.2,
                      api: Callable[[WeChatApi], Any] | None = None) -> Replica:
        store = TicketStore(self.url)
        http = aiohttp.ClientSession()
        router = MessageRouter(store, self.company, AssistantClient(http, self.rasa.url, self.rasa.url, RASA_TOKEN))
        wechat = WeChatApi(http, store, self.wechat_url, APP_ID, APP_SECRET)
        service = ConversationService(store, router, api(wechat) if api else wechat, passive_budget,
                                      replica=name, clock=self.clock)
        replica = Replica(service, store, http)
        self.replicas.append(replica)
        return replica

    def texts_to(self, openid: str) -> list[str]:
        return self.wechat.texts_to(openid)

    async def pushed(self, openid: str, count: int) -> list[str]:
        for _ in range(500):
            if len(self.texts_to(openid)) >= count:
                return self.texts_to(openid)
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{count} customer-service message(s) expected, got {self.texts_to(openid)}")

    def row(self, msg_id: int) -> InboundMessage:
        with self.replicas[0].store.transaction() as s:
            row = s.execute(select(InboundMessage).where(InboundMessage.dedupe_key == f"msgid:{msg_id}")).scalar_one()
            s.expunge(row)
            return row

    def parts(self, msg_id: int) -> list[tuple[str, str]]:
        with self.replicas[0].store.transaction() as s:
            inbound_id = s.execute(select(InboundMessage.id)
                                   .where(InboundMessage.dedupe_key == f"msgid:{msg_id}")).scalar_one()
            rows = s.execute(select(OutboundMessage).where(OutboundMessage.inbound_id == inbound_id)
                             .order_by(OutboundMessage.id)).scalars().all()
            return [(r.idempotency_key or "", r.status) for r in rows]

    def expire_leases(self) -> None:
        self.clock.advance(LEASE + timedelta(seconds=1))


@pytest.fixture
async def cluster(database_url, company) -> AsyncIterator[Cluster]:  # type: ignore[no-untyped-def]
    rasa, wechat = FakeRasa(), FakeWeChatApi()
    await rasa.start()
    wechat_url = await wechat.start()
    running = Cluster(database_url, rasa, wechat, wechat_url, Clock(), company)
    try:
        yield running
    finally:
        for replica in running.replicas:
            await replica.kill()
            await replica.http.close()
            replica.store.dispose()
        await rasa.close()
        await wechat.close()


async def soon(awaitable: Any) -> Any:
    """An event the test waits for, within 10 s (a hang fails the test instead)."""
    return await asyncio.wait_for(awaitable, 10)


def first_part(text: str | None) -> str | None:
    """The assistant's answer without the binding prompt a first contact also gets."""
    return text.split("\n\n")[0] if text else text


# --- a redelivery to another replica -------------------------------------------------------------


async def test_a_redelivery_to_another_replica_while_the_first_answers_gets_success_and_one_answer(cluster):
    a, b = await cluster.replica("a"), await cluster.replica("b")
    msg_id = next(ids)
    cluster.rasa.held.add("电梯坏了")
    first = asyncio.create_task(a.say("oRed1", "电梯坏了", msg_id))
    await cluster.rasa.wait_for_call("电梯坏了")
    assert await b.say("oRed1", "电梯坏了", msg_id) is None  # A holds the lease: A delivers
    assert await first is None  # A's passive window passed too
    cluster.rasa.release.set()
    await a.service.drain()
    assert [first_part(t) for t in cluster.texts_to("oRed1")] == ["收到：电梯坏了"]
    assert len(cluster.rasa.calls) == 1
    row = cluster.row(msg_id)
    assert (row.status, row.delivery, row.owner, row.lease_until, row.takeovers) == ("answered", "custom", None,
                                                                                   None, 0)


async def test_the_first_replica_answers_passively_while_the_other_says_success(cluster):
    a, b = await cluster.replica("a", passive_budget=5.0), await cluster.replica("b")
    msg_id = next(ids)
    cluster.rasa.held.add("停车费多少")
    first = asyncio.create_task(a.say("oRed2", "停车费多少", msg_id))
    await cluster.rasa.wait_for_call("停车费多少")
    assert await b.say("oRed2", "停车费多少", msg_id) is None
    cluster.rasa.release.set()
    assert first_part(await first) == "收到：停车费多少"
    await a.service.drain()
    assert cluster.texts_to("oRed2") == [] and len(cluster.rasa.calls) == 1
    assert (cluster.row(msg_id).status, cluster.row(msg_id).delivery) == ("answered", "passive")


async def test_a_one_part_passive_answer_is_done_in_the_write_that_records_it(cluster):
    """The HTTP response carries the whole answer: nothing is left to deliver, so the message is
    recorded done (answered, lease released) before the response leaves, in one write, not two."""
    a = await cluster.replica("a", passive_budget=5.0)
    msg_id = next(ids)
    updates: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE INBOUND_MESSAGES"):
            updates.append(statement)

    event.listen(a.store.engine, "before_cursor_execute", note)
    reply = await a.say("oOnePart", "停车费多少", msg_id)
    row = cluster.row(msg_id)  # as the response leaves, before the replica's own work has ended
    assert first_part(reply) == "收到：停车费多少"
    assert (row.status, row.delivery, row.owner, row.lease_until, row.attempts) == ("answered", "passive", None,
                                                                                  None, 1)
    await a.service.drain()
    assert len(updates) == 1, updates
    assert cluster.row(msg_id).attempts == 1 and cluster.texts_to("oOnePart") == []


async def test_a_passive_answer_in_several_parts_is_done_once_the_rest_has_gone_out(cluster):
    a = await cluster.replica("a", passive_budget=5.0)
    msg_id = next(ids)
    cluster.rasa.answers["小区有哪些规定"] = "长" * 1400  # more than one passive reply holds
    reply = await a.say("oManyParts", "小区有哪些规定", msg_id)
    await a.service.drain()
    row = cluster.row(msg_id)
    parts = split_for_wechat(row.reply or "")
    assert len(parts) > 1 and reply == parts[0]
    assert (row.status, row.delivery, row.owner, row.attempts) == ("answered", "passive", None, 1)
    assert cluster.texts_to("oManyParts") == parts[1:]


# --- a replica killed mid-way ----------------------------------------------------------------------


@pytest.mark.parametrize("turn_ran", [True, False], ids=["rasa-had-the-turn", "rasa-never-had-it"])
async def test_a_killed_replica_s_message_is_taken_over_once_by_the_sweep(cluster, turn_ran):
    a, b, c = await cluster.replica("a"), await cluster.replica("b"), await cluster.replica("c")
    msg_id = next(ids)
    cluster.rasa.held.add("我要报修 厨房漏水")
    cluster.rasa.complete_held = turn_ran
    assert await a.say("oKilled", "我要报修 厨房漏水", msg_id) is None  # "success": the answer will be pushed
    call = await cluster.rasa.wait_for_call("我要报修 厨房漏水")
    assert call.metadata["dedupe_key"] == f"msgid:{msg_id}"
    await a.kill()  # after storing the row and asking Rasa
    cluster.rasa.release.set()
    await soon(call.finished.wait())  # Rasa ends the dead replica's request (and, maybe, its turn)
    cluster.rasa.held.clear()
    assert cluster.row(msg_id).status == "received" and cluster.row(msg_id).owner == "a"

    # The lease is live: nobody takes the message.
    assert await b.service.take_over_stalled() == 0 and cluster.texts_to("oKilled") == []
    cluster.expire_leases()
    taken = await asyncio.gather(b.service.take_over_stalled(), c.service.take_over_stalled())
    assert sorted(taken) == [0, 1]  # exactly one replica took it

    [answer] = cluster.texts_to("oKilled")
    assert first_part(answer) == "收到：我要报修 厨房漏水"
    # One turn at Rasa, never two: reused from the tracker when it ran, asked again when it never did.
    assert cluster.rasa.turns("oKilled") == ["我要报修 厨房漏水"]
    assert len(cluster.rasa.calls) == (1 if turn_ran else 2)
    assert cluster.rasa.tracker_reads == 1
    row = cluster.row(msg_id)
    assert (row.status, row.delivery, row.owner, row.takeovers) == ("answered", "custom", None, 1)
    # Later rounds leave it alone.
    cluster.expire_leases()
    assert await b.service.take_over_stalled() == 0 and await c.service.take_over_stalled() == 0
    assert len(cluster.texts_to("oKilled")) == 1


async def test_a_redelivery_after_the_lease_ran_out_is_answered_passively_by_the_other_replica(cluster):
    a, b = await cluster.replica("a"), await cluster.replica("b", passive_budget=5.0)
    msg_id = next(ids)
    cluster.rasa.held.add("物业电话")
    assert await a.say("oRedeliver", "物业电话", msg_id) is None
    call = await cluster.rasa.wait_for_call("物业电话")
    await a.kill()
    cluster.rasa.release.set()
    await soon(call.finished.wait())  # the turn ran at Rasa; A never heard the answer
    cluster.expire_leases()
    assert first_part(await b.say("oRedeliver", "物业电话", msg_id)) == "收到：物业电话"
    await b.service.drain()
    assert cluster.texts_to("oRedeliver") == [] and len(cluster.rasa.calls) == 1
    row = cluster.row(msg_id)
    assert (row.status, row.delivery, row.owner, row.takeovers) == ("answered", "passive", None, 1)
    # A redelivery after that: "success", nothing more.
    assert await b.say("oRedeliver", "物业电话", msg_id) is None


async def test_a_replica_killed_after_its_passive_reply_is_not_answered_again(cluster):
    a, b = await cluster.replica("a", passive_budget=5.0), await cluster.replica("b")
    msg_id = next(ids)
    reply = await a.say("oPassive", "你好", msg_id)
    assert first_part(reply) == "收到：你好"
    await a.service.drain()
    # Killed between the HTTP response and recording the message as done: simulated by
    # putting the row back as it was then (received, A's lease, the passive answer recorded).
    with a.store.transaction() as s:
        row = s.execute(select(InboundMessage).where(InboundMessage.dedupe_key == f"msgid:{msg_id}")).scalar_one()
        row.status, row.owner, row.lease_until, row.attempts = "received", "a", cluster.clock(), 0
    cluster.expire_leases()
    assert await b.service.take_over_stalled() == 1
    assert cluster.texts_to("oPassive") == [] and len(cluster.rasa.calls) == 1
    assert cluster.rasa.tracker_reads == 0  # the answer was recorded: nothing asked, nothing read
    assert (cluster.row(msg_id).status, cluster.row(msg_id).delivery) == ("answered", "passive")


# --- customer-service parts --------------------------------------------------------------------------

LINES = ["一" * 600, "二" * 600, "三" * 600]  # 1,800 bytes each: one customer-service message each


@pytest.mark.parametrize("before", [False, True], ids=["killed-after-wechat-took-it", "killed-before"])
async def test_a_part_recorded_sent_is_not_sent_again_and_one_left_sending_neither(cluster, before):
    cluster.rasa.answers["通知内容"] = "\n".join(LINES)
    a = await cluster.replica("a", api=lambda inner: GatedApi(inner, LINES[1], before))
    b = await cluster.replica("b")
    msg_id = next(ids)
    cluster.rasa.held.add("通知内容")
    assert await a.say("oParts", "通知内容", msg_id) is None  # past the passive window: pushed
    cluster.rasa.release.set()
    await soon(a.service.api.stopped.wait())  # part 1 is in flight
    await a.kill()
    assert [status for _, status in cluster.parts(msg_id)] == ["sent", "sending"]
    cluster.expire_leases()
    assert await b.service.take_over_stalled() == 1
    parts = split_for_wechat(cluster.row(msg_id).reply)
    assert parts[:2] == LINES[:2] and len(parts) >= 3
    # Part 0 went before the kill and is not sent again. Part 1's outcome was never recorded:
    # at most once, so B leaves it; WeChat has it once (killed after) or not at all (before).
    assert cluster.texts_to("oParts") == ([parts[0]] + parts[2:] if before else parts)
    assert [status for _, status in cluster.parts(msg_id)] == ["sent", "sending"] + ["sent"] * (len(parts) - 2)
    assert len(cluster.rasa.calls) == 1 and cluster.rasa.tracker_reads == 0  # the recorded answer, not asked again
    assert cluster.row(msg_id).status == "answered"


# --- waiting messages, retried by every replica ----------------------------------------------------


async def test_both_replicas_retry_the_waiting_messages_and_each_is_answered_once_in_order(cluster):
    a, b = await cluster.replica("a", passive_budget=2.0), await cluster.replica("b", passive_budget=2.0)
    cluster.rasa.down = True
    sent = [(a, "oWait1", "第一条"), (b, "oWait2", "你好"), (a, "oWait1", "第二条"), (b, "oWait1", "第三条"),
            (a, "oWait3", "电梯")]
    for replica, openid, text in sent:
        assert "已经收到" in (await replica.say(openid, text, next(ids)) or "")
    await a.service.drain()
    await b.service.drain()
    cluster.rasa.down = False
    cluster.rasa.delay = 0.05  # long enough for the two replicas' rounds to overlap
    answered = 0
    for _ in range(10):
        answered += sum(await asyncio.gather(a.service.retry_waiting(), b.service.retry_waiting()))
        if answered == len(sent):
            break
    assert answered == len(sent)
    assert [first_part(t) for t in cluster.texts_to("oWait1")] == ["收到：第一条", "收到：第二条", "收到：第三条"]
    assert [first_part(t) for t in cluster.texts_to("oWait2")] == ["收到：你好"]
    assert [first_part(t) for t in cluster.texts_to("oWait3")] == ["收到：电梯"]
    assert sorted(c.text for c in cluster.rasa.calls) == sorted(text for _, _, text in sent)  # each asked once
    assert cluster.rasa.tracker_reads == 0  # nobody stopped: nothing to look up
    assert await a.service.retry_waiting() == 0 and await b.service.retry_waiting() == 0


async def test_a_replica_killed_while_retrying_leaves_it_to_another_without_a_second_turn(cluster):
    a, b = await cluster.replica("a"), await cluster.replica("b")
    msg_id = next(ids)
    cluster.rasa.down = True
    await a.say("oRetryKill", "门禁卡坏了", msg_id)
    await a.service.drain()
    assert cluster.row(msg_id).status == "waiting"
    cluster.rasa.down = False
    cluster.rasa.held.add("门禁卡坏了")
    retry = asyncio.create_task(a.service.retry_waiting())
    call = await cluster.rasa.wait_for_call("门禁卡坏了")
    assert await b.service.retry_waiting() == 0  # A holds it
    await a.kill()  # A dies while Rasa answers
    with contextlib.suppress(asyncio.CancelledError):
        await retry
    cluster.rasa.release.set()
    await soon(call.finished.wait())
    cluster.rasa.held.clear()
    assert await b.service.retry_waiting() == 0  # A's lease is still live
    cluster.expire_leases()
    assert await b.service.retry_waiting() == 1
    assert [first_part(t) for t in cluster.texts_to("oRetryKill")] == ["收到：门禁卡坏了"]
    assert cluster.rasa.turns("oRetryKill") == ["门禁卡坏了"] and len(cluster.rasa.calls) == 1
    row = cluster.row(msg_id)
    assert (row.status, row.owner, row.takeovers) == ("answered", None, 1)


async def test_a_takeover_that_cannot_read_the_tracker_waits_and_its_retry_still_reads_it_first(cluster):
    a, b = await cluster.replica("a"), await cluster.replica("b")
    msg_id = next(ids)
    cluster.rasa.held.add("水费账单")
    await a.say("oOutage", "水费账单", msg_id)
    call = await cluster.rasa.wait_for_call("水费账单")
    await a.kill()
    cluster.rasa.release.set()
    await soon(call.finished.wait())  # the turn ran at Rasa
    cluster.rasa.held.clear()
    cluster.rasa.down = True  # and then Rasa went down
    cluster.expire_leases()
    assert await b.service.take_over_stalled() == 1
    assert ["已经收到" in t for t in cluster.texts_to("oOutage")] == [True]  # the holding answer
    row = cluster.row(msg_id)
    assert (row.status, row.owner, row.takeovers) == ("waiting", None, 1)
    cluster.rasa.down = False
    assert await b.service.retry_waiting() == 1
    # Rasa's memory was read first: the turn that ran is reused, not run again.
    assert len(cluster.rasa.calls) == 1 and cluster.rasa.turns("oOutage") == ["水费账单"]
    assert first_part(cluster.texts_to("oOutage")[-1]) == "收到：水费账单"
    assert len(cluster.texts_to("oOutage")) == 2


async def test_every_replica_s_retry_loop_sweeps_then_retries():
    from bot.app.gateway import _retry_loop

    class Service:
        def __init__(self) -> None:
            self.rounds: list[str] = []
            self.twice = asyncio.Event()

        async def take_over_stalled(self) -> int:
            self.rounds.append("sweep")
            raise RuntimeError("a bad round")  # the loop survives it, and still retries

        async def retry_waiting(self) -> int:
            self.rounds.append("retry")
            if self.rounds.count("retry") == 2:
                self.twice.set()
            return 0

    service = Service()
    loop = asyncio.create_task(_retry_loop(service, 0.01))  # type: ignore[arg-type]
    await soon(service.twice.wait())
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    assert service.rounds[:4] == ["sweep", "retry", "sweep", "retry"]


async def test_a_message_stalled_past_the_customer_service_window_is_marked_failed(cluster):
    a, b = await cluster.replica("a"), await cluster.replica("b")
    msg_id = next(ids)
    cluster.rasa.held.add("很久以前")
    cluster.rasa.complete_held = False
    await a.say("oOld", "很久以前", msg_id)
    call = await cluster.rasa.wait_for_call("很久以前")
    await a.kill()
    cluster.rasa.release.set()
    await soon(call.finished.wait())
    cluster.clock.advance(timedelta(hours=49))
    assert await b.service.take_over_stalled() == 0
    row = cluster.row(msg_id)
    assert (row.status, row.error, row.owner) == ("failed", "too old to answer", None)
    assert cluster.texts_to("oOld") == []


# --- reading Rasa's tracker ------------------------------------------------------------------------------


def test_the_answer_of_a_turn_is_the_bot_texts_up_to_the_next_user_event():
    events = [
        {"event": "user", "text": "旧", "metadata": {"dedupe_key": "msgid:1"}},
        {"event": "bot", "text": "旧答"},
        {"event": "user", "text": "新", "metadata": {"dedupe_key": "msgid:2"}},
        {"event": "action", "name": "utter_a"},
        {"event": "bot", "text": "第一句"},
        {"event": "bot", "text": None, "data": {"image": "x"}},
        {"event": "bot", "text": "第二句"},
        {"event": "user", "text": "后来", "metadata": {}},
        {"event": "bot", "text": "不算"},
    ]
    assert answers_after(events, "msgid:2") == ["第一句", "第二句"]
    assert answers_after(events, "msgid:1") == ["旧答"]
    assert answers_after(events, "msgid:3") is None
    assert answers_after(events[:3], "msgid:2") == []  # the turn ran; Rasa said nothing


# --- the migration ------------------------------------------------------------------------------------


def test_the_lease_columns_come_and_go_and_stored_messages_keep_theirs(database_url):
    from sqlalchemy import create_engine, inspect, text

    from bot.app import migrate

    def columns() -> set[str]:
        engine = create_engine(database_url)
        try:
            return {c["name"] for c in inspect(engine).get_columns("inbound_messages")}
        finally:
            engine.dispose()

    def run(statement: str) -> list[tuple]:
        engine = create_engine(database_url)
        try:
            with engine.begin() as connection:
                result = connection.execute(text(statement))
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()

    migrate.downgrade(database_url, "0012")
    assert not {"owner", "lease_until", "takeovers"} & columns()
    run("INSERT INTO inbound_messages (id, dedupe_key, openid, msg_type, content, received_at, status, attempts)"
        " VALUES (1, 'msgid:1', 'oOld', 'text', '你好', '2026-12-01 08:00:00', 'received', 0)")
    migrate.upgrade(database_url)
    assert {"owner", "lease_until", "takeovers"} <= columns()
    assert run("SELECT owner, lease_until, takeovers, content FROM inbound_messages") == [(None, None, 0, "你好")]
    # Stored before leases existed (a replica of the old code may be answering it): stalled once
    # it is a lease old, then taken over like any other.
    from bot.channels.wechat import inbound

    store = TicketStore(database_url)
    try:
        stored_at = datetime(2026, 12, 1, 8, 0)
        assert inbound.stalled_messages(store, stored_at + LEASE - timedelta(seconds=1), LEASE) == []
        assert inbound.stalled_messages(store, stored_at + LEASE + timedelta(seconds=1), LEASE) == [1]
    finally:
        store.dispose()
