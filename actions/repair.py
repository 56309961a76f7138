"""Repair (报修) form: what is broken, where, and when to visit; then open the ticket."""
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
    value_before_this_turn,
    with_store,
)
from bot.cases import context
from bot.cases.context import StoreUnavailable
from bot.cases.residents import bound_room
from bot.cases.tickets import open_repair_ticket
from bot.core import replies
from bot.core.kinds import Priority
from bot.core.rooms import corrected_room, normalise_room
from bot.core.rules import ProjectRules
from bot.core.triage import repair_priority

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

REPAIR_SLOTS = ("repair_description", "room", "visit_time")
MAX_VISIT_TIME = 64


class ValidateRepairForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_repair_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        description = tracker.get_slot("repair_description") or ""
        if description and repair_priority(description, project_rules(tracker).urgency) is Priority.EMERGENCY:
            # Nobody waits for an appointment in an emergency: we come now.
            return [slot for slot in domain_slots if slot != "visit_time"]
        return domain_slots

    async def extract_repair_description(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                         domain: DomainDict) -> Dict[Text, Any]:
        return (extract_case_text(tracker, "repair_description", "report_repair")
                or emergency_addendum(tracker, "repair_description", project_rules(tracker)))

    async def extract_visit_time(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                 domain: DomainDict) -> Dict[Text, Any]:
        if emergency_addendum(tracker, "repair_description", project_rules(tracker)):
            return {}  # "漏水了！" is not a time to visit: we come now
        return free_text_answer(tracker, "visit_time")

    async def extract_room(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: DomainDict) -> Dict[Text, Any]:
        """A bound household's room is known: fill it when the form starts."""
        if tracker.get_slot("room") or tracker.get_slot("requested_slot") is not None:
            return {}
        try:
            with context.unit_of_work() as session:
                room = bound_room(session, resident_id(tracker))
        except StoreUnavailable:
            return {}  # we simply ask for the room
        return {"room": room} if room else {}

    def validate_repair_description(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        text = str(slot_value or "").strip()
        if not is_substantive(text):
            # "我要报修" says nothing yet: ask, without scolding.
            return {"repair_description": None}
        if not tracker.get_slot("room"):
            advise_now(dispatcher, tracker, text, project_rules(tracker))
        return {"repair_description": text}

    def validate_room(self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: DomainDict) -> Dict[Text, Any]:
        # The whole message first: it may correct itself ("501 哦不对 是502"), which a span cannot.
        room = normalise_room(latest_text(tracker)) or normalise_room(first_value(slot_value))
        if room is None:
            if tracker.get_slot("requested_slot") == "room":
                dispatcher.utter_message(response="utter_invalid_room")
                return {"room": None}
            # A stray number later in the form never erases a room we already have.
            return {"room": value_before_this_turn(tracker, "room")}
        previous = value_before_this_turn(tracker, "room")
        if previous and previous != room and tracker.get_slot("requested_slot") != "room":
            dispatcher.utter_message(text=replies.room_corrected(room))
        return {"room": room}

    def validate_visit_time(self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                            domain: DomainDict) -> Dict[Text, Any]:
        text = str(slot_value or "").strip()
        if not text:
            return {"visit_time": None}
        # "不对，是502" answers the room again, not the visit time: correct the room and ask again.
        previous = value_before_this_turn(tracker, "room")
        correction = corrected_room(text, previous)
        if correction:
            if "room" not in tracker.slots_to_validate() and correction != previous:
                dispatcher.utter_message(text=replies.room_corrected(correction))
            return {"visit_time": None, "room": correction}
        return {"visit_time": text[:MAX_VISIT_TIME]}


class ActionSubmitRepairForm(Action):
    def name(self) -> Text:
        return "action_submit_repair_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        def open_ticket(session: Session, rules: ProjectRules) -> Tuple[str, str]:
            ticket = open_repair_ticket(
                session, rules,
                openid=resident_id(tracker),
                description=tracker.get_slot("repair_description") or "",
                room=tracker.get_slot("room"),
                visit_time=tracker.get_slot("visit_time"),
                channel=input_channel(tracker),
            )
            advised = advice_given(tracker, ticket.description, rules)
            return replies.repair_confirmation(ticket, rules, advice_given=advised), ticket.number

        reset: List[EventType] = [SlotSet(slot, None) for slot in REPAIR_SLOTS]
        opened = with_store(dispatcher, tracker, "opening a repair ticket", open_ticket, room=tracker.get_slot("room"))
        if opened is None:
            return reset
        message, number = opened
        dispatcher.utter_message(text=message)
        return reset + [SlotSet("last_ticket_number", number)]

