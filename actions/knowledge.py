"""Enquiries (咨询) answered from the project's knowledge base, and referrals for
requests that belong to another public body."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import input_channel, latest_text, project_rules, resident_id, with_store
from bot.cases import context, notices
from bot.cases.context import StoreUnavailable
from bot.cases.questions import record_unanswered_question
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.rules import ProjectRules

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def selected_faq_topic(tracker: Tracker) -> str | None:
    """The topic the ResponseSelector picked for the latest message, e.g. `faq/parking`."""
    selector = (tracker.latest_message or {}).get("response_selector") or {}
    response = (selector.get("faq") or {}).get("response") or {}
    return response.get("intent_response_key") or None


class ActionAnswerFaq(Action):
    def name(self) -> Text:
        return "action_answer_faq"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        rules = project_rules(tracker)
        topic = selected_faq_topic(tracker)
        answer = rules.knowledge.answer(topic) if topic else None
        if answer is None:
            log.warning("no FAQ answer for topic %r in project %s; the question goes to staff", topic, rules.code)
            answer = question_for_staff(dispatcher, tracker, topic)
        elif topic and topic.removeprefix("faq/") == OUTAGE_TOPIC:
            current = current_outages(tracker)
            answer = f"{answer}\n\n{current}" if current else answer
        if answer is not None:
            dispatcher.utter_message(text=answer)
        return []


OUTAGE_TOPIC = "outage_notice"  # 停水停电: the answer adds the project's current notices


def current_outages(tracker: Tracker) -> str:
    """The current outage and works notices of the resident's project, short for a phone; "" for
    none, and while the store is down (the FAQ answer alone is still right)."""
    try:
        with context.unit_of_work() as session:
            rules = context.rules_in_session(session, resident_id(tracker))
            return notices.outage_addendum(session, rules, utcnow())
    except StoreUnavailable:
        log.warning("store unavailable: the outage answer goes without the current notices")
        return ""


def question_for_staff(dispatcher: CollectingDispatcher, tracker: Tracker, topic: str | None) -> str | None:
    """A question the assistant cannot answer becomes an enquiry case of the resident's project (or
    joins their open one); the reply names its number. None when the store failed (the resident
    has heard the apology)."""
    question, now = latest_text(tracker), utcnow()

    def record(session: Session, rules: ProjectRules) -> str:
        recorded = record_unanswered_question(session, rules, openid=resident_id(tracker), question=question,
                                              topic=topic, channel=input_channel(tracker), now=now)
        return replies.question_for_staff(recorded.ticket.number, rules, again=not recorded.opened)

    return with_store(dispatcher, tracker, "recording an unanswered question", record)


class ActionReferOutOfScope(Action):
    def name(self) -> Text:
        return "action_refer_out_of_scope"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        knowledge = project_rules(tracker).knowledge
        referral = knowledge.referral_for(latest_text(tracker))
        if referral is not None:
            dispatcher.utter_message(text=replies.referral(referral.department, referral.contact))
        else:
            dispatcher.utter_message(text=knowledge.referral_default or replies.assistant_did_not_answer())
        return []
