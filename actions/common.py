"""Helpers shared by the actions: who is talking, on which channel, and safe store access."""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Callable, Optional, Text, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.cases import context
from bot.cases.context import StoreUnavailable
from bot.core.privacy import mask_openid
from bot.core.rules import ProjectRules
from bot.core.urgency import assess

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")
log = logging.getLogger(__name__)

# Messages that name a request but say nothing about it ("我要报修").
_FILLER = re.compile(
    r"(我|我们|家里)?(要|想|需要)?(帮我|麻烦|请)?(报修|保修|报个修|维修|修理|投诉|反映|反馈)(一下|个问题|问题)?"
    r"|你好|您好|请问|谢谢|在吗|客服|物业"
    r"|[\s，。！？!?,.、~～…:：;；]"
)


def resident_id(tracker: Tracker) -> str:
    """The conversation's sender is the resident's WeChat openid (or a test id)."""
    return tracker.sender_id


def input_channel(tracker: Tracker) -> str:
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    return str(metadata.get("channel") or tracker.get_latest_input_channel() or "unknown")[:16]


def latest_text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "").strip()


def latest_intent(tracker: Tracker) -> str:
    return str(((tracker.latest_message or {}).get("intent") or {}).get("name") or "")


def is_substantive(text: str) -> bool:
    """True when a message says more than 'I want to report something'."""
    if text.startswith("/"):  # a button payload such as /report_repair carries no description
        return False
    return len(_FILLER.sub("", text)) >= 2


# The ways out of a form's question: the model must say so, and the message must read as
# one. Asking for a person is explicit wherever it stands (别跟机器人说了，给我转人工); a cancel
# must be short or open the message (算了不投诉了): a long answer the model happens to call
# "cancel" ("希望别再这样了，不然我取消续约") is still an answer.
WAY_OUT_INTENTS = frozenset({"cancel", "request_human"})
_HUMAN_WORDS = re.compile(r"人工|真人|客服|接线员|转人")
_CANCEL_WORDS = re.compile(r"取消|撤销|撤回|不弄了|不修了|不报了|不投诉了|不用了|不要了|算了|不需要|先这样")
_SHORT_WAY_OUT = 10  # characters, punctuation not counted
_WAY_OUT_OPENING = 6  # a cancel word must start within this many characters


def is_way_out(tracker: Tracker) -> bool:
    """True when the latest message leaves the form instead of answering its question."""
    intent = latest_intent(tracker)
    if intent not in WAY_OUT_INTENTS:
        return False
    text = re.sub(r"[\s，。！？!?,.、~～…]", "", latest_text(tracker))
    if len(text) <= _SHORT_WAY_OUT or (intent == "request_human" and _HUMAN_WORDS.search(text)):
        return True
    found = _CANCEL_WORDS.search(text)
    return found is not None and found.start() < _WAY_OUT_OPENING


def free_text_answer(tracker: Tracker, slot: str) -> dict[str, Any]:
    """The answer to a free-text question is the next message, whatever the model thinks
    it is (an answer often sounds like another request: "今天就派人来修 并且给个解释"),
    unless it is a way out of the form. Emergencies are read by the form that asks."""
    if tracker.get_slot("requested_slot") != slot or is_way_out(tracker):
        return {}
    text = latest_text(tracker)
    if not text or text.startswith("/"):
        return {}
    return {slot: text}


def emergency_addendum(tracker: Tracker, description_slot: str, rules: ProjectRules) -> dict[str, Any]:
    """An emergency told while the form asks something else jumps the queue: it joins the
    case's description, which makes the case an emergency (the forms then ask only what
    is needed to send someone)."""
    requested = tracker.get_slot("requested_slot")
    text = latest_text(tracker)
    if requested in (None, description_slot) or not text or not assess(text, rules.urgency).certain:
        return {}
    current = str(tracker.get_slot(description_slot) or "").strip()
    return {description_slot: f"{current}；{text}" if current else text}


def advise_now(dispatcher: CollectingDispatcher, tracker: Tracker, description: str, rules: ProjectRules) -> None:
    """Where life is at risk, what to do now is said at once, before the form's next question."""
    urgency = assess(description, rules.urgency)
    if urgency.life_risk and urgency.advice and not already_said(tracker, urgency.advice):
        dispatcher.utter_message(text=urgency.advice)


def advice_given(tracker: Tracker, description: str, rules: ProjectRules) -> bool:
    """Whether the form already said this emergency's advice (so the confirmation need not)."""
    advice = assess(description, rules.urgency).advice
    return bool(advice) and already_said(tracker, advice)


def already_said(tracker: Tracker, text: str) -> bool:
    """True when the assistant said `text` in this conversation since the resident's
    request began (the last form activation)."""
    for event in reversed(tracker.events):
        if event.get("event") == "bot" and text in str(event.get("text") or ""):
            return True
        if event.get("event") == "active_loop" and event.get("name") is None:
            return False
    return False


def extract_case_text(tracker: Tracker, slot: str, opening_intent: str) -> dict[str, Any]:
    """Free-text case description: from the message that opened the form (it usually
    already says what happened), or from the answer to the form's question."""
    if tracker.get_slot("requested_slot") is None and latest_intent(tracker) == opening_intent:
        return {slot: latest_text(tracker)}
    return free_text_answer(tracker, slot)


def value_before_this_turn(tracker: Tracker, slot: str) -> Any:
    """A slot's value before the latest user message (forms overwrite it on extraction)."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            seen_user = True
        elif seen_user and event.get("event") == "slot" and event.get("name") == slot:
            return event.get("value")
    return None


def first_value(value: Any) -> Any:
    """Entities found by two extractors arrive as a list; take the first usable one."""
    if isinstance(value, list):
        return next((item for item in value if item), None)
    return value


# Where project_rules keeps its answer on the request's Tracker (see there).
_RULES_OF_THIS_REQUEST = "_wuye_project_rules"


def project_rules(tracker: Tracker) -> ProjectRules:
    """The rules of the resident's project (their numbers, facts and service hours).

    Looked up once per action call: rasa_sdk builds a new Tracker for every request, and a
    form's validation asks up to five times in one call (rasa_sdk runs `required_slots` three
    times, then the extractors and validators) — each a transaction and a query of its own."""
    rules = tracker.__dict__.get(_RULES_OF_THIS_REQUEST)
    if not isinstance(rules, ProjectRules):
        rules = context.rules_of_resident(resident_id(tracker))
        tracker.__dict__[_RULES_OF_THIS_REQUEST] = rules
    return rules


def with_store(dispatcher: CollectingDispatcher, tracker: Tracker, what: Text,
               work: Callable[["Session", ProjectRules], T], room: Optional[Text] = None) -> Optional[T]:
    """Run `work` in one transaction of the ticket store, with the rules of the resident's project
    (of the household with `room`, for an owner of flats in two projects).

    When the store fails, nothing of the work is kept, the resident hears a short apology
    (utter_store_unavailable) and the result is None; `work` itself returns a value.
    """
    try:
        with context.unit_of_work() as session:
            return work(session, context.rules_in_session(session, resident_id(tracker), room))
    except StoreUnavailable:
        log.exception("store failure while %s for resident %s", what, mask_openid(resident_id(tracker)))
        dispatcher.utter_message(response="utter_store_unavailable")
        return None
