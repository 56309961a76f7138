"""Where a turn's time goes: joins rasa_timed.py's and actions_timed.py's logs (one resident at a
time, so the n-th custom-action call Rasa made is the action server's n-th request) into a table of
parts per conversation kind, before against after. The slowest 10 % of turns of each kind are
left out (bursts of other work on a shared machine); times are means, so the parts add up.

    python scripts/profile/turn_table.py BEFORE_RASA.jsonl BEFORE_ACTIONS.jsonl AFTER_RASA.jsonl AFTER_ACTIONS.jsonl
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import OrderedDict
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from turns import CONVERSATIONS  # noqa: E402

KIND = {text: kind for kind in ("greet", "faq", "repair") for text in CONVERSATIONS[kind]}


def turns(rasa_log: str, actions_log: str) -> list[dict[str, Any]]:
    rasa = [json.loads(line) for line in open(rasa_log, encoding="utf-8")]
    requests = [json.loads(line) for line in open(actions_log, encoding="utf-8")]
    taken = 0
    for turn in rasa:
        n = turn["counts"].get("http_request", 0)
        turn["actions"] = requests[taken:taken + n]
        taken += n
    if taken != len(requests):
        raise SystemExit(f"{len(requests)} action requests for {taken} calls: run one resident at a time")
    return [turn for turn in rasa if turn["text"] in KIND]


def parts(turn: dict[str, Any]) -> "OrderedDict[str, float]":
    spent = turn["parts"]

    def get(name: str) -> float:
        return float(spent.get(name, 0.0))

    def nodes(prefix: str) -> float:
        return sum(v for k, v in spent.items() if k.startswith(f"node:{prefix}"))

    def server(name: str) -> float:
        return sum(a["parts"].get(name, 0.0) for a in turn["actions"])

    row: OrderedDict[str, float] = OrderedDict()
    row["NLU: DIETClassifier"] = nodes("run_DIETClassifier")
    row["NLU: ResponseSelector"] = nodes("run_ResponseSelector")
    row["NLU: CharNgramIntentBlend (ours)"] = nodes("run_bot.nlu.intent_blend")
    row["NLU: TraditionalToSimplified, ReconcileEntities (ours)"] = (nodes("run_bot.nlu.traditional")
                                                                    + nodes("run_bot.nlu.entities"))
    row["NLU: jieba, featurizers, regex, fallback, the rest"] = get("parse_message") - sum(row.values())
    row["Policies: TEDPolicy"] = nodes("run_TEDPolicy")
    row["Policies: Memoization, Rule, the rest"] = get("predict_next_with_tracker_if_should") - nodes("run_TEDPolicy")
    row["Rasa: action-response schema check (jsonschema)"] = get("_validate_action_result")
    row["Rasa: tracker and domain to JSON for the call"] = get("_action_call_format")
    total_server = sum(a["total"] for a in turn["actions"])
    row["Action server: resident's project (DB)"] = server("rules_in_session")
    row["Action server: urgency reading"] = server("assess")
    row["Action server: the rest of the actions (forms, tickets, DB)"] = (server("executor_run")
                                                                       - server("rules_in_session") - server("assess"))
    row["Action server: HTTP, JSON, rasa_sdk"] = total_server - server("executor_run")
    row["Rasa <-> action server: HTTP client, transport"] = get("http_request") - total_server
    row["Rasa: tracker fetch/save, slot extraction, events"] = turn["total"] - sum(
        get(k) for k in ("parse_message", "predict_next_with_tracker_if_should", "_validate_action_result",
                         "_action_call_format", "http_request"))
    return row


def summary(all_turns: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    mine = [t for t in all_turns if KIND[t["text"]] == kind]
    cut = sorted(t["total"] for t in mine)[int(len(mine) * 0.9)]
    mine = [t for t in mine if t["total"] <= cut]
    rows = [parts(t) for t in mine]

    def mean(f: Any) -> float:
        return statistics.mean(f(t) for t in mine)

    return {"total": mean(lambda t: t["total"]), "parts": {k: statistics.mean(r[k] for r in rows) for k in rows[0]},
            "predictions": mean(lambda t: t["counts"].get("predict_next_with_tracker_if_should", 0)),
            "calls": mean(lambda t: t["counts"].get("http_request", 0)),
            "sql": mean(lambda t: sum(a["counts"].get("sql", 0) for a in t["actions"])),
            "transactions": mean(lambda t: sum(a["counts"].get("transactions", 0) for a in t["actions"]))}


def main() -> None:
    before, after = turns(sys.argv[1], sys.argv[2]), turns(sys.argv[3], sys.argv[4])
    for kind in ("repair", "faq", "greet"):
        a, b = summary(before, kind), summary(after, kind)
        print(f"\n{kind}: {a['predictions']:.2f} policy predictions and {a['calls']:.2f} custom-action calls a turn; "
              f"SQL statements {a['sql']:.1f} -> {b['sql']:.1f}, transactions {a['transactions']:.2f} -> "
              f"{b['transactions']:.2f} a turn\n")
        print("| part | before ms | share | after ms | share |")
        print("|---|---:|---:|---:|---:|")
        for part, ms in a["parts"].items():
            print(f"| {part} | {ms:.1f} | {100 * ms / a['total']:.0f} % | {b['parts'][part]:.1f} | "
                  f"{100 * b['parts'][part] / b['total']:.0f} % |")
        print(f"| **turn (Rasa's handle_message)** | **{a['total']:.1f}** | | **{b['total']:.1f}** | |")


if __name__ == "__main__":
    main()
