"""Complaint (投诉) form: what happened, where, what the resident wants; then open the ticket."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Text, Tuple

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    advice_given,
    advise_now,
    emergency_addendum,
    extract_case_text,
    first_value,
    free_text_answer,
    input_channel,
    is_substantive,
    latest_text,
    project_rules,
    resident_id,
    with_store,
)
from bot.cases.tickets import linked_repair, open_complaint_ticket, open_repair_ticket
from bot.core import replies
from bot.core.rooms import normalise_room
from bot.core.rules import ProjectRules
from bot.core.urgency import assess

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

COMPLAINT_SLOTS = ("complaint_description", "complaint_location", "complaint_demand")
_NO_PLACE = {"无", "没有", "不涉及", "不用", "没", "不知道", "都有", "不清楚"}
MAX_LOCATION = 64


class ValidateComplaintForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_complaint_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        description = tracker.get_slot("complaint_description") or ""
        if description and assess(description, project_rules(tracker).urgency).certain:
            # Water through the ceiling told as a complaint is still an emergency: only where,
            # then it is opened as an emergency repair.
            return [slot for slot in domain_slots if slot != "complaint_demand"]
        return domain_slots

    async def extract_complaint_description(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                            domain: DomainDict) -> Dict[Text, Any]:
        return (extract_case_text(tracker, "complaint_description", "file_complaint")
                or emergency_addendum(tracker, "complaint_description", project_rules(tracker)))

    async def extract_complaint_location(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                         domain: DomainDict) -> Dict[Text, Any]:
        # A room named anywhere in the complaint is its place; otherwise the answer to the question.
        room = next(tracker.get_latest_entity_values("room"), None)
        if room and not tracker.get_slot("complaint_location"):
            return {"complaint_location": normalise_room(latest_text(tracker)) or room}
        return free_text_answer(tracker, "complaint_location")

    async def extract_complaint_demand(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                       domain: DomainDict) -> Dict[Text, Any]:
        return free_text_answer(tracker, "complaint_demand")

    def validate_complaint_description(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                       tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        text = str(slot_value or "").strip()
        if not is_substantive(text):
            return {"complaint_description": None}
        if not tracker.get_slot("complaint_location"):
            advise_now(dispatcher, tracker, text, project_rules(tracker))
        return {"complaint_description": text}

    def validate_complaint_location(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        raw = str(first_value(slot_value) or "").strip()
        room = normalise_room(raw)
        if room:
            return {"complaint_location": room}
        if tracker.get_slot("requested_slot") != "complaint_location" or not raw:
            # A room-like entity that does not parse, outside the question: ask properly later.
            return {"complaint_location": None}
        if raw.strip("。.！! ") in _NO_PLACE:
            return {"complaint_location": "不涉及"}
        return {"complaint_location": raw[:MAX_LOCATION]}

    def validate_complaint_demand(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        text = str(slot_value or "").strip()
        return {"complaint_demand": text or None}


class ActionSubmitComplaintForm(Action):
    def name(self) -> Text:
        return "action_submit_complaint_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        location = tracker.get_slot("complaint_location")
        room = normalise_room(location)
        description = tracker.get_slot("complaint_description") or ""
        if location and not room and location != "不涉及":
            description = f"{description}\n地点：{location}"
        reset = [SlotSet(slot, None) for slot in COMPLAINT_SLOTS]
        def open_ticket(session: Session, rules: ProjectRules) -> Tuple[str, str]:
            if assess(description, rules.urgency).certain:
                repair = open_repair_ticket(session, rules, openid=resident_id(tracker), description=description,
                                            room=room, visit_time=None, channel=input_channel(tracker))
                advised = advice_given(tracker, description, rules)
                return replies.repair_confirmation(repair, rules, advice_given=advised), repair.number
            ticket = open_complaint_ticket(
                session, rules,
                openid=resident_id(tracker),
                description=description,
                demand=tracker.get_slot("complaint_demand"),
                room=room,
                channel=input_channel(tracker),
            )
            return replies.complaint_confirmation(ticket, rules, linked_repair(ticket)), ticket.number

        opened = with_store(dispatcher, tracker, "opening a complaint ticket", open_ticket)
        if opened is None:
            return reset
        message, number = opened
        dispatcher.utter_message(text=message)
        return reset + [SlotSet("last_ticket_number", number)]
