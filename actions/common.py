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


def extract_case_text(tracker: Tracker, slot: str, opening_intent: str,
                      answer_intents: frozenset[str]) -> dict[str, Any]:
    """Free-text case description: from the message that opened the form (it usually
    already says what happened), or from the answer to the form's question."""
    requested = tracker.get_slot("requested_slot")
    intent = latest_intent(tracker)
    if (requested is None and intent == opening_intent) or (requested == slot and intent in answer_intents):
        return {slot: latest_text(tracker)}
    return {}


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


def project_rules() -> ProjectRules:
    return context.get_rules()


def with_store(dispatcher: CollectingDispatcher, tracker: Tracker, what: Text,
               work: Callable[["Session", ProjectRules], T]) -> Optional[T]:
    """Run `work` in one transaction of the ticket store.

    When the store fails, nothing of the work is kept, the resident hears a short apology
    (utter_store_unavailable) and the result is None; `work` itself returns a value.
    """
    try:
        with context.unit_of_work() as session:
            return work(session, context.get_rules())
    except StoreUnavailable:
        log.exception("store failure while %s for resident %s", what, mask_openid(resident_id(tracker)))
        dispatcher.utter_message(response="utter_store_unavailable")
        return None
