"""Suggestions (建议) and praise (表扬), recorded as tickets of their kind."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Dict, List, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import input_channel, latest_text, resident_id, with_store
from bot.cases.tickets import record_feedback
from bot.core import replies
from bot.core.kinds import TicketKind
from bot.core.rules import ProjectRules

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
class _RecordFeedback(Action, ABC):
    kind: TicketKind

    @abstractmethod
    def name(self) -> Text:
        ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        def record(session: Session, rules: ProjectRules) -> Tuple[str, str]:
            ticket = record_feedback(session, rules, kind=self.kind, openid=resident_id(tracker),
                                     text=latest_text(tracker), channel=input_channel(tracker))
            return replies.feedback_confirmation(ticket, rules), ticket.number

        recorded = with_store(dispatcher, tracker, f"recording {self.kind.value}", record)
        if recorded is None:
            return []
        message, number = recorded
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
