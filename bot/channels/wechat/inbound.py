"""The inbound log: every WeChat message is stored before it is processed, with the lease of
the replica answering it; and the record of what went out (one row per part of an answer,
written before the part is sent)."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence, cast

from sqlalchemy import and_, case, delete, or_, select, update
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


@dataclass(frozen=True)
class Claimed:
    """A message this replica has just taken the lease of (over from a stopped replica, or to retry)."""

    id: int
    dedupe_key: str
    openid: str
    msg_type: str
    event: str | None
    content: str
    media: dict[str, Any] | None
    received_at: datetime
    status: str
    reply: str | None  # recorded before delivery began: the answer, decided already
    delivery: str | None  # passive: its first part went back in an HTTP response
    attempts: int
    takeovers: int  # above 0: the assistant may already have had this message's turn


class PartStep(str, enum.Enum):
    SEND = "send"  # recorded as sending: this replica sends it now
    DONE = "done"  # already sent, or its send began and never reported back: not sent again
    LOST = "lost"  # the message's lease is no longer this replica's: send nothing more


def _claimed(row: InboundMessage) -> Claimed:
    return Claimed(row.id, row.dedupe_key, row.openid, row.msg_type, row.event, row.content, row.media,
                   row.received_at, row.status, row.reply, row.delivery, row.attempts, row.takeovers)


def _rowcount(result: Any) -> int:
    # Session.execute() is typed as returning Result; for DML statements it is a CursorResult.
    return cast("CursorResult[Any]", result).rowcount or 0


def _mine(inbound_id: int, owner: str) -> Any:
    return and_(InboundMessage.id == inbound_id, InboundMessage.owner == owner)


def record_inbound(store: TicketStore, *, dedupe_key: str, openid: str, msg_type: str, event: str | None,
                   content: str, media: dict[str, Any] | None, now: datetime | None = None,
                   status: InboundStatus = InboundStatus.RECEIVED, reply: str | None = None,
                   owner: str | None = None, lease_until: datetime | None = None) -> Stored:
    """Insert once; a redelivery finds the first row (unique dedupe_key). A message that is
    final on arrival (throttled) is stored with its status and answer at once; one to be
    answered is stored with the lease of the replica that answers it (`owner`, `lease_until`)."""
    now = now or utcnow()
    final = status is not InboundStatus.RECEIVED
    with store.transaction() as session:
        created = insert_once(session, InboundMessage, "dedupe_key", dict(
            dedupe_key=dedupe_key, openid=openid, msg_type=msg_type, event=event, content=content,
            media=media, received_at=now, status=status.value, attempts=0, reply=reply,
            delivery=("passive" if reply else "none") if final else None, processed_at=now if final else None,
            owner=None if final else owner, lease_until=None if final else lease_until, takeovers=0))
        row_id = session.execute(select(InboundMessage.id).where(InboundMessage.dedupe_key == dedupe_key)).scalar_one()
    return Stored(row_id, created)


def _stalled(now: datetime, lease: timedelta) -> Any:
    """Messages not yet answered (or answered, not yet delivered) whose replica stopped: their
    lease ran out. A message stored before leases existed has none: stalled once it is a lease
    old. Waiting messages are the retry's (`claim_waiting`)."""
    return and_(InboundMessage.status == InboundStatus.RECEIVED.value,
                or_(InboundMessage.lease_until < now,
                    and_(InboundMessage.lease_until.is_(None), InboundMessage.received_at < now - lease)))


def stalled_messages(store: TicketStore, now: datetime, lease: timedelta, limit: int = 100) -> list[int]:
    """The ids of messages left by a replica that stopped (see `_stalled`), oldest first."""
    with store.transaction() as session:
        return list(session.execute(select(InboundMessage.id).where(_stalled(now, lease))
                                    .order_by(InboundMessage.id).limit(limit)).scalars())


def take_over(store: TicketStore, inbound_id: int, *, owner: str, now: datetime, lease: timedelta) -> Claimed | None:
    """Take the lease of a stalled message (one UPDATE: of replicas racing for it, one wins);
    None when it is not stalled (done, or its replica still holds it)."""
    with store.transaction() as session:
        taken = _rowcount(session.execute(
            update(InboundMessage).where(InboundMessage.id == inbound_id, _stalled(now, lease))
            .values(owner=owner, lease_until=now + lease, takeovers=InboundMessage.takeovers + 1)
            .execution_options(synchronize_session=False)))
        return _claimed(require(session, InboundMessage, inbound_id)) if taken == 1 else None


def waiting_messages(store: TicketStore, limit: int = 100) -> Sequence[InboundMessage]:
    """Messages that could not reach the assistant, oldest first (held by a replica or not:
    one that another replica holds tells a retry to leave that resident's later ones alone)."""
    with store.transaction() as session:
        return session.execute(
            select(InboundMessage).where(InboundMessage.status == InboundStatus.WAITING.value)
            .order_by(InboundMessage.id).limit(limit)
        ).scalars().all()


