"""A second reader for emergencies, learned from labelled descriptions.

The cue rules (bot.core.urgency) know the hazards and what to do about each, but they only
see the phrasings someone wrote down; residents find new ones every day ("一屋子水 拖鞋都
漂起来了"). This reader has seen a few hundred labelled descriptions and judges a new one by
its character n-grams (multinomial naive Bayes), so it recognises a situation told in words
no rule lists. It only says "this looks like an emergency" and which n-grams made it think
so: it never names a hazard or gives advice, so on its own it can send someone quickly but
never tells a resident to evacuate.

Pure and small on purpose: it trains in milliseconds when the project's rules are loaded
and needs nothing but the standard library.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from bot.core.chinese import to_simplified

_SPLIT = re.compile(r"[\s，,。.！!？?；;、：:…~～\"'“”‘’()（）【】\[\]]+")
NGRAM_SIZES = (1, 2, 3)


def ngrams(text: str) -> Counter[str]:
    """Character n-grams within each run of text, padded at both ends (so 漏 at the start of
    a run differs from 漏 inside one)."""
    grams: Counter[str] = Counter()
    for run in _SPLIT.split(to_simplified(text).lower()):
        if not run:
            continue
        padded = f" {run} "
        for size in NGRAM_SIZES:
            grams.update(padded[i:i + size] for i in range(len(padded) - size + 1) if padded[i:i + size].strip())
    return grams


@dataclass(frozen=True)
class Judgement:
    probability: float  # that the description is an emergency
    evidence: tuple[str, ...]  # the n-grams that weighed most towards it


class LearnedReader:
    """Multinomial naive Bayes over character n-grams, two classes: emergency or not."""

    def __init__(self, examples: Iterable[tuple[str, bool]], alpha: float = 0.3) -> None:
        counts: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
        documents: Counter[bool] = Counter()
        for text, emergency in examples:
            counts[emergency].update(ngrams(text))
            documents[emergency] += 1
        self.size = documents[True] + documents[False]
        vocabulary = set(counts[True]) | set(counts[False])
        self._log_prior = {c: math.log((documents[c] or 1) / (self.size or 1)) for c in (True, False)}
        self._log_likelihood: dict[bool, dict[str, float]] = {}
        for c in (True, False):
            total = sum(counts[c].values()) + alpha * len(vocabulary)
            self._log_likelihood[c] = {g: math.log((counts[c][g] + alpha) / total) for g in vocabulary}

    def judge(self, text: str, evidence: int = 3) -> Judgement:
        if not self.size:
            return Judgement(0.0, ())
        grams = {g: n for g, n in ngrams(text).items() if g in self._log_likelihood[True]}
        score = {c: self._log_prior[c] + sum(n * self._log_likelihood[c][g] for g, n in grams.items())
                 for c in (True, False)}
        margin = max(min(score[False] - score[True], 700.0), -700.0)
        probability = 1.0 / (1.0 + math.exp(margin))
        weights = sorted(grams, key=lambda g: self._log_likelihood[False][g] - self._log_likelihood[True][g])
        strongest = tuple(g.strip() for g in weights[:evidence]
                          if self._log_likelihood[True][g] > self._log_likelihood[False][g])
        return Judgement(probability, strongest)


def train_reader(examples: Sequence[tuple[str, bool]], alpha: float = 0.3) -> LearnedReader | None:
    return LearnedReader(examples, alpha) if examples else None
