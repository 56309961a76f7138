"""复议: a resident asks for a recently finished case to be looked at again.

The state machine decides how (bot.core.lifecycle): a case done and awaiting its callback
(resolved) is reopened, with a fresh deadline, as a dissatisfied callback would; a closed case
(已办结) is final, so a review case of the same kind is opened and linked to it both ways
(an event on the original, the original's number in the review's description). Either way
the resident's words are recorded, staff are alerted like any escalation, and the resident
gets the case number and the deadline.

Only the resident's own cases: a number that is not theirs is answered as one that does not exist.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.cases import alerts, follow_ups
from bot.cases.escalation import REVIEW_REQUEST, escalate
from bot.cases.opening import insert_case
from bot.cases.tickets import RESIDENT, add_event, referenced_case, transition
from bot.core.clock import utcnow
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.lifecycle import OPEN_STATUS_VALUES, OPEN_STATUSES
from bot.core.references import CaseReference
from bot.core.rules import ProjectRules
from bot.db.models import Resident, Ticket

REVIEW_EVENT = "review_requested"
REVIEW_PREFIX = "复议"
FINISHED = (TicketStatus.RESOLVED, TicketStatus.CLOSED)
# Praise has nothing to review: "the last finished case" skips it.
REVIEWABLE_KINDS = (TicketKind.REPAIR, TicketKind.COMPLAINT, TicketKind.ENQUIRY, TicketKind.SUGGESTION)
MAX_WORDS = 500


class Review(str, enum.Enum):
    REOPENED = "reopened"  # the case itself is back in work
    OPENED = "opened"  # a review case was opened for a closed one
    ALREADY = "already"  # a review of it is already under way: the words were added to it
    STILL_OPEN = "still_open"  # the case is not finished: nothing to review yet
    CANCELLED = "cancelled"  # the resident withdrew it
    TOO_OLD = "too_old"  # finished longer ago than self_service.review_within_days
    NOTHING = "nothing"  # no finished case to review
    NOT_FOUND = "not_found"  # the number named is not one of theirs (or nobody's)


@dataclass(frozen=True)
class ReviewResult:
    outcome: Review
    number: str | None = None  # the case the resident asked about
    review_number: str | None = None  # the case staff now work (the same one when reopened)
    due_at: datetime | None = None


def finished_at(ticket: Ticket) -> datetime | None:
    if ticket.status == TicketStatus.CLOSED.value:
        return ticket.closed_at or ticket.resolved_at
    return ticket.resolved_at


def _last_finished(session: Session, openid: str, kind: TicketKind | None) -> Ticket | None:
    kinds = [kind.value] if kind else [k.value for k in REVIEWABLE_KINDS]
    return session.execute(
        select(Ticket).join(Resident).where(Resident.openid == openid, Ticket.kind.in_(kinds),
                                            Ticket.status.in_([s.value for s in FINISHED]))
        .order_by(func.coalesce(Ticket.closed_at, Ticket.resolved_at).desc(), Ticket.id.desc()).limit(1)
    ).scalar_one_or_none()


def _open_review_of(session: Session, original: Ticket) -> Ticket | None:
    return session.execute(
        select(Ticket).where(Ticket.resident_id == original.resident_id, Ticket.status.in_(OPEN_STATUS_VALUES),
                             Ticket.description.startswith(_review_heading(original)))
        .order_by(Ticket.id.desc()).limit(1)
    ).scalar_one_or_none()


def _review_heading(original: Ticket) -> str:
    return f"{REVIEW_PREFIX}（原工单 {original.number}）"


def _alert(session: Session, rules: ProjectRules, ticket: Ticket, original: Ticket, words: str, now: datetime) -> None:
    detail = f"resident asks for a review of {original.number}: {words[:80]}"
    if not escalate(session, rules, ticket, REVIEW_REQUEST, detail, now):
        # escalate() keeps one alert per reason and case; a second review of the same case needs its own.
        alerts.raise_alert(session, reason=REVIEW_REQUEST, ticket=ticket, detail=detail, now=now,
                           key=f"{REVIEW_REQUEST}:{ticket.id}:{now.isoformat()}")


def _reopen(session: Session, rules: ProjectRules, ticket: Ticket, words: str, channel: str,
            now: datetime, actor: str = RESIDENT) -> ReviewResult:
    add_event(session, ticket, actor=actor, channel=channel, action=REVIEW_EVENT, content=words,
              result="reopened for review", now=now)
    transition(session, ticket, TicketStatus.REOPENED, rules=rules, actor=actor, channel=channel,
               content=words, result="review requested", now=now)
    _alert(session, rules, ticket, ticket, words, now)
    return ReviewResult(Review.REOPENED, ticket.number, ticket.number, ticket.due_at)


def _open_review(session: Session, rules: ProjectRules, original: Ticket, words: str, channel: str,
                 now: datetime, actor: str = RESIDENT) -> ReviewResult:
    running = _open_review_of(session, original)
    if running is not None:
        add_event(session, running, actor=actor, channel=channel, action=REVIEW_EVENT, content=words,
                  result="asked again", now=now)
        return ReviewResult(Review.ALREADY, original.number, running.number, running.due_at)
    review = insert_case(session, rules, kind=TicketKind(original.kind), resident=original.resident,
                         priority=Priority(original.priority) if original.priority else None,
                         description=f"{_review_heading(original)}：{words}", room=original.room,
                         demand=original.demand, channel=channel, now=now)
    follow_ups.schedule_deadline_checks(session, rules, review, now)
    follow_ups.schedule_progress_updates(session, rules, review, now)
    add_event(session, original, actor=actor, channel=channel, action=REVIEW_EVENT, content=words,
              result=f"review case {review.number}", now=now)
    _alert(session, rules, review, original, words, now)
    return ReviewResult(Review.OPENED, original.number, review.number, review.due_at)


def request_review(session: Session, rules: ProjectRules, *, openid: str, reference: CaseReference | None,
                   words: str, channel: str, now: datetime | None = None) -> ReviewResult:
    """Review the case the resident names (by number, or "the complaint I filed"), else their
    most recently finished one, if it finished within `self_service.review_within_days`."""
    now = now or utcnow()
    words = (words or "").strip()[:MAX_WORDS] or "居民申请复议"
    if reference is not None and reference.number:
        ticket = referenced_case(session, openid, reference, now)
        if ticket is None:
            return ReviewResult(Review.NOT_FOUND, reference.number)
    else:
        ticket = _last_finished(session, openid, reference.kind if reference else None)
        if ticket is None:
            return ReviewResult(Review.NOTHING)
    status = TicketStatus(ticket.status)
    if status in OPEN_STATUSES:
        return ReviewResult(Review.STILL_OPEN, ticket.number, ticket.number, ticket.due_at)
    if status is TicketStatus.CANCELLED:
        return ReviewResult(Review.CANCELLED, ticket.number)
    finished = finished_at(ticket)
    if finished is None or finished < now - timedelta(days=rules.self_service.review_within_days):
        return ReviewResult(Review.TOO_OLD, ticket.number)
    if status is TicketStatus.RESOLVED:
        return _reopen(session, rules, ticket, words, channel, now)
    return _open_review(session, rules, ticket, words, channel, now)


def reopen_for_review(session: Session, rules: ProjectRules, ticket: Ticket, *, actor: str, words: str,
                      channel: str, now: datetime | None = None) -> ReviewResult:
    """复议 taken by staff (the resident contested a finished case by phone or at the desk): a case
    awaiting its callback is reopened, a closed one gets a linked review case — as when the
    resident asks in chat, but at any age."""
    now = now or utcnow()
    words = (words or "").strip()[:MAX_WORDS] or "居民申请复议"
    status = TicketStatus(ticket.status)
    if status in OPEN_STATUSES:
        return ReviewResult(Review.STILL_OPEN, ticket.number, ticket.number, ticket.due_at)
    if status is TicketStatus.CANCELLED:
        return ReviewResult(Review.CANCELLED, ticket.number)
    if status is TicketStatus.RESOLVED:
        return _reopen(session, rules, ticket, words, channel, now, actor)
    return _open_review(session, rules, ticket, words, channel, now, actor)

