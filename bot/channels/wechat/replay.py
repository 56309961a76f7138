"""The replay guard: a signed query string may carry one body, once.

In plaintext mode WeChat's signature covers only token, timestamp and nonce, not the body,
so an old signed query could carry any body as any openid. Every push's timestamp and
nonce are remembered (in the store, shared by every gateway replica) with a digest of
its body: the same nonce with another body is refused. A byte-identical repeat is
WeChat's own redelivery and goes on to the inbound log, which answers it once.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete
from sqlalchemy.engine import CursorResult

from bot.channels.wechat.models import SeenNonce
from bot.db.store import TicketStore
from bot.db.upsert import insert_once


def remember_push(store: TicketStore, *, timestamp: str, nonce: str, body: bytes, now: datetime) -> bool:
    """True when the push may be processed: a new nonce, or a byte-identical redelivery."""
    digest = hashlib.sha256(body).hexdigest()
    key = f"{timestamp}:{nonce}"[:100]
    with store.transaction() as session:
        if insert_once(session, SeenNonce, "key", dict(key=key, body_sha256=digest, seen_at=now)):
            return True
        seen = session.get(SeenNonce, key)
        return seen is not None and hmac.compare_digest(seen.body_sha256, digest)


def forget_before(store: TicketStore, before: datetime) -> int:
    """Drop nonces older than `before` (the timestamp window refuses those pushes anyway)."""
    with store.transaction() as session:
        result = cast("CursorResult[Any]", session.execute(
            delete(SeenNonce).where(SeenNonce.seen_at < before).execution_options(synchronize_session=False)))
        return result.rowcount or 0
