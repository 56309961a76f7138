"""Self-service on the household file: a new phone number (phone_change_form) and 复议 of a finished case."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import first_value, input_channel, latest_intent, latest_text, resident_id, with_store
from bot.cases import context
from bot.cases.context import StoreUnavailable
from bot.cases.household import PhoneChange, change_phone
from bot.cases.residents import bound_resident
from bot.cases.reviews import Review, ReviewResult, request_review
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.phones import normalise_phone
from bot.core.references import case_reference
from bot.core.rules import ProjectRules
from bot.core.self_service import new_phone_in

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PHONE_SLOT = "new_phone"


def phone_in(tracker: Tracker) -> Optional[str]:
    """The new mobile number in the latest message (also typed 139-1234-5678), or the model's phone entity."""
    entity = first_value(next(tracker.get_latest_entity_values("phone"), None))
    return new_phone_in(latest_text(tracker)) or normalise_phone(str(entity or ""))


class ValidatePhoneChangeForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_phone_change_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        """Only a bound household has a phone on file: the others are told how to bind, not asked for a number."""
        try:
            with context.unit_of_work() as session:
                bound = bound_resident(session, resident_id(tracker)) is not None
        except StoreUnavailable:
            return []  # the submit action says the store is down
        return domain_slots if bound else []

    async def extract_new_phone(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: DomainDict) -> Dict[Text, Any]:
        """The number in the message that opened the form ("手机号换成139…"), or in the answer to its question."""
        requested = tracker.get_slot("requested_slot")
        if requested == PHONE_SLOT or (requested is None and latest_intent(tracker) == "change_phone"):
            phone = phone_in(tracker)
            return {PHONE_SLOT: phone} if phone else {}
        return {}

    def validate_new_phone(self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: DomainDict) -> Dict[Text, Any]:
        return {PHONE_SLOT: normalise_phone(str(first_value(slot_value) or ""))}


class ActionChangePhone(Action):
    """The form's submit: apply the number if the roster confirms it, else a request for staff to verify."""

    def name(self) -> Text:
        return "action_change_phone"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        phone = tracker.get_slot(PHONE_SLOT)
        openid = resident_id(tracker)

        def apply(session: Session, rules: ProjectRules) -> tuple[Optional[str], Optional[str]]:
            """(what to tell the resident, the request's number)"""
            if not phone:
                return (replies.phone_change_needs_binding() if bound_resident(session, openid) is None else None,
                        None)
            result = change_phone(session, rules, openid=openid, phone=str(phone), said=latest_text(tracker),
                                  channel=input_channel(tracker))
            if result.outcome is PhoneChange.NOT_BOUND:
                return replies.phone_change_needs_binding(), None
            if result.outcome is PhoneChange.UNCHANGED:
                return replies.phone_unchanged(result.phone), None
            if result.outcome is PhoneChange.APPLIED:
                return replies.phone_changed(result.phone), None
            return replies.phone_change_pending(result.follow_up_number or "", result.phone), result.follow_up_number

        events: List[EventType] = [SlotSet(PHONE_SLOT, None)]
        answer = with_store(dispatcher, tracker, "changing the phone on file", apply)
        if answer is None:
            return events
        message, number = answer
        if message is None:
            dispatcher.utter_message(response="utter_ask_new_phone")
            return events
        dispatcher.utter_message(text=message)
        return events + ([SlotSet("last_ticket_number", number)] if number else [])


def review_reply(result: ReviewResult, rules: ProjectRules) -> str:
    number, review = result.number or "", result.review_number or ""
    days = rules.self_service.review_within_days
    if result.outcome is Review.REOPENED:
        return replies.review_reopened(review, result.due_at, rules)
    if result.outcome is Review.OPENED:
        return replies.review_opened(number, review, result.due_at, rules)
    if result.outcome is Review.ALREADY:
        return replies.review_already(number, review)
    if result.outcome is Review.STILL_OPEN:
        return replies.review_still_open(number)
    if result.outcome is Review.CANCELLED:
        return replies.review_cancelled(number)
    if result.outcome is Review.TOO_OLD:
        return replies.review_too_old(number, days)
    if result.outcome is Review.NOT_FOUND:
        # Not theirs, or nobody's: the same words, and no details either way.
        return replies.ticket_not_found(number)
    return replies.review_nothing(days)


class ActionRequestReview(Action):
    """复议: the case the resident names, or their most recently finished one."""

    def name(self) -> Text:
        return "action_request_review"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        text = latest_text(tracker)
        reference = case_reference(text)

        def review(session: Session, rules: ProjectRules) -> tuple[str, Optional[str]]:
            result = request_review(session, rules, openid=resident_id(tracker), reference=reference, words=text,
                                    channel=input_channel(tracker), now=utcnow())
            opened = result.outcome in (Review.REOPENED, Review.OPENED, Review.ALREADY)
            return review_reply(result, rules), result.review_number if opened else None

        answer = with_store(dispatcher, tracker, "recording a review request", review)
        if answer is None:
            return []
        message, number = answer
        dispatcher.utter_message(text=message)
        return [SlotSet("last_ticket_number", number)] if number else []
