"""End to end on the production path: tickets and Rasa's tracker store in PostgreSQL,
Rasa's lock store in Redis, with the endpoints file production uses
(docker/endpoints.prod.yml).

Needs PostgreSQL (TEST_POSTGRES_URL) and Redis (TEST_REDIS_URL, default
redis://127.0.0.1:6379); skipped on a machine without them, a failure in CI.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.app import migrate
from bot.app.model_cache import ensure_model
from bot.app.stack import start_action_server, start_rasa, wait_until_healthy
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT
from tests.fixtures import REDIS_TEST_URL, _create_postgres_database, _drop_postgres_database
from tests.live import LiveStack, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

@pytest.fixture(scope="module")
def redis_client(redis_server: str):  # type: ignore[no-untyped-def]
    """A client of the Redis test server (reachability is checked by `redis_server`)."""
    import redis

    client = redis.Redis.from_url(redis_server, socket_connect_timeout=3)
    yield client
    client.close()


@pytest.fixture(scope="module")
def production_stack(postgres_server: str, redis_client, tmp_path_factory) -> Iterator[tuple[LiveStack, str]]:
    workdir: Path = tmp_path_factory.mktemp("prod")
    tickets_db, tickets_url = _create_postgres_database(postgres_server)
    tracker_db, tracker_url = _create_postgres_database(postgres_server)
    migrate.upgrade(tickets_url)
    tracker = make_url(tracker_url)
    redis_url = urlparse(REDIS_TEST_URL)
    action_port, rasa_port = free_port(), free_port()
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        RASA_AUTH_TOKEN="e2e-production-rasa-token",
        DATABASE_URL=tickets_url,
        ACTION_ENDPOINT_URL=f"http://127.0.0.1:{action_port}/webhook",
        TRACKER_DB_HOST=tracker.host or "127.0.0.1",
        TRACKER_DB_PORT=str(tracker.port or 5432),
        TRACKER_DB_NAME=tracker.database,
        TRACKER_DB_USER=tracker.username or "postgres",
        TRACKER_DB_PASSWORD=tracker.password or "",
        REDIS_HOST=redis_url.hostname or "127.0.0.1",
        REDIS_PORT=str(redis_url.port or 6379),
        REDIS_LOCK_DB=redis_url.path.strip("/") or "0",
    )
    actions = start_action_server(action_port, env, workdir / "log")
    rasa = start_rasa(ensure_model(), rasa_port, PROJECT_ROOT / "docker" / "endpoints.prod.yml", env,
                      workdir / "log")
    store = TicketStore(tickets_url)
    try:
        wait_until_healthy(actions, timeout=120)
        wait_until_healthy(rasa, timeout=300)
        yield LiveStack(rasa_port, store, actions, rasa_token=env["RASA_AUTH_TOKEN"], rasa=rasa), tracker_url
    finally:
        rasa.stop()
        actions.stop()
        store.dispose()
        _drop_postgres_database(postgres_server, tickets_db)
        _drop_postgres_database(postgres_server, tracker_db)


def test_repair_conversation_on_postgres_and_redis(production_stack, redis_client):
    stack, tracker_url = production_stack
    sender = "oProdRepair0001"
    commands_before = int(redis_client.info("stats")["total_commands_processed"])
    assert "房号" in " ".join(stack.say(sender, "厨房水龙头坏了，一直滴水"))
    assert "什么时候上门" in " ".join(stack.say(sender, "A座1803"))
    [confirmation] = stack.say(sender, "今天下午")
    [ticket] = stack.tickets_of(sender)
    assert ticket.number in confirmation and ticket.room == "A座1803" and ticket.visit_time == "今天下午"
    # Rasa kept the conversation in PostgreSQL ...
    engine = create_engine(tracker_url, future=True)
    with engine.connect() as connection:
        user_turns = connection.execute(
            text("SELECT count(*) FROM events WHERE sender_id = :s AND type_name = 'user'"), {"s": sender}
        ).scalar_one()
    engine.dispose()
    assert user_turns == 3
    # ... and took its conversation lock in Redis for every message.
    assert int(redis_client.info("stats")["total_commands_processed"]) - commands_before >= 3


async def test_retention_and_erasure_reach_rasas_postgres_tracker(production_stack):
    """The worker's retention and a resident's erasure delete in the tracker store Rasa really
    wrote, and Rasa then finds nothing of what was deleted."""
    import asyncio
    import json
    import urllib.request

    from bot.assistant.tracker import SqlTrackerMemory
    from bot.core.clock import utcnow

    stack, tracker_url = production_stack
    old, kept = "oProdForgetOld01", "oProdForgetKept1"
    await asyncio.to_thread(stack.say, old, "你好")
    between = utcnow()
    await asyncio.to_thread(stack.say, kept, "你好")
    memory = SqlTrackerMemory(tracker_url)
    try:
        assert await memory.prune(between) >= 1  # every event of the first conversation is older
        assert await memory.export(old) == []
        assert [e["text"] for e in await memory.export(kept) if e["event"] == "user"] == ["你好"]
        url = f"{stack.rasa_url}/conversations/{old}/tracker?token={stack.rasa_token}"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert [e for e in json.loads(response.read())["events"] if e["event"] == "user"] == []
        assert await memory.erase(kept) >= 1
        assert await memory.export(kept) == []
    finally:
        memory.dispose()
