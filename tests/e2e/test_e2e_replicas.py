"""End to end with replicas: two Rasa processes, two action servers and two gateways behind the
real HAProxy, started and restarted by `make run`'s own code (bot.app.stack, bot.app.balancer,
bot.app.supervisor) on free loopback ports.

Residents talk through the gateway as WeChat's servers would (signed, AES-encrypted pushes
with `?openid=` in the URL); each Rasa replica's in-memory tracker store is then read on the
replica's own port, bypassing HAProxy, to see where each resident's turns were taken.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import select

from bot.app import balancer, migrate
from bot.app.balancer import Shape
from bot.app.model_cache import ensure_model
from bot.app.stack import prepare_balancer, stack_children, write_endpoints
from bot.app.supervisor import Policy, Supervisor
from bot.channels.wechat.models import InboundMessage
from bot.channels.wechat.simulate import read_reply, signed_push, text_xml
from bot.db.models import Resident, Ticket
from bot.db.store import TicketStore
from bot.settings import DEVELOPMENT_VALUES, Settings
from tests.live import free_port, record_replies

pytestmark = pytest.mark.e2e

KEYS = dict(token=DEVELOPMENT_VALUES["WECHAT_TOKEN"], app_id=DEVELOPMENT_VALUES["WECHAT_APP_ID"],
            aes_key=DEVELOPMENT_VALUES["WECHAT_ENCODING_AES_KEY"], safe_mode=True)
REPAIR = ["我要报修", "客厅的灯不亮了", "3栋2单元501", "明天上午"]
# A replica out of the rotation, and its residents answered by the other, within these.
FAILOVER_ANSWER_S = 5.0
HEALTH_CHECK_DOWN_S = 3.0


@dataclass
class Replicas:
    settings: Settings
    shape: Shape
    supervisor: Supervisor
    store: TicketStore
    token: str
    stats_socket: Path

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    def say(self, openid: str, text: str, timeout: float = 90) -> tuple[float, str | None]:
        """One push, as WeChat sends it; (seconds until the passive reply, its text)."""
        query, body = signed_push(text_xml(openid, text), **KEYS)  # type: ignore[arg-type]
        request = urllib.request.Request(f"{self.gateway}/wechat?{urllib.parse.urlencode(query)}", data=body,
                                         headers={"Content-Type": "text/xml"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read().decode("utf-8")
        elapsed = time.perf_counter() - started
        reply = read_reply(raw, query, **KEYS)  # type: ignore[arg-type]
        record_replies([reply or ""])
        return elapsed, reply

    def events(self, replica: int, sender: str) -> list[dict[str, Any]]:
        """The tracker of `sender` on Rasa replica `replica` (0, 1), read on its own port."""
        port = self.shape.rasa[replica]
        query = urllib.parse.urlencode({"token": self.token, "include_events": "ALL"})
        url = f"http://127.0.0.1:{port}/conversations/{urllib.parse.quote(sender, safe='')}/tracker?{query}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return list(json.loads(response.read()).get("events") or [])

    def user_texts(self, replica: int, sender: str) -> list[str]:
        return [e.get("text") or "" for e in self.events(replica, sender) if e["event"] == "user"]

    def replicas_of(self, sender: str) -> list[int]:
        """The Rasa replicas whose tracker holds a message of `sender`."""
        return [r for r in range(len(self.shape.rasa)) if self.user_texts(r, sender)]

    def rasa_states(self) -> dict[str, str]:
        return {server: state for (backend, server), state in balancer.server_states(self.stats_socket).items()
                if backend == "rasa"}

    def tickets_of(self, openid: str) -> list[Ticket]:
        with self.store.transaction() as session:
            return list(session.execute(select(Ticket).join(Resident).where(Resident.openid == openid)
                                        .order_by(Ticket.id)).scalars().all())

    def inbound_texts(self, openid: str) -> list[str]:
        with self.store.transaction() as session:
            return list(session.execute(select(InboundMessage.content).where(InboundMessage.openid == openid)
                                        .order_by(InboundMessage.id)).scalars().all())


def until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Seconds until `condition` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(interval)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    if not shutil.which("haproxy"):
        pytest.fail("haproxy is not installed: run scripts/ensure-haproxy.sh (make test does)")
    workdir = tmp_path_factory.mktemp("replicas")
    database_url = f"sqlite:///{workdir / 'tickets.db'}"
    migrate.upgrade(database_url)
    model = ensure_model()
    settings = Settings(database_url=database_url, rasa_port=free_port(), action_port=free_port(),
                        gateway_port=free_port(), staff_port=free_port())
    shape = Shape(rasa=(free_port(), free_port()), actions=(free_port(), free_port()),
                  gateways=((free_port(), free_port()), (free_port(), free_port())), workers=0)
    token = f"e2e-rasa-{secrets.token_hex(8)}"
    env = dict(os.environ, **dict(DEVELOPMENT_VALUES, RASA_AUTH_TOKEN=token), DATABASE_URL=database_url,
               PYTHONUNBUFFERED="1", RASA_URL=f"http://127.0.0.1:{settings.rasa_port}",
               ACTION_SERVER_URL=f"http://127.0.0.1:{settings.action_port}",
               WECHAT_API_BASE_URL=f"http://127.0.0.1:{settings.gateway_port}/dev/wechat-api",
               WECHAT_ALLOW_PLAINTEXT="1",
               PASSIVE_REPLY_BUDGET="60")  # every answer in the push's HTTP response, however loaded the machine
    endpoints = write_endpoints(workdir / "endpoints.yml", settings.action_port)
    config = prepare_balancer(settings, shape, env, workdir / "run")
    assert config is not None
    children = stack_children(settings, env, model, endpoints, workdir / "log", shape, config)
    assert [c.name for c in children] == ["haproxy", "actions-1", "actions-2", "rasa-1", "rasa-2",
                                          "gateway-1", "gateway-2"]
    policy = Policy(initial_delay=0.5, max_delay=2, start_timeout=600, max_restarts=3, stop_timeout=15)
    supervisor = Supervisor(children, policy)
    store = TicketStore(database_url)
    thread = threading.Thread(target=supervisor.run, name="supervisor", daemon=True)
    try:
        supervisor.start()
        supervisor.wait_started(timeout=policy.start_timeout)
        thread.start()
        stack = Replicas(settings, shape, supervisor, store, token, workdir / "run" / "haproxy.sock")
        until(lambda: set(stack.rasa_states().values()) == {"UP"}, 10, "HAProxy sees both Rasa replicas")
        yield stack
    finally:
        supervisor.halt()
        if thread.is_alive():
            thread.join(timeout=30)
        supervisor.stop()
        store.dispose()


# Residents whose openids hash to both replicas (consistent hashing is deterministic).
RESIDENTS = [f"oReplicaResident{n:04d}" for n in range(8)]


def test_each_residents_turns_all_land_on_one_rasa_replica(replicas: Replicas):
    def talk(openid: str) -> None:
        for text in ("你好", "物业费一个月多少钱一平米", "你好"):
            _, reply = replicas.say(openid, text)
            assert reply

    with ThreadPoolExecutor(len(RESIDENTS)) as pool:
        list(pool.map(talk, RESIDENTS))
    placed = {openid: replicas.replicas_of(openid) for openid in RESIDENTS}
    assert all(len(found) == 1 for found in placed.values()), placed
    for openid, [replica] in placed.items():
        assert replicas.user_texts(replica, openid) == ["你好", "物业费一个月多少钱一平米", "你好"]
    assert {replica for [replica] in placed.values()} == {0, 1}, "both replicas take residents"


def test_parallel_repair_conversations_each_get_their_ticket(replicas: Replicas):
    residents = [f"oReplicaRepair{n:04d}" for n in range(6)]

    def repair(openid: str) -> str:
        reply = None
        for text in REPAIR:
            _, reply = replicas.say(openid, text)
        assert reply is not None
        return reply

    with ThreadPoolExecutor(len(residents)) as pool:
        confirmations = list(pool.map(repair, residents))
    for openid, confirmation in zip(residents, confirmations):
        [ticket] = replicas.tickets_of(openid)
        assert ticket.number.startswith("BX") and ticket.number in confirmation
        assert (ticket.room, ticket.visit_time, ticket.description) == ("3栋2单元501", "明天上午", "客厅的灯不亮了")
        assert len(replicas.replicas_of(openid)) == 1


def test_a_burst_from_one_resident_is_taken_one_message_at_a_time_in_order(replicas: Replicas):
    """Five messages, sent 0.3 s apart from five threads, none waiting for an answer (a turn takes
    longer than that here, so they queue). In order and never concurrently means, on the one
    replica that holds the resident's tracker:
    - its user events are the five texts in the order they were sent (and as the gateway
      stored them), each once;
    - between two user events the bot's whole turn for the first one is there, ending with
      `action_listen`, and no event of it is later than the next user event;
    - what the gateway answered to each push is what the bot said in that push's own turn.
    The messages are a whole repair, so taking them out of order would also leave no ticket."""
    openid = "oReplicaBurst0001"
    texts = [*REPAIR, "查询进度"]
    replies: dict[int, str | None] = {}

    def send(index: int, start: float) -> None:
        time.sleep(max(0.0, start + 0.3 * index - time.perf_counter()))
        replies[index] = replicas.say(openid, texts[index])[1]

    start = time.perf_counter() + 0.2
    with ThreadPoolExecutor(len(texts)) as pool:
        list(pool.map(lambda i: send(i, start), range(len(texts))))
    [replica] = replicas.replicas_of(openid)
    events = replicas.events(replica, openid)
    users = [i for i, e in enumerate(events) if e["event"] == "user"]
    assert [events[i]["text"] for i in users] == texts == replicas.inbound_texts(openid)
    for turn, (here, following) in enumerate(zip(users, [*users[1:], len(events)])):
        between = events[here + 1:following]
        actions = [e.get("name") for e in between if e["event"] == "action"]
        assert actions and actions[-1] == "action_listen", (turn, actions)
        if following < len(events):
            assert all(e["timestamp"] <= events[following]["timestamp"] for e in between)
        said = [e.get("text") or "" for e in between if e["event"] == "bot"]
        reply = replies[turn] or ""
        assert said and all(text in reply for text in said), (turn, said, reply)
    [ticket] = replicas.tickets_of(openid)
    assert ticket.number in (replies[3] or "") and ticket.number in (replies[4] or "")


def test_a_killed_rasa_replicas_residents_are_answered_by_the_other_at_once(replicas: Replicas):
    # New residents: some on each replica.
    candidates = [f"oReplicaFailover{n:04d}" for n in range(8)]
    for openid in candidates:
        assert replicas.say(openid, "你好")[1]
    on_first = [o for o in candidates if replicas.replicas_of(o) == [0]]
    on_second = [o for o in candidates if replicas.replicas_of(o) == [1]]
    assert on_first and on_second
    service = replicas.supervisor.service("rasa-1")
    assert service is not None
    marked_down: list[float] = []

    def watch() -> None:  # when HAProxy's health check takes it out of the rotation
        while time.monotonic() - killed < 30:
            if replicas.rasa_states().get("rasa1") == "DOWN":
                marked_down.append(time.monotonic() - killed)
                return
            time.sleep(0.05)

    service.process.kill()  # kill -9
    # Gone (its sockets closed). A turn in flight at the moment of the kill is not retried by
    # HAProxy (it reached the replica); the gateway keeps it waiting and answers it later.
    service.process.wait()
    killed = time.monotonic()
    watcher = threading.Thread(target=watch)
    watcher.start()
    # Its residents' next messages, the first one at once (HAProxy still has it UP: the refused
    # connection is retried on the other replica): answered by the other replica, within seconds.
    for openid in on_first:
        elapsed, reply = replicas.say(openid, "我要报修")
        assert reply and "哪里坏了" in reply
        assert elapsed <= FAILOVER_ANSWER_S, f"answered {elapsed:.1f} s after the kill"
        assert "我要报修" in replicas.user_texts(1, openid)
    # The others never noticed.
    for openid in on_second:
        elapsed, reply = replicas.say(openid, "我要报修")
        assert reply and "哪里坏了" in reply and replicas.user_texts(1, openid) == ["你好", "我要报修"]
    watcher.join()
    assert marked_down and marked_down[0] <= HEALTH_CHECK_DOWN_S, marked_down
    # The supervisor restarts it, and HAProxy takes it back once it has loaded its model: the
    # fault test (tests/e2e/test_e2e_faults.py) waits for that under load, not this module.
    assert replicas.supervisor.service("rasa-1") is not None
