"""Retention (issue 12, item 12): the daily housekeeping job also forgets the assistant's
conversation events and finished jobs' payloads past the project's retention period.

Rasa's SQL tracker store is played by a table with Rasa 3.6's `events` layout, on SQLite
and PostgreSQL; the e2e production test checks the same against a real Rasa.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from bot.assistant.tracker import SqlTrackerMemory
from bot.db import queue
from bot.db.models import Job
from bot.worker.handlers import Context, message_log_retention

NOW = datetime(2026, 11, 25, 19, 30)  # the housekeeping hour, naive UTC
OLD, RECENT = NOW - timedelta(days=200), NOW - timedelta(days=3)

RASA_EVENTS_DDL = {
    "sqlite": "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
              "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
              "action_name VARCHAR(255), data TEXT)",
    "postgresql": "CREATE TABLE events (id SERIAL PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
                  "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
                  "action_name VARCHAR(255), data TEXT)",
}


def epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=timezone.utc).timestamp()


@pytest.fixture
def tracker(store):  # type: ignore[no-untyped-def]
    """A Rasa-shaped tracker store in its own database (the ticket store's test database)."""
    memory = SqlTrackerMemory(store.url)
    with memory.engine.begin() as connection:
        connection.execute(text(RASA_EVENTS_DDL[memory.engine.dialect.name]))
        for sender, when, words in (("oTrack1", OLD, "厨房漏水 13812345678"), ("oTrack1", RECENT, "谢谢"),
                                    ("oTrack2", OLD, "电梯坏了"), ("oTrack2", RECENT, "好的")):
            data = json.dumps({"event": "user", "timestamp": epoch(when), "text": words}, ensure_ascii=False)
            connection.execute(text("INSERT INTO events (sender_id, type_name, timestamp, data) "
                                    "VALUES (:s, 'user', :t, :d)"), {"s": sender, "t": epoch(when), "d": data})
    yield memory
    memory.dispose()


def texts(events: list[dict]) -> list[str]:
    return [event["text"] for event in events]


async def test_tracker_events_past_retention_are_pruned_and_recent_ones_kept(tracker):
    assert await tracker.prune(NOW - timedelta(days=180)) == 2
    assert texts(await tracker.export("oTrack1")) == ["谢谢"]
    assert texts(await tracker.export("oTrack2")) == ["好的"]


async def test_erasing_a_sender_forgets_only_their_conversation(tracker):
    assert await tracker.erase("oTrack1") == 2
    assert await tracker.export("oTrack1") == []
    assert texts(await tracker.export("oTrack2")) == ["电梯坏了", "好的"]


async def test_no_events_table_yet_means_nothing_to_do(sqlite_url):
    memory = SqlTrackerMemory(sqlite_url)  # Rasa has not started on this database yet
    try:
        assert (await memory.prune(NOW), await memory.erase("oX"), await memory.export("oX")) == (0, 0, [])
    finally:
        memory.dispose()


class NoChannelLogs:
    async def purge_raw_logs(self, before: datetime) -> dict[str, int]:
        return {}


def add_job(session, project: str, key: str, status: str, updated: datetime,  # type: ignore[no-untyped-def]
            payload: dict) -> None:
    session.add(Job(project=project, kind=queue.RESIDENT_MESSAGE, payload=payload, due_at=updated, status=status, attempts=1,
                    max_attempts=6, idempotency_key=key, created_at=updated, updated_at=updated,
                    last_error="WeChat said no" if status == "parked" else None))


async def test_housekeeping_prunes_conversations_and_old_job_payloads(store, rules, company, tracker):
    words = {"text": "师傅明天上午到，电话13812345678", "openid": "oTrack1"}
    with store.transaction() as session:
        add_job(session, rules.code, "old-done", "done", OLD, words)
        add_job(session, rules.code, "old-parked", "parked", OLD, words)
        add_job(session, rules.code, "recent-done", "done", RECENT, words)
        add_job(session, rules.code, "old-but-pending", "pending", OLD, words)  # still to run: keeps what it needs
    ctx = Context(store, company, NoChannelLogs(), assistant=None, memory=tracker)  # type: ignore[arg-type]
    await message_log_retention(ctx, None, NOW)  # type: ignore[arg-type]
    with store.transaction() as session:
        jobs = {j.idempotency_key: (j.status, j.payload, j.last_error) for j in session.execute(select(Job)).scalars()}
    assert jobs == {"old-done": ("done", {}, None), "old-parked": ("cancelled", {}, None),
                    "recent-done": ("done", words, None), "old-but-pending": ("pending", words, None)}
    assert texts(await tracker.export("oTrack1")) == ["谢谢"]
