"""Right after a repair is filed, "不对 是1202" corrects that case's room instead of opening another."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import input_channel, latest_text, resident_id, with_store
from bot.cases.tickets import RoomNotCorrectable, correct_room, find_ticket
from bot.core import replies
from bot.core.rooms import corrected_room


class ActionCorrectTicketRoom(Action):
    def name(self) -> Text:
        return "action_correct_ticket_room"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        number = tracker.get_slot("last_ticket_number")
        text = latest_text(tracker)

        def correct(session, rules) -> Optional[str]:  # type: ignore[no-untyped-def]
            ticket = find_ticket(session, number) if number else None
            room = corrected_room(text, ticket.room) if ticket is not None else None
            if ticket is None or room is None:
                return None
            if room == ticket.room:
                return replies.room_unchanged(ticket.number, room)
            try:
                correct_room(session, ticket, room, openid=resident_id(tracker), channel=input_channel(tracker))
            except RoomNotCorrectable:
                return None
            return replies.ticket_room_corrected(ticket.number, room)

        message = with_store(dispatcher, tracker, "correcting a ticket's room", correct)
        if message is not None:
            dispatcher.utter_message(text=message)
        elif not dispatcher.messages:  # nothing to correct: say what we can do, as for any unclear message
            dispatcher.utter_message(response="utter_default")
        return []
