"""Questions the assistant cannot answer become work: an enquiry case (咨询) for staff.

A resident who asks something the project's knowledge base has no answer for gets a case
number, and the question lands in the staff console's work queue like any other open case.
One open case per resident collects their unanswered questions: asking another while it is
open adds the question to that case's timeline rather than opening a second one.

Works inside the caller's transaction (`TicketStore.transaction()`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases.tickets import RESIDENT, add_event, find_or_create_resident, open_staff_follow_up
from bot.core.clock import utcnow
from bot.core.kinds import TicketKind
from bot.core.lifecycle import OPEN_STATUS_VALUES
from bot.core.privacy import mask_openid, redact_text
from bot.core.rules import ProjectRules
from bot.db.models import Ticket

log = logging.getLogger(__name__)

# How staff recognise the case (and how the next unanswered question finds it).
UNANSWERED_PREFIX = "居民提问，助手暂无答案"
# The timeline event of a further question on the open case (the console labels it 再次请求).
ASKED_AGAIN = "asked_again"
_QUESTION_LENGTH = 1000


@dataclass(frozen=True)
class RecordedQuestion:
    ticket: Ticket
    opened: bool  # True: a new case; False: the question joined the resident's open one


def _describe(question: str, topic: str | None) -> str:
    about = f"（话题 {topic}）" if topic else ""
    return f"{question}{about}" if question else (topic or "（未留下问题原文）")


def record_unanswered_question(session: Session, rules: ProjectRules, *, openid: str, question: str,
                               channel: str, topic: str | None = None,
                               now: datetime | None = None) -> RecordedQuestion:
    """The resident's question, which the assistant could not answer, for staff to answer.

    The case is in the resident's project (`rules`); `topic` is what the model took the question
    to be about (e.g. `faq/parking`), when it recognised one."""
    now = now or utcnow()
    question = " ".join(question.split())[:_QUESTION_LENGTH]
    resident = find_or_create_resident(session, openid, project=rules.code, now=now)
    waiting = session.execute(
        select(Ticket).where(Ticket.resident_id == resident.id, Ticket.kind == TicketKind.ENQUIRY.value,
                             Ticket.status.in_(OPEN_STATUS_VALUES),
                             Ticket.description.startswith(UNANSWERED_PREFIX))
        .order_by(Ticket.id.desc()).limit(1)
    ).scalar_one_or_none()
    if waiting is not None:
        add_event(session, waiting, actor=RESIDENT, channel=channel, action=ASKED_AGAIN,
                  content=_describe(question, topic), now=now)
        waiting.updated_at = now
        log.info("unanswered question of %s added to %s: %s", mask_openid(openid), waiting.number,
                 redact_text(question[:80]))
        return RecordedQuestion(waiting, opened=False)
    ticket = open_staff_follow_up(session, rules, resident=resident,
                                  description=f"{UNANSWERED_PREFIX}：{_describe(question, topic)}",
                                  room=resident.room, channel=channel, now=now)
    log.info("unanswered question of %s opened %s (project %s): %s", mask_openid(openid), ticket.number,
             rules.code, redact_text(question[:80]))
    return RecordedQuestion(ticket, opened=True)
