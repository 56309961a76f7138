"""A resident asks for a person (转人工): staff get a case with what was said so far."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.common import apologise_store_failure, input_channel, latest_text, resident_id
from actions.forms import FORM_SLOTS, leave_form
from bot import replies, runtime
from bot.clock import utcnow
from bot.tickets import request_human

_SLOT_LABELS = {"repair_description": "报修内容", "room": "房号", "visit_time": "上门时间",
                "complaint_description": "投诉内容", "complaint_location": "地点", "complaint_demand": "诉求"}


def conversation_context(tracker: Tracker) -> str:
    """What the resident said, and what a half-filled form already holds, for the staff member."""
    form = (tracker.active_loop or {}).get("name")
    parts = [f"{_SLOT_LABELS[s]}：{tracker.get_slot(s)}" for s in FORM_SLOTS.get(form, ()) if tracker.get_slot(s)]
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
        rules = runtime.get_rules()
        now = utcnow()
        try:
            with runtime.get_store().transaction() as session:
                ticket = request_human(session, rules, openid=resident_id(tracker),
                                       context=conversation_context(tracker), channel=input_channel(tracker),
                                       now=now)
                number = ticket.number
        except SQLAlchemyError:
            apologise_store_failure(dispatcher, tracker, "recording a request for a person")
            return left
        dispatcher.utter_message(text=replies.human_requested(number, rules, now))
        return left + [SlotSet("last_ticket_number", number)]
