"""Rasa graph component: the ResponseSelector, asked only about messages of its retrieval intent.

Rasa's ResponseSelector runs its network on every message, though its answer (which FAQ topic)
is read only when the message's intent is the retrieval intent (`faq`; actions/knowledge.py).
It is 5–6 ms a message, a tenth of a turn (docs/profile.md). Placed after the intent
classifiers, this one skips the other messages: a 报修 or a room number gets no FAQ topic
instead of a topic nobody reads. Trained exactly as Rasa's own.
"""
from __future__ import annotations

from typing import List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class RetrievalIntentResponseSelector(ResponseSelector):
    def wants(self, message: Message) -> bool:
        """Whether the message's intent (as the classifiers before this one left it) is ours."""
        intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        return self.retrieval_intent is None or intent == self.retrieval_intent

    def process(self, messages: List[Message]) -> List[Message]:
        super().process([message for message in messages if self.wants(message)])
        return messages
