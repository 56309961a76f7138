"""How well emergencies are read from descriptions: precision and recall on the labelled
tables (project/urgency/: the examples that shaped the cues and teach the learned reader;
tests/urgency/: written blind, never tuned on), each reported apart, with the cues alone and
with the learned reader. Part of `make eval`; the report also goes to results/urgency.md.

    python scripts/evaluate_urgency.py
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.rules import UrgencyRules, load_rules  # noqa: E402
from bot.core.urgency import assess  # noqa: E402
from bot.core.urgency_reader import train_reader  # noqa: E402

# The labelled descriptions the learned reader is trained on (project/urgency/, tuned on
# too), then the tables it never saw (tests/urgency/).
EXAMPLES = ("descriptions", "fresh", "unseen", "holdout", "final", "blind", "routine")
HELD_OUT = ("blind2", "blind3")
TABLES = EXAMPLES + HELD_OUT
LIFE_ALARMS = ("fire", "gas")  # a false one sends people out of their homes


@dataclass
class Scores:
    rows: int = 0
    emergencies: int = 0
    found: int = 0  # emergencies read as emergencies
    flagged: int = 0  # everything read as an emergency
    hazard_right: int = 0
    false_life_alarms: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.emergencies if self.emergencies else 1.0

    @property
    def precision(self) -> float:
        return self.found / self.flagged if self.flagged else 1.0


def score(rows: list[dict], rules: UrgencyRules) -> Scores:
    result = Scores()
    for row in rows:
        text, label = str(row["text"]), str(row["hazard"])
        urgency = assess(text, rules)
        got = urgency.hazard if urgency.emergency else "none"
        result.rows += 1
        result.emergencies += label != "none"
        result.flagged += got != "none"
        if label != "none" and got != "none":
            result.found += 1
            result.hazard_right += got == label
        elif label != "none":
            result.missed.append(f"{text}（{label}）")
        elif got != "none":
            result.false_alarms.append(f"{text}（读成 {got}：{urgency.cue}）")
            if got in LIFE_ALARMS:
                result.false_life_alarms.append(text)
    return result


def table_path(name: str) -> Path:
    return ROOT / ("project" if name in EXAMPLES else "tests") / "urgency" / f"{name}.yml"


def load_table(name: str) -> list[dict]:
    return yaml.safe_load(table_path(name).read_text(encoding="utf-8"))["descriptions"]


def row(name: str, s: Scores) -> str:
    return (f"| {name} | {s.rows} | {s.emergencies} | {s.recall:.2f} | {s.precision:.2f} | "
            f"{s.hazard_right}/{s.found} | {len(s.false_life_alarms)} |")


def cross_validated(rows: list[dict], rules: UrgencyRules, folds: int = 5) -> Scores:
    """Rules and reader on every example, the reader trained each time on the other folds."""
    shuffled = sorted(rows, key=lambda r: hashlib.sha256(str(r["text"]).encode()).hexdigest())  # fixed folds
    total = Scores()
    for k in range(folds):
        test = shuffled[k::folds]
        train = [r for i, r in enumerate(shuffled) if i % folds != k]
        reader = train_reader([(str(r["text"]), str(r["hazard"]) != "none") for r in train])
        part = score(test, replace(rules, reader=reader))
        for name in ("rows", "emergencies", "found", "flagged", "hazard_right"):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.false_life_alarms += part.false_life_alarms
        total.missed += part.missed
        total.false_alarms += part.false_alarms
    return total


def main() -> int:
    rules = load_rules(ROOT / "project" / "default.yml").urgency
    cues_only = replace(rules, reader=None)
    header = ["| table | rows | emergencies | recall | precision | hazard right | false fire/gas alarms |",
              "|---|---|---|---|---|---|---|"]
    lines = ["# Emergencies read from descriptions", "",
             "## The cues alone", "",
             "The tables in project/urgency/ shaped the cues (and teach the learned reader); the ones in",
             "tests/urgency/ were written blind and never tuned on.", ""] + header
    details = []
    held_out = [name for name in HELD_OUT if table_path(name).exists()]
    for name in EXAMPLES + tuple(held_out):
        s = score(load_table(name), cues_only)
        lines.append(row(name, s))
    examples = [r for name in EXAMPLES for r in load_table(name)]
    lines += ["", "## Cues and the learned reader", "",
              f"The reader flags at probability ≥ {rules.reader_threshold}; on the examples it is "
              "cross-validated (5 fixed folds: each fold read by a reader trained on the others).", ""] + header
    crossval = cross_validated(examples, rules)
    lines.append(row("examples (5-fold)", crossval))
    for name in held_out:
        s = score(load_table(name), rules)
        lines.append(row(name, s))
        details += ["", f"## {name} (cues and reader)", "", "Missed: " + ("；".join(s.missed) or "none"),
                    "", "False alarms: " + ("；".join(s.false_alarms) or "none")]
    report = "\n".join(lines + details) + "\n"
    out = ROOT / "results" / "urgency.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
