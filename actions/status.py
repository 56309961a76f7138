"""Progress enquiries (进度查询): the resident's open tickets with status and due time."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import resident_id, with_store
from bot.cases.tickets import resident_tickets
from bot.core import replies


class ActionCheckStatus(Action):
    def name(self) -> Text:
        return "action_check_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        message = with_store(dispatcher, tracker, "listing tickets", lambda session, rules: replies.status_overview(
            list(resident_tickets(session, resident_id(tracker))), rules))
        if message is not None:
            dispatcher.utter_message(text=message)
        return []
