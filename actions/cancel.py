"""Cancel (取消): the form in progress, or a ticket nobody has started yet."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import input_channel, resident_id, with_store
from actions.forms import leave_form
from bot.cases.tickets import TicketNotCancellable, cancel_by_resident, cancellable_tickets, find_ticket
from bot.core import replies
from bot.core.rules import ProjectRules

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
class ActionCancel(Action):
    def name(self) -> Text:
        return "action_cancel"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        form = (tracker.active_loop or {}).get("name")
        if form:
            return self._cancel_form(dispatcher, form)
        return self._cancel_ticket(dispatcher, tracker)

    @staticmethod
    def _cancel_form(dispatcher: CollectingDispatcher, form: str) -> List[EventType]:
        dispatcher.utter_message(text=replies.form_cancelled(form))
        return leave_form(form)

    @staticmethod
    def _cancel_ticket(dispatcher: CollectingDispatcher, tracker: Tracker) -> List[EventType]:
        openid = resident_id(tracker)
        # Only a number named in this very message: an old one must never be cancelled by "取消".
        number = next(tracker.get_latest_entity_values("ticket_number"), None)

        def cancel(session: Session, rules: ProjectRules) -> str:
            """What to tell the resident."""
            if number:
                ticket = find_ticket(session, str(number))
                if ticket is None or ticket.resident is None or ticket.resident.openid != openid:
                    return replies.ticket_not_found(str(number))
                targets = [ticket]
            else:
                targets = list(cancellable_tickets(session, openid))
            if not targets:
                return replies.nothing_to_cancel()
            if len(targets) > 1:
                return replies.which_to_cancel([t.number for t in targets])
            ticket = targets[0]
            try:
                cancel_by_resident(session, rules, ticket, openid=openid, channel=input_channel(tracker))
            except TicketNotCancellable:
                return replies.already_started(ticket.number)
            return replies.ticket_cancelled(ticket.number)

        message = with_store(dispatcher, tracker, "cancelling a ticket", cancel)
        if message is not None:
            dispatcher.utter_message(text=message)
        return []
