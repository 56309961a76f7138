"""Short-lived shared counters: sliding-window hit counts and once-per-window flags.

Two implementations of one small interface: in this process's memory (one gateway, the
embedded default) and in Redis (several gateway replicas share what a resident has sent).
Keys are hashed before they are stored, so Redis never holds an openid.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from collections import deque
from typing import Callable, Protocol


def hashed(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


class WindowCounters(Protocol):
    async def hit(self, key: str, window_seconds: float) -> int:
        """Count one hit on `key`; the hits within the last `window_seconds`, this one included."""

    async def first_in_window(self, key: str, window_seconds: float) -> bool:
        """True for the first call on `key` in a window, False for the others until it ends."""


class MemoryCounters:
    """One process's counters. Bounded: idle keys are dropped once `max_keys` are held."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 50_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._flags: dict[str, float] = {}  # key -> when its window ends

    async def hit(self, key: str, window_seconds: float) -> int:
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._forget_idle(now, window_seconds)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - window_seconds:
            hits.popleft()
        hits.append(now)
        return len(hits)

    async def first_in_window(self, key: str, window_seconds: float) -> bool:
        now = self.clock()
        if self._flags.get(key, 0.0) > now:
            return False
        if len(self._flags) >= self.max_keys:
            self._flags = {k: until for k, until in self._flags.items() if until > now}
        self._flags[key] = now + window_seconds
        return True

    def _forget_idle(self, now: float, window_seconds: float) -> None:
        self._hits = {k: hits for k, hits in self._hits.items() if hits and hits[-1] > now - window_seconds}


class RedisCounters:
    """Counters every replica shares: a sorted set of hit times per key, a SET NX EX flag."""

    def __init__(self, redis_url: str, prefix: str = "wuye:") -> None:
        import redis.asyncio as redis  # only the production path needs the client

        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self.prefix = prefix

    async def hit(self, key: str, window_seconds: float) -> int:
        name = f"{self.prefix}hits:{hashed(key)}"
        now = time.time()  # wall clock: replicas on several machines compare the same times
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, 0, now - window_seconds)
            pipe.zadd(name, {f"{now:.6f}:{uuid.uuid4().hex[:8]}": now})
            pipe.zcard(name)
            pipe.expire(name, max(1, int(window_seconds) + 1))
            results = await pipe.execute()
        return int(results[2])

    async def first_in_window(self, key: str, window_seconds: float) -> bool:
        name = f"{self.prefix}flag:{hashed(key)}"
        return bool(await self.client.set(name, "1", nx=True, ex=max(1, int(window_seconds))))

    async def close(self) -> None:
        await self.client.aclose()
