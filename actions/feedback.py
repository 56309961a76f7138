"""Suggestions (建议) and praise (表扬), recorded as tickets of their kind."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.common import apologise_store_failure, input_channel, latest_text, resident_id
from bot import replies, runtime
from bot.models import TicketKind
from bot.tickets import record_feedback


class _RecordFeedback(Action, ABC):
    kind: TicketKind

    @abstractmethod
    def name(self) -> Text:
        ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        rules = runtime.get_rules()
        try:
            with runtime.get_store().transaction() as session:
                ticket = record_feedback(session, rules, kind=self.kind, openid=resident_id(tracker),
                                         text=latest_text(tracker), channel=input_channel(tracker))
                message = replies.feedback_confirmation(ticket, rules)
                number = ticket.number
        except SQLAlchemyError:
            apologise_store_failure(dispatcher, tracker, f"recording {self.kind.value}")
            return []
        dispatcher.utter_message(text=message)
        return [SlotSet("last_ticket_number", number)]


class ActionRecordSuggestion(_RecordFeedback):
    kind = TicketKind.SUGGESTION

    def name(self) -> Text:
        return "action_record_suggestion"


class ActionRecordPraise(_RecordFeedback):
    kind = TicketKind.PRAISE

    def name(self) -> Text:
        return "action_record_praise"
