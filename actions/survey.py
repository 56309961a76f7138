"""Satisfaction surveys in the conversation: opened by the worker through an external
intent, answered in the resident's next message(s), recorded by `bot.cases.surveys`."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import input_channel, latest_intent, latest_text, project_rules, resident_id, with_store
from bot.cases import context, surveys
from bot.cases.tickets import open_repair_ticket
from bot.core import replies
from bot.core.rules import ProjectRules
from bot.core.urgency import assess

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

SURVEY_SLOTS = ("survey_reply", "survey_comment", "survey_attempts")
OPEN_INTENT = "EXTERNAL_satisfaction_survey"
NO_COMMENT = "-"  # the comment slot is filled but the resident had nothing to add


def _survey_id(tracker: Tracker) -> Optional[int]:
    value = tracker.get_slot("survey_id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _labels(survey_id: Optional[int]) -> List[str]:
    with context.unit_of_work() as session:
        survey = surveys.survey_by_id(session, survey_id)
        company = context.get_company()
        rules = company.rules(survey.project) if survey and company.knows(survey.project) else company.default
        return surveys.dimension_labels(survey, rules)


def _dimensions(survey_id: Optional[int]) -> List[str]:
    with context.unit_of_work() as session:
        return surveys.dimension_keys(surveys.survey_by_id(session, survey_id))


def _forget_survey() -> List[EventType]:
    return [SlotSet("survey_id", None)] + [SlotSet(slot, None) for slot in SURVEY_SLOTS]


class ActionStartSurvey(Action):
    """Runs on the worker's external intent: remember which survey this conversation answers."""

    def name(self) -> Text:
        return "action_start_survey"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        survey_id = next(tracker.get_latest_entity_values("survey_id"), None)
        return _forget_survey() + [SlotSet("survey_id", str(survey_id) if survey_id is not None else None)]


class ActionAskSurveyReply(Action):
    """The survey question: in full when the survey opens, shorter help when asked again."""

    def name(self) -> Text:
        return "action_ask_survey_reply"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        survey_id = _survey_id(tracker)
        if latest_intent(tracker) != OPEN_INTENT:
            dispatcher.utter_message(text=replies.survey_ask_again(_labels(survey_id)))
            return []
        with context.unit_of_work() as session:
            survey = surveys.survey_by_id(session, survey_id)
            rules = project_rules(tracker)
            text = replies.survey_prompt(survey.ticket if survey else None, surveys.dimension_labels(survey, rules),
                                         rules)
        dispatcher.utter_message(text=text)
        return []


class ActionAskSurveyComment(Action):
    def name(self) -> Text:
        return "action_ask_survey_comment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        dispatcher.utter_message(text=replies.survey_ask_comment())
        return []


class ValidateSurveyForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_survey_form"

    async def validate_survey_reply(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> Dict[Text, Any]:
        if value is None:  # a reset by action_start_survey, not an answer
            return {"survey_reply": None}
        text = str(value).strip()
        rules = project_rules(tracker)
        answer = surveys.parse_answer(text, _dimensions(_survey_id(tracker)), rules.follow_up.dissatisfied_max_score)
        if not answer.understood and not tracker.get_slot("survey_attempts"):
            return {"survey_reply": None, "survey_attempts": 1.0}  # asked again, once
        filled: Dict[Text, Any] = {"survey_reply": text}
        # A comment already given, a complaint about the result, or a second unclear reply
        # (kept as the comment for staff) ends the survey without another question.
        if answer.comment or answer.verdict is surveys.Verdict.DISSATISFIED or not answer.understood:
            filled["survey_comment"] = NO_COMMENT
        return filled

    async def validate_survey_comment(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: DomainDict) -> Dict[Text, Any]:
        if value is None:
            return {"survey_comment": None}
        text = str(value).strip()
        return {"survey_comment": NO_COMMENT if not text or surveys.is_nothing_more(text) else text}


class ActionSubmitSurvey(Action):
    def name(self) -> Text:
        return "action_submit_survey"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        reply = str(tracker.get_slot("survey_reply") or "")
        comment = str(tracker.get_slot("survey_comment") or "")
        comment = "" if comment == NO_COMMENT else comment
        answer_survey(dispatcher, tracker, _survey_id(tracker), reply, extra_comment=comment,
                      full_text=f"{reply}\n{comment}" if comment else reply)
        return _forget_survey()


class ActionAnswerSurvey(Action):
    """A survey answer outside the survey form (the conversation session had expired)."""

    def name(self) -> Text:
        return "action_answer_survey"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        text = latest_text(tracker)
        answer_survey(dispatcher, tracker, None, text, extra_comment="", full_text=text)
        return []


class ActionEndSurvey(Action):
    """The worker closed an unanswered survey: leave the form quietly."""

    def name(self) -> Text:
        return "action_end_survey"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        events = _forget_survey()
        if (tracker.active_loop or {}).get("name") == "survey_form":
            events = [ActiveLoop(None), SlotSet("requested_slot", None)] + events
        return events


def answer_survey(dispatcher: CollectingDispatcher, tracker: Tracker, survey_id: Optional[int], reply: str, *,
                  extra_comment: str, full_text: str) -> None:
    openid = resident_id(tracker)

    def record(session: Session, rules: ProjectRules) -> str:
        """What to tell the resident."""
        survey = surveys.survey_by_id(session, survey_id) if survey_id else surveys.open_survey_of(session, openid)
        if survey is None or survey.resident is None or survey.resident.openid != openid:
            return replies.survey_recorded()
        answer = surveys.read_reply(reply, survey.dimensions, rules.follow_up.dissatisfied_max_score, extra_comment)
        outcome = surveys.record_answer(session, rules, survey, answer, text=full_text,
                                        channel=input_channel(tracker))
        ticket = survey.ticket
        if assess(full_text, rules.urgency).certain:
            # "又漏水了，水流了一地" in a survey answer jumps the queue: an emergency repair now.
            repair = open_repair_ticket(session, rules, openid=openid, description=full_text,
                                        room=ticket.room if ticket else None, visit_time=None,
                                        channel=input_channel(tracker))
            return replies.repair_confirmation(repair, rules)
        if outcome is surveys.Outcome.REOPENED and ticket is not None:
            return replies.survey_reopened(ticket, rules)
        if outcome is surveys.Outcome.CLOSED:
            return replies.survey_closed_thanks(ticket.number if ticket else None)
        if not answer.understood:
            return replies.survey_unclear_recorded()
        return replies.survey_recorded()

    message = with_store(dispatcher, tracker, "recording a survey answer", record)
    if message is not None:
        dispatcher.utter_message(text=message)
