"""Rasa graph component: convert Traditional Chinese input to Simplified before tokenising.

Listed first in config.yml's pipeline, so the tokenizer, featurizers, classifiers and
entity extractors, and the custom actions reading `latest_message["text"]`, only ever see
Simplified text. It learns nothing; training data passes through it too, so a
Traditional training example is treated like its Simplified twin.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.core.chinese import to_simplified


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class TraditionalToSimplified(GraphComponent):
    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "TraditionalToSimplified":
        return cls()

    @staticmethod
    def _convert(message: Message, keep_offsets: bool = False) -> None:
        text: Optional[str] = message.get(TEXT)
        if text:
            simplified = to_simplified(text)
            # A phrase conversion may change the length; annotated entity offsets would
            # then point at the wrong characters, so such an example stays as written.
            if simplified != text and not (keep_offsets and len(simplified) != len(text)):
                message.set(TEXT, simplified)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for message in training_data.training_examples:
            self._convert(message, keep_offsets=bool(message.get("entities")))
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._convert(message)
        return messages
