"""Deterministic k-fold cross-validation of an NLU config, for choosing between configs.

`rasa test nlu --cross-validation` draws new folds on every run, so two configs are never
compared on the same split. This script fixes the folds (stratified on the full intent,
seed 0), trains the config on k-1 folds, parses the remaining fold through the trained
model (FallbackClassifier included, so a fallback counts as a miss) and writes:

    OUT/report.json     per-intent precision/recall/F1 (sklearn)
    OUT/errors.json     the misread examples
    OUT/rankings.json   every example's intent ranking, for scripts/sweep_blend_weight.py

Only the training data (data/nlu) is used; the held-out set never enters model selection.

    .venv/bin/python scripts/crossval_nlu.py config.yml results/crossval-fixed
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.settings import PROJECT_ROOT  # noqa: E402

SEED = 0


def folds(examples: list, k: int) -> list:
    from sklearn.model_selection import StratifiedKFold

    labels = [example.get_full_intent() for example in examples]
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=SEED).split(examples, labels))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("out", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData
    from sklearn.metrics import classification_report

    data = load_data(str(PROJECT_ROOT / "data" / "nlu"))
    examples = data.intent_examples
    gold, predicted, rankings = [], [], []
    started = time.monotonic()
    for number, (train_index, test_index) in enumerate(folds(examples, args.folds)):
        train = TrainingData(training_examples=[examples[i] for i in train_index],
                             entity_synonyms=data.entity_synonyms, regex_features=data.regex_features,
                             lookup_tables=data.lookup_tables, responses=data.responses)
        with tempfile.TemporaryDirectory() as tmp:
            train_file = Path(tmp) / "train.yml"
            train_file.write_text(train.nlu_as_yaml(), encoding="utf-8")
            model = train_nlu(args.config, str(train_file), str(Path(tmp) / "models"),
                              domain=str(PROJECT_ROOT / "domain.yml"))
            agent = Agent.load(model)

            async def parse_all() -> list:
                return [await agent.parse_message(examples[i].get("text")) for i in test_index]

            for index, parsed in zip(test_index, asyncio.run(parse_all())):
                gold.append(examples[index].get("intent"))
                predicted.append(parsed["intent"]["name"])
                rankings.append({"index": int(index), "text": examples[index].get("text"), "gold": gold[-1],
                                 "ranking": {row["name"]: row["confidence"] for row in parsed["intent_ranking"]}})
        print(f"fold {number + 1}/{args.folds} done after {time.monotonic() - started:.0f} s", flush=True)

    labels = sorted(set(gold))
    report = classification_report(gold, predicted, labels=labels, output_dict=True, zero_division=0)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (args.out / "rankings.json").write_text(json.dumps(rankings, ensure_ascii=False), encoding="utf-8")
    errors = [row | {"predicted": p} for row, p in zip(rankings, predicted) if row["gold"] != p]
    (args.out / "errors.json").write_text(json.dumps(errors, ensure_ascii=False, indent=1), encoding="utf-8")
    weakest = sorted(labels, key=lambda label: report[label]["f1-score"])[:5]
    print(f"{args.config}: intent macro-F1 {report['macro avg']['f1-score']:.4f}, "
          f"accuracy {sum(g == p for g, p in zip(gold, predicted)) / len(gold):.4f}; weakest: "
          + ", ".join(f"{label} {report[label]['f1-score']:.3f}" for label in weakest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
