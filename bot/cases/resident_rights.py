"""A resident's rights over their personal data (PIPL arts. 45 and 47; GB/T 35273 §8):
a copy of everything held about them, and its erasure.

Everything means every place: the household file, the cases with their timelines, the
surveys, the notices delivered to them, the channel's raw message logs and the assistant's
memory of the conversation. Erasure keeps only what the company must keep to account for its
service — case numbers, kinds, statuses and times, which notices reached the household and
when — with every personal field blanked; the rest is deleted, and nothing more is sent.
Both are written to the audit table (who, when, which resident, why, what was touched).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence, cast

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from bot.cases.ports import ConversationMemory, ResidentChannel
from bot.core import notices as notice_states
from bot.core.privacy import mask_openid, mask_room
from bot.core.rooms import normalise_room
from bot.db import queue
from bot.db.models import (
    BindingAttempt,
    HumanSession,
    Job,
    JobStatus,
    NoticeDelivery,
    PrivacyRequest,
    Resident,
    ResidentEvent,
    ResidentNotice,
    StaffAlert,
    Survey,
    Ticket,
    TicketEvent,
)
from bot.db.store import TicketStore

ERASED = "（已按住户要求删除）"  # what a case's description reads after erasure


class RightsError(Exception):
    """The request cannot be carried out (nobody found, a store unreachable); nothing was erased."""


@dataclass(frozen=True)
class Request:
    """Who asks for what, and why (all three go to the audit table)."""

    requested_by: str
    os_user: str
    reason: str
    now: datetime


@dataclass(frozen=True)
class Subject:
    """The residents an openid or a room stands for."""

    asked: str  # masked: the audit never holds the identifier in clear
    resident_ids: tuple[int, ...]
    openids: tuple[str, ...]


def find_subject(session: Session, who: str) -> Subject:
    """An openid names one resident; a room names the residents whose file or cases carry it."""
    who = who.strip()
    by_openid = session.execute(select(Resident).where(Resident.openid == who)).scalars().all()
    room = None if by_openid else normalise_room(who)
    residents: Sequence[Resident] = by_openid
    if room:
        with_cases = select(Ticket.resident_id).where(Ticket.room == room, Ticket.resident_id.is_not(None))
        residents = session.execute(select(Resident).where(or_(Resident.room == room, Resident.id.in_(with_cases)))
                                    .order_by(Resident.id)).scalars().all()
    asked = mask_room(room) if room else mask_openid(who)
    return Subject(asked, tuple(r.id for r in residents), tuple(r.openid for r in residents if r.openid))


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _columns(row: Any, names: Sequence[str]) -> dict[str, Any]:
    return {name: _iso(getattr(row, name)) for name in names}


def _file_of(session: Session, resident: Resident) -> dict[str, Any]:
    tickets = session.execute(select(Ticket).where(Ticket.resident_id == resident.id)
                              .order_by(Ticket.id)).scalars().all()
    surveys = session.execute(select(Survey).where(Survey.resident_id == resident.id)
                              .order_by(Survey.id)).scalars().all()
    return {
        "file": _columns(resident, ("openid", "name", "phone", "room", "customer_type", "property_use", "occupancy",
                                    "tags", "created_at", "updated_at", "bound_at", "subscribed", "unsubscribed_at",
                                    "last_message_at")),
        "cases": [{**_columns(t, ("number", "kind", "status", "priority", "room", "description", "demand",
                                  "visit_time", "channel", "created_at", "due_at", "resolved_at", "closed_at")),
                   "events": [_columns(e, ("at", "actor", "channel", "action", "from_status", "to_status", "content",
                                           "result")) for e in t.events]}
                  for t in tickets],
        "surveys": [{**_columns(s, ("campaign", "status", "created_at", "sent_at", "answered_at", "verdict",
                                    "overall_score", "comment")),
                     "scores": {score.dimension: score.score for score in s.scores}}
                    for s in surveys],
        "file record": [_columns(e, ("at", "actor", "channel", "action", "content")) for e in session.execute(
            select(ResidentEvent).where(ResidentEvent.resident_id == resident.id).order_by(ResidentEvent.id)).scalars()],
        # Each notice addressed to them: what it was, and what came of their copy (sent_at: when it reached them).
        "notices": [{"title": n.title, "kind": n.kind, "notice_sent_at": _iso(n.send_at), **_columns(
            d, ("status", "via", "sent_at", "error"))} for d, n in session.execute(
            select(NoticeDelivery, ResidentNotice).join(ResidentNotice, NoticeDelivery.notice_id == ResidentNotice.id)
            .where(NoticeDelivery.resident_id == resident.id).order_by(NoticeDelivery.id)).all()],
    }


def _audit(session: Session, action: str, request: Request, subject: Subject, outcome: dict[str, Any]) -> None:
    session.add(PrivacyRequest(at=request.now, action=action, requested_by=request.requested_by,
                               os_user=request.os_user, resident_ids=list(subject.resident_ids),
                               subject=subject.asked, reason=request.reason, outcome=outcome))


async def export_resident(store: TicketStore, channel: ResidentChannel, memory: ConversationMemory, who: str,
                          request: Request) -> dict[str, Any]:
    """Everything held about the resident(s) `who` names, as JSON-ready data (audited)."""
    def read() -> tuple[Subject, list[dict[str, Any]]]:
        with store.transaction() as session:
            subject = find_subject(session, who)
            residents = [session.get(Resident, rid) for rid in subject.resident_ids]
            return subject, [_file_of(session, r) for r in residents if r is not None]

    subject, files = await asyncio.to_thread(read)
    if not subject.resident_ids:
        raise RightsError("no resident found for that openid or room")
    for entry in files:
        openid = entry["file"]["openid"]
        entry["messages"] = await channel.raw_logs_of(openid) if openid else {}
        entry["conversation"] = await memory.export(openid) if openid else []
    outcome = {"residents": len(files), "cases": sum(len(f["cases"]) for f in files),
               "notices": sum(len(f["notices"]) for f in files),
               "messages": sum(len(m) for f in files for m in f["messages"].values()),
               "conversation_events": sum(len(f["conversation"]) for f in files)}

    def audit() -> None:
        with store.transaction() as session:
            _audit(session, "export", request, subject, outcome)

    await asyncio.to_thread(audit)
    return {"exported_at": request.now.isoformat(), "residents": files}


def _anonymise(session: Session, subject: Subject, now: datetime) -> dict[str, int]:
    ids = list(subject.resident_ids)
    tickets = select(Ticket.id).where(Ticket.resident_id.in_(ids))
    surveys = select(Survey.id).where(Survey.resident_id.in_(ids))

    def run(statement: Any) -> int:
        # Session.execute() is typed as returning Result; for DML it is a CursorResult.
        result = cast("CursorResult[Any]", session.execute(statement.execution_options(synchronize_session=False)))
        return int(result.rowcount or 0)

    counts = {
        "residents": run(update(Resident).where(Resident.id.in_(ids)).values(
            openid=None, name=None, phone=None, room=None, tags=[], subscribed=False, bound_at=None,
            last_message_at=None, updated_at=now)),
        "cases": run(update(Ticket).where(Ticket.resident_id.in_(ids)).values(
            description=ERASED, demand=None, visit_time=None, room=None, updated_at=now)),
        "case events": run(update(TicketEvent).where(TicketEvent.ticket_id.in_(tickets)).values(content="", result="")),
        "surveys": run(update(Survey).where(Survey.resident_id.in_(ids)).values(comment=None)),
        "file record": run(update(ResidentEvent).where(ResidentEvent.resident_id.in_(ids)).values(content="")),
        "alerts": run(update(StaffAlert).where(StaffAlert.ticket_id.in_(tickets)).values(detail="")),
        "chats with staff": run(update(HumanSession).where(HumanSession.openid.in_(subject.openids)).values(openid="")),
    }
    # Notices: which reached the household and when is kept (like a case's status and times); what is
    # not sent yet is withdrawn, and a failure's text (the channel's words, which may name them) blanked.
    run(update(NoticeDelivery).where(NoticeDelivery.resident_id.in_(ids), NoticeDelivery.status == notice_states.PENDING)
        .values(status=notice_states.WITHDRAWN))
    counts["notice deliveries"] = run(update(NoticeDelivery).where(NoticeDelivery.resident_id.in_(ids))
                                      .values(error=None))
    # A delivery's job is keyed notice_delivery:<notice>:<resident> (bot.cases.notices).
    deliveries = [and_(Job.idempotency_key.startswith(f"{queue.NOTICE_DELIVERY}:", autoescape=True),
                       Job.idempotency_key.endswith(f":{resident_id}", autoescape=True)) for resident_id in ids]
    theirs = or_(Job.ticket_id.in_(tickets), Job.survey_id.in_(surveys),
                 and_(Job.kind == queue.NOTICE_DELIVERY, or_(*deliveries)))
    run(update(Job).where(theirs, Job.status.in_((JobStatus.PENDING.value, JobStatus.RUNNING.value)))
        .values(status=JobStatus.CANCELLED.value, finished_at=now, updated_at=now))  # nothing more is sent
    counts["jobs"] = run(update(Job).where(theirs).values(payload={}, last_error=None))
    counts["binding attempts"] = run(delete(BindingAttempt).where(
        BindingAttempt.openid.in_(subject.openids)))
    return counts


def _audit_failure(store: TicketStore, request: Request, subject: Subject, outcome: dict[str, Any]) -> None:
    with store.transaction() as session:
        _audit(session, "erase", request, subject, outcome)


async def erase_resident(store: TicketStore, channel: ResidentChannel, memory: ConversationMemory, who: str,
                         request: Request) -> dict[str, int]:
    """Erase the resident(s) `who` names everywhere (audited); how many records, by kind.

    The assistant's memory and the channel's logs go first: once the file is anonymised the
    openid that finds them is gone. If one of them cannot be reached nothing is blanked and
    the request can simply be repeated.
    """
    def find() -> Subject:
        with store.transaction() as session:
            return find_subject(session, who)

    subject = await asyncio.to_thread(find)
    if not subject.resident_ids:
        raise RightsError("no resident found for that openid or room")
    counts: dict[str, int] = {"conversation events": 0, "inbound messages": 0, "outbound messages": 0}
    try:
        for openid in subject.openids:
            counts["conversation events"] += await memory.erase(openid)
            logs = await channel.erase_raw_logs_of(openid)
            counts["inbound messages"] += logs.get("inbound", 0)
            counts["outbound messages"] += logs.get("outbound", 0)
    except Exception as exc:
        failure = exc.__class__.__name__
        await asyncio.to_thread(_audit_failure, store, request, subject, {"failed": failure, **counts})
        raise RightsError(f"the assistant's or the channel's store could not be reached ({failure}); "
                          "the case file was left as it was: run the erasure again") from exc

    def blank() -> dict[str, int]:
        with store.transaction() as session:
            counts.update(_anonymise(session, subject, request.now))
            _audit(session, "erase", request, subject, dict(counts))
        return counts

    return await asyncio.to_thread(blank)
