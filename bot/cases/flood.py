"""Flood control per resident: a rate limit, and one message in flight at a time.

Anyone holding an openid could otherwise make every message cost an assistant call and
several writes, and slow every other resident down. Beyond the project's limit a message
is still stored by the channel, but the assistant is not asked: the resident is told once
per window to wait, and the rest of the window is quiet.

One message in flight per resident also keeps a resident's answers in the order the
messages were sent: the next waits its turn (asyncio locks wake waiters first-come
first-served).
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import AsyncIterator

from bot.core.privacy import mask_openid
from bot.core.rules import FloodRules
from bot.db.counters import WindowCounters

log = logging.getLogger(__name__)


class Admission(str, enum.Enum):
    ADMITTED = "admitted"
    TOLD_TO_WAIT = "told_to_wait"  # the first message over the limit: one polite answer
    HELD = "held"  # further ones in the same window: stored, not answered


class FloodGuard:
    def __init__(self, counters: WindowCounters, rules: FloodRules) -> None:
        self.counters = counters
        self.rules = rules
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    async def admit(self, openid: str) -> Admission:
        window = self.rules.window_seconds
        try:
            hits = await self.counters.hit(f"resident:{openid}", window)
            if hits <= self.rules.max_messages:
                return Admission.ADMITTED
            first = await self.counters.first_in_window(f"told:{openid}", window)
        except Exception as exc:  # noqa: BLE001 - a down Redis must not silence residents
            log.warning("flood counters unavailable (%s): admitting %s", exc.__class__.__name__, mask_openid(openid))
            return Admission.ADMITTED
        log.info("%s sent more than %d messages in %d s: %s", mask_openid(openid), self.rules.max_messages, window,
                 "asked to wait" if first else "held")
        return Admission.TOLD_TO_WAIT if first else Admission.HELD

    @contextlib.asynccontextmanager
    async def turn(self, openid: str) -> AsyncIterator[None]:
        """Hold this resident's one slot while their message is answered."""
        lock, users = self._turns.get(openid) or (asyncio.Lock(), 0)
        self._turns[openid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[openid]
            if users <= 1:
                del self._turns[openid]  # nobody waiting: forget the resident
            else:
                self._turns[openid] = (lock, users - 1)

    def waiting(self, openid: str) -> int:
        """Messages of this resident being answered or waiting their turn (for tests and metrics)."""
        return self._turns.get(openid, (None, 0))[1]
