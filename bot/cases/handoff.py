"""Staff take over a case: claim (首接负责制), talk to the resident live, resolve.

One set of functions for every staff front end — the Telegram staff bot and the staff
HTTP API (the web console) — so the rules live once:
- a claim is atomic: the first staff member wins, the others learn who has the case;
- only the holder replies or resolves;
- while a resident's case is held, their WeChat messages go to that staff member, not to
  the assistant, until the resident says 结束人工 or the case is resolved;
- staff words reach the resident through the job queue (customer-service message, or a
  template outside WeChat's 48-hour window), each one a ticket event.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Collection, Literal, Sequence, cast

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from bot.cases.tickets import add_event, find_ticket, resolve_ticket, transition
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.kinds import TicketStatus
from bot.core.lifecycle import OPEN_STATUS_VALUES, OPEN_STATUSES
from bot.core.privacy import redact_text
from bot.core.rules import ProjectRules
from bot.db import queue
from bot.db.models import HumanSession, StaffAlert, StaffOutbox, Ticket

END_WORDS = re.compile(r"^\s*(结束人工|结束人工服务|退出人工|结束对话|不用人工了)[。.!！]*\s*$")


class Refusal(str, enum.Enum):
    NO_SUCH_TICKET = "no_such_ticket"
    CLOSED = "closed"  # nothing left to do on it
    TAKEN = "taken"  # someone else holds it
    NOT_HOLDER = "not_holder"
    FORBIDDEN = "forbidden"  # not a case of their projects, or not their role (bot.core.access)


@dataclass(frozen=True)
class Staff:
    id: str  # stable: tg:12345, api:wang
    name: str  # what residents and colleagues see


@dataclass(frozen=True)
class Outcome:
    ticket_number: str
    done: bool
    refusal: Refusal | None = None
    holder: str | None = None  # who holds the case (when taken by someone else)


def _ticket(session: Session, number: str) -> Ticket | None:
    return find_ticket(session, number.strip())


def tell_resident(session: Session, rules: ProjectRules, ticket: Ticket, text: str, key: str,
                  now: datetime) -> None:
    """Queue a message to the case's resident (sent once per key by the worker: free text in
    WeChat's 48-hour window, else the configured template)."""
    if ticket.resident is None or not ticket.resident.openid:
        return
    queue.enqueue(session, kind=queue.RESIDENT_MESSAGE, project=ticket.project, due_at=now, key=key, now=now,
                  ticket_id=ticket.id, payload={"text": text, "openid": ticket.resident.openid},
                  max_attempts=rules.follow_up.job_max_attempts)


def _tell_staff(session: Session, ticket: Ticket, audience: str, text: str, now: datetime) -> None:
    session.add(StaffOutbox(project=ticket.project, ticket_id=ticket.id, audience=audience, text=text, created_at=now,
                            attempts=0))


def active_session(session: Session, openid: str) -> HumanSession | None:
    return session.execute(
        select(HumanSession).where(HumanSession.openid == openid, HumanSession.ended_at.is_(None))
        .order_by(HumanSession.id.desc()).limit(1)
    ).scalar_one_or_none()


def _end_sessions(session: Session, ticket: Ticket, by: str, now: datetime) -> list[HumanSession]:
    open_ones = session.execute(
        select(HumanSession).where(HumanSession.ticket_id == ticket.id, HumanSession.ended_at.is_(None))
    ).scalars().all()
    for live in open_ones:
        live.ended_at, live.ended_by = now, by
    return list(open_ones)


def _take(session: Session, rules: ProjectRules, ticket: Ticket, staff: Staff, *, channel: str,
          now: datetime) -> bool:
    """Make `staff` the holder if nobody is. Atomic: the UPDATE only matches an unheld case."""
    # Session.execute() is typed as returning Result; for this UPDATE it is a CursorResult.
    won = cast("CursorResult[Any]", session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.assignee_id.is_(None))
        .values(assignee_id=staff.id[:64], assignee=staff.name[:64], claimed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )).rowcount == 1
    session.refresh(ticket)
    if won:
        add_event(session, ticket, actor=f"staff:{staff.name}", channel=channel, action="claimed", content=staff.id,
                  result="claimed", now=now)
        if TicketStatus(ticket.status) is TicketStatus.NEW:
            transition(session, ticket, TicketStatus.ACCEPTED, rules=rules, actor=f"staff:{staff.name}",
                       channel=channel, now=now)
    return won


