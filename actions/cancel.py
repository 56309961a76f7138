"""Cancel (取消): the form in progress, or a ticket nobody has started yet."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions.common import apologise_store_failure, first_value, input_channel, resident_id
from actions.complaint import COMPLAINT_SLOTS
from actions.repair import REPAIR_SLOTS
from bot.tickets import TicketNotCancellable, cancel_by_resident, cancellable_tickets, find_ticket
from bot import runtime

_FORM_LABELS = {"repair_form": "报修", "complaint_form": "投诉"}


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
        label = _FORM_LABELS.get(form, "当前")
        dispatcher.utter_message(text=f"好的，已为您取消本次{label}登记，没有生成工单。还有其他需要随时告诉我。")
        slots = REPAIR_SLOTS if form == "repair_form" else COMPLAINT_SLOTS
        return [ActiveLoop(None), SlotSet("requested_slot", None)] + [SlotSet(s, None) for s in slots]

    @staticmethod
    def _cancel_ticket(dispatcher: CollectingDispatcher, tracker: Tracker) -> List[EventType]:
        openid = resident_id(tracker)
        number = first_value(tracker.get_slot("ticket_number"))
        try:
            with runtime.get_store().transaction() as session:
                if number:
                    ticket = find_ticket(session, str(number))
                    if ticket is None or ticket.resident is None or ticket.resident.openid != openid:
                        dispatcher.utter_message(text=f"没有找到您名下的工单 {number}，请核对一下工单号。")
                        return [SlotSet("ticket_number", None)]
                    targets = [ticket]
                else:
                    targets = list(cancellable_tickets(session, openid))
                if not targets:
                    dispatcher.utter_message(text="您目前没有可以撤销的工单（已开始处理的工单无法在线撤销，"
                                                  "如有需要可以转人工客服）。")
                    return []
                if len(targets) > 1:
                    numbers = "、".join(t.number for t in targets)
                    dispatcher.utter_message(text=f"您有多个未开始处理的工单：{numbers}。"
                                                  "请回复“取消 + 工单号”，告诉我要撤销哪一个。")
                    return []
                ticket = targets[0]
                try:
                    cancel_by_resident(session, ticket, openid=openid, channel=input_channel(tracker))
                except TicketNotCancellable:
                    dispatcher.utter_message(text=f"工单 {ticket.number} 已经在处理中，无法在线撤销；"
                                                  "如需更改，请回复“转人工”。")
                    return [SlotSet("ticket_number", None)]
                cancelled = ticket.number
        except SQLAlchemyError:
            apologise_store_failure(dispatcher, tracker, "cancelling a ticket")
            return []
        dispatcher.utter_message(text=f"已为您撤销工单 {cancelled}。如以后还需要，随时再告诉我。")
        return [SlotSet("ticket_number", None)]
