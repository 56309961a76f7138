"""Progress enquiries (进度查询): the case the resident names, or their open cases and those finished
lately (`self_service.progress_recent_days`), with status, who holds each (their role) and due time;
asked for the past ("我今年报过哪些单"), their cases of the past year, closed ones too."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import latest_text, resident_id, with_store
from bot.cases.household import case_history
from bot.cases.progress import resident_progress
from bot.cases.tickets import referenced_case
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.references import case_reference
from bot.core.self_service import asks_for_history


class ActionCheckStatus(Action):
    def name(self) -> Text:
        return "action_check_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        text = latest_text(tracker)
        reference = case_reference(text)
        history = asks_for_history(text)

        def answer(session, rules) -> str:  # type: ignore[no-untyped-def]
            openid, now = resident_id(tracker), utcnow()

            def overview() -> str:
                if history:
                    return replies.case_history(list(case_history(session, rules, openid, now)),
                                                rules.self_service.history_months, rules, now)
                return replies.progress_overview(resident_progress(session, rules, openid, now), rules, now)

            if reference is None:
                return overview()
            case = referenced_case(session, openid, reference, now)
            if case is not None:
                return replies.case_status(case, rules)
            # Not theirs, or no such case: the same answer, and no details either way.
            return replies.ticket_not_found(reference.number) if reference.number else overview()

        message = with_store(dispatcher, tracker, "looking up tickets", answer)
        if message is not None:
            dispatcher.utter_message(text=message)
        return []
