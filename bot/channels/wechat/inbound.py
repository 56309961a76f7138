"""The inbound log: every WeChat message is stored before it is processed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence, cast

from sqlalchemy import delete, or_, select
from sqlalchemy.engine import CursorResult

from bot.channels.wechat.models import InboundMessage, InboundStatus, OutboundMessage
from bot.core.clock import utcnow
from bot.db.records import require
from bot.db.store import TicketStore
from bot.db.upsert import insert_once


@dataclass(frozen=True)
class Stored:
    id: int
    created: bool  # False: WeChat delivered this one before


def record_inbound(store: TicketStore, *, dedupe_key: str, openid: str, msg_type: str, event: str | None,
                   content: str, media: dict[str, Any] | None, now: datetime | None = None,
                   status: InboundStatus = InboundStatus.RECEIVED, reply: str | None = None) -> Stored:
    """Insert once; a redelivery finds the first row (unique dedupe_key). A message that is
    final on arrival (throttled) is stored with its status and answer at once."""
    now = now or utcnow()
    final = status is not InboundStatus.RECEIVED
    with store.transaction() as session:
        created = insert_once(session, InboundMessage, "dedupe_key", dict(
            dedupe_key=dedupe_key, openid=openid, msg_type=msg_type, event=event, content=content,
            media=media, received_at=now, status=status.value, attempts=0, reply=reply,
            delivery=("passive" if reply else "none") if final else None, processed_at=now if final else None))
        row_id = session.execute(select(InboundMessage.id).where(InboundMessage.dedupe_key == dedupe_key)).scalar_one()
    return Stored(row_id, created)


def finish_inbound(store: TicketStore, inbound_id: int, *, status: InboundStatus, reply: str | None,
                   delivery: str | None, error: str | None = None) -> None:
    with store.transaction() as session:
        row = require(session, InboundMessage, inbound_id)
        row.status = status.value
        row.reply = reply
        row.delivery = delivery
        row.error = error
        row.attempts += 1
        row.processed_at = utcnow()


def inbound_status(store: TicketStore, inbound_id: int) -> str:
    with store.transaction() as session:
        row = require(session, InboundMessage, inbound_id)
        return row.status


def waiting_messages(store: TicketStore, limit: int = 100) -> Sequence[InboundMessage]:
    """Messages that could not reach the assistant, oldest first."""
    with store.transaction() as session:
        return session.execute(
            select(InboundMessage).where(InboundMessage.status == InboundStatus.WAITING.value)
            .order_by(InboundMessage.id).limit(limit)
        ).scalars().all()


def record_outbound(store: TicketStore, *, openid: str, inbound_id: int | None, content: str, status: str,
                    error: str | None = None) -> None:
    with store.transaction() as session:
        session.add(OutboundMessage(openid=openid, inbound_id=inbound_id, content=content, created_at=utcnow(),
                                    status=status, error=error))


def purge_logs(store: TicketStore, before: datetime) -> tuple[int, int]:
    """Delete raw message logs older than `before`: (inbound, outbound) rows removed."""
    with store.transaction() as session:
        # Session.execute() is typed as returning Result; for these DELETEs it is a CursorResult.
        outbound = cast("CursorResult[Any]", session.execute(
            delete(OutboundMessage).where(OutboundMessage.created_at < before)
            .execution_options(synchronize_session=False))).rowcount
        old_inbound = select(InboundMessage.id).where(InboundMessage.received_at < before)
        # Outbound rows may point at inbound ones; keep the inbound row while any newer push refers to it.
        referenced = select(OutboundMessage.inbound_id).where(OutboundMessage.inbound_id.is_not(None))
        inbound = cast("CursorResult[Any]", session.execute(
            delete(InboundMessage).where(InboundMessage.id.in_(old_inbound), InboundMessage.id.not_in(referenced))
            .execution_options(synchronize_session=False))).rowcount
        return inbound or 0, outbound or 0


def _row(row: InboundMessage | OutboundMessage, columns: tuple[str, ...]) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in columns}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def logs_of(store: TicketStore, openid: str) -> dict[str, list[dict[str, Any]]]:
    """This resident's raw messages, both ways, oldest first."""
    with store.transaction() as session:
        received = session.execute(select(InboundMessage).where(InboundMessage.openid == openid)
                                   .order_by(InboundMessage.id)).scalars().all()
        sent = session.execute(select(OutboundMessage).where(OutboundMessage.openid == openid)
                               .order_by(OutboundMessage.id)).scalars().all()
        return {
            "received": [_row(r, ("received_at", "msg_type", "event", "content", "media", "status", "reply"))
                         for r in received],
            "sent": [_row(r, ("created_at", "content", "status", "via")) for r in sent],
        }


def erase_logs_of(store: TicketStore, openid: str) -> tuple[int, int]:
    """Delete this resident's raw messages: (inbound, outbound) rows removed."""
    with store.transaction() as session:
        mine = select(InboundMessage.id).where(InboundMessage.openid == openid)
        # Outbound rows of this resident go first; they may point at the inbound ones.
        outbound = cast("CursorResult[Any]", session.execute(
            delete(OutboundMessage).where(or_(OutboundMessage.openid == openid, OutboundMessage.inbound_id.in_(mine)))
            .execution_options(synchronize_session=False))).rowcount
        inbound = cast("CursorResult[Any]", session.execute(
            delete(InboundMessage).where(InboundMessage.openid == openid)
            .execution_options(synchronize_session=False))).rowcount
        return inbound or 0, outbound or 0
