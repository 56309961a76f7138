"""Cancel (取消): the form in progress, or a ticket nobody has started yet."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.common import apologise_store_failure, input_channel, resident_id
from actions.forms import leave_form
from bot import replies, runtime
from bot.tickets import TicketNotCancellable, cancel_by_resident, cancellable_tickets, find_ticket


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
        try:
            with runtime.get_store().transaction() as session:
                if number:
                    ticket = find_ticket(session, str(number))
                    if ticket is None or ticket.resident is None or ticket.resident.openid != openid:
                        dispatcher.utter_message(text=replies.ticket_not_found(str(number)))
                        return []
                    targets = [ticket]
                else:
                    targets = list(cancellable_tickets(session, openid))
                if not targets:
                    dispatcher.utter_message(text=replies.nothing_to_cancel())
                    return []
                if len(targets) > 1:
                    dispatcher.utter_message(text=replies.which_to_cancel([t.number for t in targets]))
                    return []
                ticket = targets[0]
                try:
                    cancel_by_resident(session, runtime.get_rules(), ticket, openid=openid, channel=input_channel(tracker))
                except TicketNotCancellable:
                    dispatcher.utter_message(text=replies.already_started(ticket.number))
                    return []
                cancelled = ticket.number
        except SQLAlchemyError:
            apologise_store_failure(dispatcher, tracker, "cancelling a ticket")
            return []
        dispatcher.utter_message(text=replies.ticket_cancelled(cancelled))
        return []
