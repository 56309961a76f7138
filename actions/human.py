"""A resident asks for a person (转人工): staff get a case with what was said so far."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import input_channel, latest_text, project_rules, resident_id, with_store
from actions.forms import FORM_SLOTS, leave_form
from bot.cases.tickets import request_human
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.rules import ProjectRules

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
_SLOT_LABELS = {"repair_description": "报修内容", "room": "房号", "visit_time": "上门时间",
                "complaint_description": "投诉内容", "complaint_location": "地点", "complaint_demand": "诉求"}


def conversation_context(tracker: Tracker) -> str:
    """What the resident said, and what a half-filled form already holds, for the staff member."""
    form = (tracker.active_loop or {}).get("name")
    parts = [f"{_SLOT_LABELS[s]}：{tracker.get_slot(s)}" for s in FORM_SLOTS.get(form or "", ()) if tracker.get_slot(s)]
    said = latest_text(tracker)
    if said:
        parts.insert(0, f"居民原话：{said}")
    return "；".join(parts)[:1000]


class ActionRequestHuman(Action):
    def name(self) -> Text:
        return "action_request_human"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        form = (tracker.active_loop or {}).get("name")
        # The form stops either way: from here a person takes the case.
        left: List[EventType] = leave_form(form) if form else []
        now = utcnow()

        def ask_for_a_person(session: Session, rules: ProjectRules) -> str:
            ticket = request_human(session, rules, openid=resident_id(tracker),
                                   context=conversation_context(tracker), channel=input_channel(tracker), now=now)
            return ticket.number

        number = with_store(dispatcher, tracker, "recording a request for a person", ask_for_a_person)
        if number is None:
            return left
        dispatcher.utter_message(text=replies.human_requested(number, project_rules(tracker), now))
        return left + [SlotSet("last_ticket_number", number)]
