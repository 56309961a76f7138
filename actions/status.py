"""Progress enquiries (进度查询): the case the resident names, or their open cases, with status and due time."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import latest_text, resident_id, with_store
from bot.cases.tickets import referenced_case, resident_tickets
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.references import case_reference


class ActionCheckStatus(Action):
    def name(self) -> Text:
        return "action_check_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        reference = case_reference(latest_text(tracker))

        def answer(session, rules) -> str:  # type: ignore[no-untyped-def]
            openid = resident_id(tracker)
            if reference is None:
                return replies.status_overview(list(resident_tickets(session, openid)), rules)
            case = referenced_case(session, openid, reference, utcnow())
            if case is not None:
                return replies.case_status(case, rules)
            # Not theirs, or no such case: the same answer, and no details either way.
            return replies.ticket_not_found(reference.number) if reference.number else \
                replies.status_overview(list(resident_tickets(session, openid)), rules)

        message = with_store(dispatcher, tracker, "looking up tickets", answer)
        if message is not None:
            dispatcher.utter_message(text=message)
        return []
