"""Compare two scripts/crossval_nlu.py outputs run on the same folds.

    .venv-assistant/bin/python scripts/experiments/compare_crossval.py \
        results/crossval-baseline results/crossval-e5 --folds 3

Prints macro-F1, accuracy, file_complaint recall, the per-intent F1/recall changes, the
per-fold accuracy and macro-F1 (folds rebuilt exactly as crossval_nlu.py builds them), and
an exact McNemar test on the examples that one config gets right and the other wrong.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def load(out: Path) -> dict:
    rankings = json.loads((out / "rankings.json").read_text(encoding="utf-8"))
    errors = {row["index"]: row["predicted"]
              for row in json.loads((out / "errors.json").read_text(encoding="utf-8"))}
    predicted = {row["index"]: errors.get(row["index"], row["gold"]) for row in rankings}
    gold = {row["index"]: row["gold"] for row in rankings}
    return {"report": json.loads((out / "report.json").read_text(encoding="utf-8")),
            "gold": gold, "predicted": predicted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("variant", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu",
                        help="the data/nlu both runs were trained on, if it has changed since")
    args = parser.parse_args()

    from scipy.stats import binomtest
    from sklearn.metrics import f1_score

    a, b = load(args.baseline), load(args.variant)
    assert a["gold"] == b["gold"], "the two runs did not evaluate the same examples"
    ra, rb = a["report"], b["report"]
    labels = [key for key in ra if key not in ("micro avg", "macro avg", "weighted avg", "accuracy")]
    n = len(a["gold"])
    acc = {name: sum(run["predicted"][i] == g for i, g in run["gold"].items()) / n
           for name, run in (("a", a), ("b", b))}
    print(f"examples {n}")
    print(f"macro-F1  {ra['macro avg']['f1-score']:.4f} -> {rb['macro avg']['f1-score']:.4f} "
          f"({rb['macro avg']['f1-score'] - ra['macro avg']['f1-score']:+.4f})")
    print(f"accuracy  {acc['a']:.4f} -> {acc['b']:.4f} ({acc['b'] - acc['a']:+.4f})")
    fallback = {name: sum(p == "nlu_fallback" for p in run["predicted"].values()) for name, run in (("a", a), ("b", b))}
    print(f"fallbacks {fallback['a']} -> {fallback['b']}")
    print("\nintent               support  F1 base  F1 var   dF1    rec base rec var  d rec")
    for label in labels:
        fa, fb = ra[label]["f1-score"], rb[label]["f1-score"]
        qa, qb = ra[label]["recall"], rb[label]["recall"]
        mark = "" if abs(fb - fa) < 1e-9 and abs(qb - qa) < 1e-9 else " *"
        print(f"{label:20s} {int(ra[label]['support']):7d}  {fa:.3f}    {fb:.3f}  {fb - fa:+.3f}   "
              f"{qa:.3f}   {qb:.3f}  {qb - qa:+.3f}{mark}")

    # Per fold, with the folds rebuilt as crossval_nlu.py builds them.
    from crossval_nlu import folds
    from rasa.shared.nlu.training_data.loading import load_data

    examples = load_data(str(args.data)).intent_examples
    print("\nfold  acc base  acc var   d acc   mF1 base mF1 var  d mF1")
    assert len(examples) == n, f"{args.data} has {len(examples)} examples, the runs had {n}"
    assert all(examples[i].get("intent") == g for i, g in a["gold"].items()), "different data"
    for number, (_, test_index) in enumerate(folds(examples, args.folds)):
        idx = [int(i) for i in test_index]
        gold = [a["gold"][i] for i in idx]
        row = []
        for run in (a, b):
            pred = [run["predicted"][i] for i in idx]
            row.append((sum(p == g for p, g in zip(pred, gold)) / len(idx),
                        f1_score(gold, pred, labels=labels, average="macro", zero_division=0)))
        print(f"{number + 1:4d}  {row[0][0]:.4f}   {row[1][0]:.4f}  {row[1][0] - row[0][0]:+.4f}   "
              f"{row[0][1]:.4f}   {row[1][1]:.4f}  {row[1][1] - row[0][1]:+.4f}")

    only_a = [i for i, g in a["gold"].items() if a["predicted"][i] == g and b["predicted"][i] != g]
    only_b = [i for i, g in a["gold"].items() if b["predicted"][i] == g and a["predicted"][i] != g]
    p = binomtest(len(only_b), len(only_a) + len(only_b), 0.5).pvalue if only_a or only_b else 1.0
    print(f"\nMcNemar: right only in baseline {len(only_a)}, right only in variant {len(only_b)}, "
          f"exact two-sided p = {p:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
