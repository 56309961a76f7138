"""The WeChat channel's own tables: raw message logs and the shared access token.

They share the store's metadata (one schema, one migration history) but only this channel
reads or writes them.
"""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base


class InboundStatus(str, enum.Enum):
    RECEIVED = "received"  # stored, not yet answered
    ANSWERED = "answered"  # answered; the answer went out (passively or pushed), or is going out while `owner` is set
    WAITING = "waiting"  # the assistant was unreachable; retried in the background
    FAILED = "failed"  # gave up (too old to answer within WeChat's window)
    IGNORED = "ignored"  # nothing to answer (unsubscribe, ...)
    THROTTLED = "throttled"  # over the resident's rate limit: kept, not answered by the assistant


class InboundMessage(Base):
    """Every message and event WeChat delivered, stored before it is processed.

    Several gateway replicas share this table. The replica working on a message holds its
    lease (`owner`, `lease_until`, renewed while it works; both cleared when it is done); when
    a lease runs out, the replica is taken to have stopped and another one takes the message
    over (bot.channels.wechat.conversation says how, and why no answer goes out twice).
    """

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # MsgId for messages; FromUserName+CreateTime+Event for events (they have no MsgId).
    dedupe_key: Mapped[str] = mapped_column(String(160), nullable=False, unique=True)
    openid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    msg_type: Mapped[str] = mapped_column(String(32), nullable=False)
    event: Mapped[str | None] = mapped_column(String(32), nullable=True)
    content: Mapped[str] = mapped_column(Text, nullable=False, default="")
    media: Mapped[Any] = mapped_column(JSON, nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivery: Mapped[str | None] = mapped_column(String(16), nullable=True)  # passive / custom / none
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The replica (host:pid:random) working on this message, and until when it holds it.
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    # How often a replica took this message over from one that had stopped: above 0, the
    # assistant may already have had the message's turn (read from its tracker, not asked again).
    takeovers: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class OutboundMessage(Base):
    """Customer-service messages pushed to residents (客服消息): the record of each contact."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    inbound_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("inbound_messages.id"), nullable=True)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    # sending (recorded before the API call; left so if the sender stopped before it heard back) / sent / failed
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Scheduled notices: which case, how (custom / template), and a key that makes a
    # retried job skip a message that already went out. Answers' parts are keyed too
    # ("answer:<inbound id>:<attempt>:<part>"): one row, one send at most, whichever replica sends it.
    ticket_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("tickets.id"), nullable=True)
    via: Mapped[str | None] = mapped_column(String(16), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(160), nullable=True, unique=True)


class AccessToken(Base):
    """WeChat API access token shared by every gateway worker (one row per app)."""

    __tablename__ = "wechat_access_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str | None] = mapped_column(String(512), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # A worker that is fetching a new token holds this lease; the others wait for it.
    refreshing_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class SeenNonce(Base):
    """A push's timestamp and nonce, with a digest of its body: the replay guard's memory.

    In the database rather than in a process, so every gateway replica refuses what another
    one has already seen.
    """

    __tablename__ = "wechat_nonces"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)  # <timestamp>:<nonce>
    body_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    seen_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)
