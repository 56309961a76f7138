"""Progress enquiries (进度查询): the resident's open tickets with status and due time."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.common import apologise_store_failure, resident_id
from bot import replies, runtime
from bot.tickets import resident_tickets


class ActionCheckStatus(Action):
    def name(self) -> Text:
        return "action_check_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        rules = runtime.get_rules()
        try:
            with runtime.get_store().transaction() as session:
                message = replies.status_overview(list(resident_tickets(session, resident_id(tracker))), rules)
        except SQLAlchemyError:
            apologise_store_failure(dispatcher, tracker, "listing tickets")
            return []
        dispatcher.utter_message(text=message)
        return []
