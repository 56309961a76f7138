"""Low NLU confidence: ask which of the likeliest requests the resident meant.

Rasa's two-stage fallback calls `action_default_ask_affirmation`; ours offers up to two
candidate requests in words the resident can simply type back (WeChat shows no buttons),
and buttons for channels that do.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from bot.core.replies import INTENT_CHOICES_ZH, did_you_mean

MAX_CHOICES = 2


def likely_intents(tracker: Tracker) -> List[str]:
    ranking = (tracker.latest_message or {}).get("intent_ranking") or []
    names = [item.get("name") for item in ranking]
    return [name for name in names if name in INTENT_CHOICES_ZH][:MAX_CHOICES]


class ActionDefaultAskAffirmation(Action):
    def name(self) -> Text:
        return "action_default_ask_affirmation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        intents = likely_intents(tracker)
        if not intents:
            dispatcher.utter_message(response="utter_ask_rephrase")
            return []
        labels = [INTENT_CHOICES_ZH[name] for name in intents]
        buttons = [{"title": label, "payload": f"/{name}"} for name, label in zip(intents, labels)]
        buttons.append({"title": "都不是", "payload": "/out_of_scope"})
        dispatcher.utter_message(text=did_you_mean(labels), buttons=buttons)
        return []
