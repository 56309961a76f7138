"""Rasa graph component: a linear character n-gram intent model blended with DIET.

DIET learns from jieba's segmentation; residents' typos, homophones and unpunctuated
voice input often segment badly, and short messages (在吗, 不弄了) give DIET little to
work with. A logistic regression over character 1–3-grams and jieba words is a second,
differently-biased opinion that does not depend on segmentation being right. Placed after
DIETClassifier, it rewrites `intent` and `intent_ranking` as a weighted average of the two
probability distributions, so FallbackClassifier (after it) judges the blended confidence.

The blend weight, C and the fallback thresholds in config.yml were chosen together by
5-fold cross-validation on the training data only (scripts/crossval_nlu.py, then
scripts/sweep_blend_weight.py); the held-out set played no part.

The model is persisted as plain JSON and a NumPy archive (vocabularies, idf weights,
coefficients), not a pickle: loading a model never executes code from it.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT, TEXT_TOKENS
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.sparse import csr_matrix, diags, hstack
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

MODEL_FILE = "ngram_intent.json"
WEIGHTS_FILE = "ngram_intent.npz"
# Room numbers, phone numbers and scores differ in every message; their shape matters,
# not their digits.
DIGIT = re.compile(r"\d")
# What sklearn's analyzers do before counting: runs of whitespace become one space (char n-grams);
# a word is any run of non-space characters (token_options).
WHITE_SPACES = re.compile(r"\s\s+")
WORD = re.compile(r"\S+")


def normalise(text: str) -> str:
    return DIGIT.sub("0", text.lower())


def char_document(message: Message) -> str:
    return normalise(message.get(TEXT) or "")


def word_document(message: Message) -> str:
    tokens = message.get(TEXT_TOKENS) or []
    return " ".join(normalise(token.text) for token in tokens if token.text.strip())


def token_options(analyzer: str) -> Dict[str, Any]:
    # Word documents are jieba tokens joined by spaces; any non-space run is one token
    # (sklearn's default pattern would drop one-character words such as 修 or 吗).
    return {"token_pattern": r"\S+"} if analyzer == "word" else {}


class TfidfSpace:
    """One fitted tf-idf feature space, rebuilt from its vocabulary and idf weights.

    Mirrors TfidfVectorizer(sublinear_tf=True, norm="l2") exactly, so a loaded model
    sees the same features as the one that was trained.
    """

    def __init__(self, analyzer: str, ngram_range: Tuple[int, int], vocabulary: Dict[str, int],
                 idf: Sequence[float]) -> None:
        self.analyzer = analyzer
        self.ngram_range = tuple(ngram_range)
        self.vocabulary = vocabulary
        self.idf = np.asarray(idf, dtype=np.float64)
        self._counter = CountVectorizer(analyzer=analyzer, ngram_range=self.ngram_range, lowercase=False,
                                        vocabulary=vocabulary, **token_options(analyzer))

    @classmethod
    def fit(cls, analyzer: str, ngram_range: Tuple[int, int], documents: List[str]) -> "TfidfSpace":
        fitted = TfidfVectorizer(analyzer=analyzer, ngram_range=ngram_range, lowercase=False, sublinear_tf=True,
                                 **token_options(analyzer)).fit(documents)
        vocabulary = {term: int(index) for term, index in fitted.vocabulary_.items()}
        return cls(analyzer, ngram_range, vocabulary, fitted.idf_.tolist())

    def transform(self, documents: List[str]) -> csr_matrix:
        counts = self._counter.transform(documents).astype(np.float64)
        counts.data = np.log(counts.data) + 1.0
        return normalize(counts @ diags(self.idf), norm="l2", copy=False).tocsr()

    def terms(self, document: str) -> List[str]:
        """The n-grams sklearn's analyzer of this space counts in `document` (lowercase=False)."""
        low, high = self.ngram_range
        if self.analyzer == "char":
            text = WHITE_SPACES.sub(" ", document)
            return [text[i:i + n] for n in range(low, min(high, len(text)) + 1) for i in range(len(text) - n + 1)]
        words = WORD.findall(document)
        return [" ".join(words[i:i + n]) for n in range(low, min(high, len(words)) + 1)
                for i in range(len(words) - n + 1)]

    def vector(self, document: str) -> Tuple[np.ndarray, np.ndarray]:
        """One document's row of `transform` as (columns, values), without sklearn's machinery:
        a message has a few dozen n-grams, the space tens of thousands of columns, and building
        a sparse matrix per message cost more than the rest of the component (docs/profile.md)."""
        counts = Counter(term for term in self.terms(document) if term in self.vocabulary)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        columns = np.fromiter((self.vocabulary[term] for term in counts), dtype=np.int64, count=len(counts))
        values = np.fromiter((math.log(count) + 1.0 for count in counts.values()), dtype=np.float64,
                             count=len(counts)) * self.idf[columns]
        norm = float(np.sqrt(values @ values))
        return columns, (values / norm if norm > 0 else values)

    def to_dict(self) -> Dict[str, Any]:
        return {"analyzer": self.analyzer, "ngram_range": list(self.ngram_range),
                "vocabulary": self.vocabulary, "idf": self.idf.tolist()}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TfidfSpace":
        return cls(data["analyzer"], tuple(data["ngram_range"]), data["vocabulary"], data["idf"])


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class CharNgramIntentBlend(IntentClassifier, GraphComponent):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # Share of this model in the blended distribution; DIET gets the rest.
            "blend_weight": 0.7,
            "max_char_ngram": 3,
            # Inverse regularisation strength of the logistic regression.
            "C": 100.0,
            "ranking_length": 10,
        }

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 spaces: Optional[List[TfidfSpace]] = None, classes: Optional[List[str]] = None,
                 coef: Optional[np.ndarray] = None, intercept: Optional[np.ndarray] = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.spaces = spaces or []
        self.classes = classes or []
        self.coef = coef
        self.intercept = intercept

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "CharNgramIntentBlend":
        return cls(config, model_storage, resource)

    @property
    def trained(self) -> bool:
        return self.coef is not None and len(self.classes) > 1

    def _features(self, messages: List[Message]) -> csr_matrix:
        chars = [char_document(message) for message in messages]
        words = [word_document(message) for message in messages]
        return hstack([self.spaces[0].transform(chars), self.spaces[1].transform(words)]).tocsr()

    def train(self, training_data: TrainingData) -> Resource:
        examples = [example for example in training_data.intent_examples if example.get(INTENT) and example.get(TEXT)]
        labels = [example.get(INTENT) for example in examples]
        if len(set(labels)) < 2:
            return self._resource
        self.spaces = [
            TfidfSpace.fit("char", (1, int(self.config["max_char_ngram"])), [char_document(m) for m in examples]),
            TfidfSpace.fit("word", (1, 1), [word_document(m) for m in examples]),
        ]
        model = LogisticRegression(C=float(self.config["C"]), class_weight="balanced", max_iter=3000,
                                   random_state=42)
        model.fit(self._features(examples), labels)
        self.classes = [str(label) for label in model.classes_]
        self.coef, self.intercept = model.coef_, model.intercept_
        self.persist()
        return self._resource

    def probabilities(self, messages: List[Message]) -> np.ndarray:
        """Multinomial logistic-regression probabilities, one row per message: the same numbers as
        the fitted model's (tests/assistant/test_nlu_components.py), computed from each message's own
        n-grams (TfidfSpace.vector), the columns of the coefficients they touch only."""
        assert self.coef is not None and self.intercept is not None
        offset = len(self.spaces[0].vocabulary)
        scores = np.empty((len(messages), len(self.classes)))
        for row, message in enumerate(messages):
            char_columns, char_values = self.spaces[0].vector(char_document(message))
            word_columns, word_values = self.spaces[1].vector(word_document(message))
            columns = np.concatenate([char_columns, word_columns + offset])
            values = np.concatenate([char_values, word_values])
            scores[row] = self.coef[:, columns] @ values + self.intercept
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def blend(self, own: Dict[str, float], diet: Dict[str, float]) -> List[Dict[str, Any]]:
        if not diet:
            blended = dict(own)
        else:
            weight = float(self.config["blend_weight"])
            blended = {name: weight * own.get(name, 0.0) + (1 - weight) * diet.get(name, 0.0)
                       for name in set(own) | set(diet)}
        ranking = sorted(({"name": name, "confidence": float(value)} for name, value in blended.items()),
                         key=lambda row: -row["confidence"])
        return ranking[: int(self.config["ranking_length"])] if self.config["ranking_length"] else ranking

    def process(self, messages: List[Message]) -> List[Message]:
        readable = [message for message in messages if message.get(TEXT)]
        if not self.trained or not readable:
            return messages
        for message, row in zip(readable, self.probabilities(readable)):
            own = dict(zip(self.classes, row.tolist()))
            diet = {entry["name"]: entry["confidence"] for entry in message.get(INTENT_RANKING_KEY) or []}
            ranking = self.blend(own, diet)
            message.set(INTENT, {"name": ranking[0]["name"], "confidence": ranking[0]["confidence"]},
                        add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as directory:
            (directory / MODEL_FILE).write_text(json.dumps(
                {"classes": self.classes, "spaces": [space.to_dict() for space in self.spaces]},
                ensure_ascii=False), encoding="utf-8")
            np.savez(directory / WEIGHTS_FILE, coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "CharNgramIntentBlend":
        try:
            with model_storage.read_from(resource) as directory:
                data = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
                with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as weights:
                    coef, intercept = weights["coef"], weights["intercept"]
        except (ValueError, FileNotFoundError):
            # Trained on no usable data: the component passes DIET's answer through.
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, [TfidfSpace.from_dict(s) for s in data["spaces"]],
                   data["classes"], coef, intercept)