def claim_waiting(store: TicketStore, inbound_id: int, *, owner: str, now: datetime,
                  lease: timedelta) -> Claimed | None:
    """Take the lease of a waiting message to retry it; None when another replica holds it.
    Taken from a replica that stopped while retrying it, it counts as a takeover."""
    with store.transaction() as session:
        taken = _rowcount(session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id, InboundMessage.status == InboundStatus.WAITING.value,
                   or_(InboundMessage.owner.is_(None), InboundMessage.lease_until < now))
            .values(owner=owner, lease_until=now + lease,
                    takeovers=InboundMessage.takeovers + case((InboundMessage.owner.is_(None), 0), else_=1))
            .execution_options(synchronize_session=False)))
        return _claimed(require(session, InboundMessage, inbound_id)) if taken == 1 else None


def renew_lease(store: TicketStore, inbound_id: int, *, owner: str, until: datetime) -> bool:
    """Extend this replica's lease; False when it is not this replica's any more."""
    with store.transaction() as session:
        return _rowcount(session.execute(update(InboundMessage).where(_mine(inbound_id, owner))
                                         .values(lease_until=until).execution_options(synchronize_session=False))) == 1


def record_answer(store: TicketStore, inbound_id: int, *, owner: str, status: InboundStatus, reply: str,
                  delivery: str) -> bool:
    """The answer, decided, before any of it goes out (the lease stays): a replica that takes
    the message over delivers what is left of it instead of answering again. `status` stays
    RECEIVED for an answer (the message is done when all of it is out), WAITING for the holding
    answer of a message the assistant could not take (then the retry answers it). False when the
    lease is not this replica's any more (then it delivers nothing)."""
    with store.transaction() as session:
        return _rowcount(session.execute(
            update(InboundMessage).where(_mine(inbound_id, owner))
            .values(status=status.value, reply=reply, delivery=delivery)
            .execution_options(synchronize_session=False))) == 1


def release(store: TicketStore, inbound_id: int, *, owner: str) -> bool:
    """Give the lease up without changing anything else (a retry that found the assistant still down)."""
    with store.transaction() as session:
        return _rowcount(session.execute(
            update(InboundMessage).where(_mine(inbound_id, owner)).values(owner=None, lease_until=None)
            .execution_options(synchronize_session=False))) == 1


def finish_inbound(store: TicketStore, inbound_id: int, *, status: InboundStatus, reply: str | None,
                   delivery: str | None, error: str | None = None, owner: str | None = None) -> bool:
    """Record the outcome and release the lease. Given `owner`, only while that replica still
    holds the message; False when it does not (another replica took it over)."""
    condition = _mine(inbound_id, owner) if owner is not None else InboundMessage.id == inbound_id
    with store.transaction() as session:
        return _rowcount(session.execute(
            update(InboundMessage).where(condition)
            .values(status=status.value, reply=reply, delivery=delivery, error=error,
                    attempts=InboundMessage.attempts + 1, processed_at=utcnow(), owner=None, lease_until=None)
            .execution_options(synchronize_session=False))) == 1


def inbound_status(store: TicketStore, inbound_id: int) -> str:
    with store.transaction() as session:
        row = require(session, InboundMessage, inbound_id)
        return row.status


def record_outbound(store: TicketStore, *, openid: str, inbound_id: int | None, content: str, status: str,
                    error: str | None = None) -> None:
    with store.transaction() as session:
        session.add(OutboundMessage(openid=openid, inbound_id=inbound_id, content=content, created_at=utcnow(),
                                    status=status, error=error))


def part_key(inbound_id: int, generation: str, index: int) -> str:
    """One part of one answer of a message. `generation` tells its answers apart: the message's
    `attempts` when the answer went out, "w" added for a holding answer ("0w": the receipt of a
    message that waits; "1": its answer once the assistant is back)."""
    return f"answer:{inbound_id}:{generation}:{index}"


def begin_part(store: TicketStore, *, inbound_id: int, key: str, openid: str, content: str, owner: str,
               until: datetime) -> PartStep:
    """Before a part of an answer is sent: renew the message's lease and record the part as
    sending, in one transaction. The part's unique key makes this the one send of it, by
    whichever replica; a part that failed before (WeChat refused it) may be sent again."""
    with store.transaction() as session:
        renewed = _rowcount(session.execute(update(InboundMessage).where(_mine(inbound_id, owner))
                                            .values(lease_until=until).execution_options(synchronize_session=False)))
        if renewed != 1:
            return PartStep.LOST
        if insert_once(session, OutboundMessage, "idempotency_key", dict(
                openid=openid, inbound_id=inbound_id, content=content, created_at=utcnow(), status="sending",
                idempotency_key=key)):
            return PartStep.SEND
        retried = _rowcount(session.execute(
            update(OutboundMessage).where(OutboundMessage.idempotency_key == key, OutboundMessage.status == "failed")
            .values(status="sending", error=None, created_at=utcnow()).execution_options(synchronize_session=False)))
        return PartStep.SEND if retried == 1 else PartStep.DONE


def end_part(store: TicketStore, key: str, *, status: str, error: str | None = None) -> None:
    """What came of a part's send: sent or failed."""
    with store.transaction() as session:
        session.execute(update(OutboundMessage).where(OutboundMessage.idempotency_key == key)
                        .values(status=status, error=error).execution_options(synchronize_session=False))


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
