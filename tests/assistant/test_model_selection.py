"""Model selection (scripts/crossval_nlu.py) in the assistant runtime, where Rasa is."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from rasa.shared.nlu.training_data.loading import load_data

from scripts.crossval_nlu import folds

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_model_selection_folds_are_fixed_and_stratified():
    # scripts/crossval_nlu.py compares configs on the same split every run; Rasa's own
    # cross-validation draws new folds each time.
    examples = load_data(str(PROJECT_ROOT / "data" / "nlu")).intent_examples
    first, second = folds(examples, 5), folds(examples, 5)
    assert all((a[1] == b[1]).all() for a, b in zip(first, second))
    assert sorted(i for _, test in first for i in test) == list(range(len(examples)))
    per_intent = Counter(example.get("intent") for example in examples)
    for _, test in first:
        in_fold = Counter(examples[i].get("intent") for i in test)
        assert set(in_fold) == set(per_intent)
        assert all(abs(in_fold[name] - per_intent[name] / 5) <= 1 for name in per_intent)
