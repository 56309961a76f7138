"""Choose CharNgramIntentBlend's weight by cross-validation on the training data.

Input: the rankings a DIET-only pipeline gave in scripts/crossval_nlu.py (same fixed
folds). For each fold this fits the linear character n-gram model on the other folds,
blends its probabilities with DIET's at several weights, applies the fallback thresholds
(config.yml's unless given), and prints intent macro-F1 per weight. Weight 0 is DIET alone, 1 the linear
model alone. The held-out set plays no part.

    .venv/bin/python scripts/crossval_nlu.py /tmp/diet-only.yml /tmp/cv-diet
    .venv/bin/python scripts/sweep_blend_weight.py /tmp/cv-diet/rankings.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.settings import PROJECT_ROOT  # noqa: E402
from scripts.crossval_nlu import folds  # noqa: E402

WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def fallback_settings() -> dict:
    import yaml

    pipeline = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8"))["pipeline"]
    return next(step for step in pipeline if step["name"] == "FallbackClassifier")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rankings", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threshold", type=float, help="fallback threshold (default: config.yml's)")
    parser.add_argument("--ambiguity", type=float, help="fallback ambiguity threshold (default: config.yml's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one of the component's settings, e.g. C=100")
    args = parser.parse_args()
    fallback = fallback_settings()
    threshold = fallback["threshold"] if args.threshold is None else args.threshold
    ambiguity = fallback["ambiguity_threshold"] if args.ambiguity is None else args.ambiguity

    from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData
    from sklearn.metrics import f1_score

    from bot.core.chinese import to_simplified
    from bot.nlu.intent_blend import CharNgramIntentBlend
    examples = load_data(str(PROJECT_ROOT / "data" / "nlu")).intent_examples
    diet = {row["index"]: {k: v for k, v in row["ranking"].items() if k != "nlu_fallback"}
            for row in json.loads(args.rankings.read_text(encoding="utf-8"))}

    tokenizer = JiebaTokenizer({**JiebaTokenizer.get_default_config(),
                                "dictionary_path": str(PROJECT_ROOT / "project" / "jieba")}, None, None)
    messages = [Message(data={"text": to_simplified(example.get("text")), "intent": example.get("intent")})
                for example in examples]
    tokenizer.process(messages)
    own: dict[int, dict[str, float]] = {}
    for train_index, test_index in folds(examples, args.folds):
        overrides = {key: float(value) for key, value in (item.split("=", 1) for item in args.set)}
        component = CharNgramIntentBlend({**CharNgramIntentBlend.get_default_config(), **overrides}, None, None)
        component.persist = lambda: None  # nothing to store while sweeping
        component.train(TrainingData([messages[i] for i in train_index]))
        for index, row in zip(test_index, component.probabilities([messages[i] for i in test_index])):
            own[int(index)] = dict(zip(component.classes, row.tolist()))

    gold = [example.get("intent") for example in examples]
    labels = sorted(set(gold))
    for weight in WEIGHTS:
        predicted, fallbacks = [], 0
        for index in range(len(examples)):
            blended = {name: weight * own[index].get(name, 0.0) + (1 - weight) * diet[index].get(name, 0.0)
                       for name in set(own[index]) | set(diet[index])}
            top = sorted(blended.values(), reverse=True) + [0.0]
            if top[0] < threshold or top[0] - top[1] < ambiguity:
                predicted.append("nlu_fallback")
                fallbacks += 1
            else:
                predicted.append(max(blended, key=blended.get))
        macro = f1_score(gold, predicted, labels=labels, average="macro")
        accuracy = sum(g == p for g, p in zip(gold, predicted)) / len(gold)
        print(f"weight {weight:.1f}: macro-F1 {macro:.4f}, accuracy {accuracy:.4f}, fallbacks {fallbacks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
