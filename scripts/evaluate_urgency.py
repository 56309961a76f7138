"""How well emergencies are read from descriptions: precision and recall on the labelled
tables in tests/urgency/, each reported apart (see each file's header for how it was
written). Part of `make eval`; the report also goes to results/urgency.md.

    python scripts/evaluate_urgency.py
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.rules import UrgencyRules, load_rules  # noqa: E402
from bot.core.urgency import assess  # noqa: E402

TABLES = ("descriptions", "fresh", "unseen", "holdout", "final", "blind", "blind2")
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


def load_table(name: str) -> list[dict]:
    return yaml.safe_load((ROOT / "tests" / "urgency" / f"{name}.yml").read_text(encoding="utf-8"))["descriptions"]


def main() -> int:
    rules = load_rules(ROOT / "project" / "default.yml").urgency
    lines = ["# Emergencies read from descriptions", "",
             "| table | rows | emergencies | recall | precision | hazard right | false fire/gas alarms |",
             "|---|---|---|---|---|---|---|"]
    details = []
    for name in TABLES:
        s = score(load_table(name), rules)
        lines.append(f"| {name} | {s.rows} | {s.emergencies} | {s.recall:.2f} | {s.precision:.2f} | "
                     f"{s.hazard_right}/{s.found} | {len(s.false_life_alarms)} |")
        details += ["", f"## {name}", "", "Missed: " + ("；".join(s.missed) or "none"),
                    "", "False alarms: " + ("；".join(s.false_alarms) or "none")]
    report = "\n".join(lines + details) + "\n"
    out = ROOT / "results" / "urgency.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