def claim(session: Session, rules: ProjectRules, number: str, staff: Staff, *, channel: str,
          now: datetime | None = None) -> Outcome:
    """接单: the first staff member wins; the resident is now talking to them (live relay)."""
    now = now or utcnow()
    ticket = _ticket(session, number)
    if ticket is None:
        return Outcome(number, False, Refusal.NO_SUCH_TICKET)
    if TicketStatus(ticket.status) not in OPEN_STATUSES:
        return Outcome(ticket.number, False, Refusal.CLOSED)
    if not _take(session, rules, ticket, staff, channel=channel, now=now):
        if ticket.assignee_id == staff.id:
            return Outcome(ticket.number, True, holder=ticket.assignee)  # a second click by the holder
        return Outcome(ticket.number, False, Refusal.TAKEN, holder=ticket.assignee)
    resident = ticket.resident
    if resident is not None and resident.openid:
        previous = active_session(session, resident.openid)
        if previous is not None:
            previous.ended_at, previous.ended_by = now, "another case claimed"
        session.add(HumanSession(ticket_id=ticket.id, openid=resident.openid, staff_id=staff.id[:64],
                                 staff_name=staff.name[:64], started_at=now))
        tell_resident(session, rules, ticket, replies.staff_joined(staff.name, ticket.number),
                      f"claimed:{ticket.id}:{staff.id}:{now.isoformat()}", now)
    return Outcome(ticket.number, True, holder=staff.name)


def _held_by(ticket: Ticket | None, number: str, staff: Staff) -> Outcome | None:
    if ticket is None:
        return Outcome(number, False, Refusal.NO_SUCH_TICKET)
    if ticket.assignee_id != staff.id:
        return Outcome(ticket.number, False, Refusal.NOT_HOLDER, holder=ticket.assignee)
    return None


def reply(session: Session, rules: ProjectRules, number: str, staff: Staff, text: str, *, channel: str,
          now: datetime | None = None) -> Outcome:
    """回复: the holder's words go to the resident (and into the case's record)."""
    now = now or utcnow()
    ticket = _ticket(session, number)
    refused = _held_by(ticket, number, staff)
    if refused is not None:
        return refused
    assert ticket is not None  # _held_by refuses a missing ticket
    text = text.strip()[:1500]
    event = add_event(session, ticket, actor=f"staff:{staff.name}", channel=channel, action="staff_reply",
                      content=text, result="queued for the resident", now=now)
    session.flush()
    tell_resident(session, rules, ticket, replies.staff_says(staff.name, text), f"staff-reply:{event.id}", now)
    return Outcome(ticket.number, True, holder=staff.name)


def resolve(session: Session, rules: ProjectRules, number: str, staff: Staff, note: str, *, channel: str,
            now: datetime | None = None) -> Outcome:
    """办结: the work is done; the resident goes back to the assistant and the callback is scheduled."""
    now = now or utcnow()
    ticket = _ticket(session, number)
    if ticket is not None and ticket.assignee_id is None and TicketStatus(ticket.status) in OPEN_STATUSES:
        # Resolving a case nobody held makes you its holder (no live session: it is done).
        _take(session, rules, ticket, staff, channel=channel, now=now)
    refused = _held_by(ticket, number, staff)
    if refused is not None:
        return refused
    assert ticket is not None  # _held_by refuses a missing ticket
    if TicketStatus(ticket.status) not in OPEN_STATUSES:
        return Outcome(ticket.number, False, Refusal.CLOSED)
    resolve_ticket(session, rules, ticket, actor=f"staff:{staff.name}", channel=channel, note=note.strip()[:2000],
                   now=now)
    if _end_sessions(session, ticket, f"staff:{staff.name}", now):
        tell_resident(session, rules, ticket, replies.human_session_resolved(ticket.number),
                      f"resolved:{ticket.id}:{now.isoformat()}", now)
    return Outcome(ticket.number, True, holder=staff.name)


