"""Enquiries (咨询) answered from the project's knowledge base, and referrals for
requests that belong to another public body."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import latest_text, project_rules
from bot.core import replies

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
            log.warning("no FAQ answer for topic %r; the project YAML lacks it", topic)
            answer = replies.faq_unknown_topic(rules)
        dispatcher.utter_message(text=answer)
        return []


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
