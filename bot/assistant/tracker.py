"""Rasa's memory of residents' conversations, behind `bot.cases.ports.ConversationMemory`.

Rasa's SQL tracker store (PostgreSQL in production, SQLite possible) keeps every event of
every conversation in one `events` table (sender_id, type_name, timestamp as Unix seconds,
data as JSON text). We read and delete there directly: Rasa's HTTP API can replace a
tracker's events but never deletes stored ones. The embedded in-memory tracker store lives
only as long as the Rasa process; there the HTTP API is the way in (export, erase).
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import aiohttp
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, delete, inspect, select
from sqlalchemy.engine import CursorResult, Engine

from bot.assistant.client import check_status, sender_headers

log = logging.getLogger(__name__)

_metadata = MetaData()
# Rasa 3.6's SQLTrackerStore.SQLEvent, the columns we use (Rasa owns and creates the table).
EVENTS = Table(
    "events", _metadata,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("data", Text),
)


def _epoch(moment: datetime) -> float:
    """Our datetimes are naive UTC; Rasa's timestamps are Unix seconds."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.timestamp()


class SqlTrackerMemory:
    """Rasa's SQL tracker store, reached with its own database URL (TRACKER_STORE_URL)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True, hide_parameters=True, pool_pre_ping=True)

    def _has_events(self) -> bool:
        # Rasa creates the table on its first start; before that there is nothing to do.
        return inspect(self.engine).has_table("events")

    def _delete(self, condition: Any) -> int:
        if not self._has_events():
            return 0
        with self.engine.begin() as connection:
            result: CursorResult[Any] = connection.execute(delete(EVENTS).where(condition))
            return result.rowcount or 0

    async def prune(self, before: datetime) -> int:
        return await asyncio.to_thread(self._delete, EVENTS.c.timestamp < _epoch(before))

    async def erase(self, sender: str) -> int:
        return await asyncio.to_thread(self._delete, EVENTS.c.sender_id == sender)

    async def export(self, sender: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            if not self._has_events():
                return []
            with self.engine.connect() as connection:
                rows = connection.execute(select(EVENTS.c.data).where(EVENTS.c.sender_id == sender)
                                          .order_by(EVENTS.c.id)).scalars().all()
            return [json.loads(row) for row in rows if row]

        return await asyncio.to_thread(read)

    def dispose(self) -> None:
        self.engine.dispose()


class RasaApiMemory:
    """The in-memory tracker store of a running Rasa, through its (token-protected) HTTP API."""

    def __init__(self, http: aiohttp.ClientSession, rasa_url: str, auth_token: str) -> None:
        self.http = http
        self.rasa_url = rasa_url.rstrip("/")
        # Rasa takes its token from the query string only; errors below never quote the URL.
        self.params = {"token": auth_token}
        self.timeout = aiohttp.ClientTimeout(total=30)

    def _tracker_url(self, sender: str) -> str:
        return f"{self.rasa_url}/conversations/{quote(sender, safe='')}/tracker"

    async def prune(self, before: datetime) -> int:
        # Nothing outlives the Rasa process in the in-memory store; a restart forgets it all.
        log.info("tracker store is Rasa's in-memory one: nothing persistent to prune")
        return 0

    async def export(self, sender: str) -> list[dict[str, Any]]:
        async with self.http.get(self._tracker_url(sender), params={**self.params, "include_events": "ALL"},
                                 headers=sender_headers(sender), timeout=self.timeout) as response:
            check_status(response.status)
            tracker = await response.json()
        return list(tracker.get("events") or [])

    async def erase(self, sender: str) -> int:
        held = len(await self.export(sender))
        async with self.http.put(f"{self._tracker_url(sender)}/events", json=[], params=self.params,
                                 headers=sender_headers(sender), timeout=self.timeout) as response:
            check_status(response.status)
        return held