CLAIM, REPLY, RESOLVE = "claim", "reply", "resolve"
ACTIONS = (CLAIM, REPLY, RESOLVE)


def perform(session: Session, rules: ProjectRules, action: str, number: str, staff: Staff, text: str = "", *,
            channel: str, now: datetime | None = None) -> Outcome:
    """One staff action by name (the staff bot's buttons, the staff API's routes)."""
    if action == CLAIM:
        return claim(session, rules, number, staff, channel=channel, now=now)
    if action == REPLY:
        return reply(session, rules, number, staff, text, channel=channel, now=now)
    if action == RESOLVE:
        return resolve(session, rules, number, staff, text, channel=channel, now=now)
    raise ValueError(f"unknown staff action {action!r}")


# --- the resident's side ------------------------------------------------------------------


def route_resident_message(session: Session, openid: str, text: str, *, channel: str,
                           now: datetime | None = None) -> str | None | Literal[False]:
    """A resident's message while a staff member holds their case.

    Returns False when no human session is active (the assistant answers), None when the
    message went to the staff member (no automatic answer), or the text to answer with
    (the resident ended the session).
    """
    now = now or utcnow()
    live = active_session(session, openid)
    if live is None:
        return False
    ticket = live.ticket
    if END_WORDS.match(text):
        live.ended_at, live.ended_by = now, "resident"
        add_event(session, ticket, actor="resident", channel=channel, action="human_session_ended",
                  content=text, result="ended by the resident", now=now)
        _tell_staff(session, ticket, f"staff:{live.staff_id}",
                    f"【{ticket.number}】居民已结束人工对话，后续消息由智能助手接待。", now)
        return replies.human_session_ended()
    add_event(session, ticket, actor="resident", channel=channel, action="resident_message", content=text,
              result=f"relayed to {live.staff_name}", now=now)
    _tell_staff(session, ticket, f"staff:{live.staff_id}", f"【{ticket.number}】居民：{redact_text(text)}", now)
    return None


def route_resident_picture(session: Session, openid: str, picture_url: str, *, channel: str,
                           now: datetime | None = None) -> bool:
    """A photo sent while a staff member holds the case goes to them too. True when relayed."""
    now = now or utcnow()
    live = active_session(session, openid)
    if live is None:
        return False
    ticket = live.ticket
    add_event(session, ticket, actor="resident", channel=channel, action="evidence", content=picture_url,
              result=f"relayed to {live.staff_name}", now=now)
    _tell_staff(session, ticket, f"staff:{live.staff_id}", f"【{ticket.number}】居民发来一张图片：{picture_url}", now)
    return True


# --- staff views ---------------------------------------------------------------------------


def cases_held_by(session: Session, staff: Staff, limit: int = 30) -> Sequence[Ticket]:
    return session.execute(
        select(Ticket).where(Ticket.assignee_id == staff.id, Ticket.status.in_(OPEN_STATUS_VALUES))
        .order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.id).limit(limit)
    ).scalars().all()


def unclaimed_escalated(session: Session, projects: Collection[str], limit: int = 30) -> Sequence[Ticket]:
    """Open cases of `projects` that were escalated to staff and nobody holds."""
    escalated = select(StaffAlert.ticket_id).where(StaffAlert.ticket_id.is_not(None))
    return session.execute(
        select(Ticket).where(Ticket.project.in_(list(projects)), Ticket.assignee_id.is_(None),
                             Ticket.id.in_(escalated), Ticket.status.in_(OPEN_STATUS_VALUES))
        .order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.id).limit(limit)
    ).scalars().all()


def pending_staff_messages(session: Session, limit: int = 50) -> Sequence[StaffOutbox]:
    return session.execute(select(StaffOutbox).where(StaffOutbox.sent_at.is_(None)).order_by(StaffOutbox.id)
                           .limit(limit)).scalars().all()
