"""Load for profiling: residents hold conversations with a running Rasa through its REST channel.

Each conversation has a sender of its own; `--conc` residents at once (1: one resident after
another, each waiting for the answer). Prints p50/p95 per conversation kind and per turn, turns a
second and the load average as one JSON line; `--raw FILE` appends every turn's latency (for
scripts/profile/compare.py, which pools interleaved runs). `bad` counts turns answered with
nothing, and repair conversations that opened no ticket.

    python scripts/profile/turns.py RASA_PORT CONVERSATIONS [--kind all|repair,faq,…] [--conc 4] [--token T]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import urllib.request
import uuid

CONVERSATIONS = {
    "repair": ["我要报修", "客厅的灯不亮了", "3栋2单元501", "明天上午"],
    "faq": ["物业费怎么交"],
    "greet": ["你好"],
    "emergency": ["我要报修", "厨房水管爆了 水一直往外流 家里有老人", "3栋2单元501"],
    "complaint": ["我要投诉", "楼上装修太吵了，每天早上七点就开始", "3栋2单元", "希望物业去管一管", "查询进度"],
}


def send(port: int, token: str, sender: str, text: str) -> tuple[float, list]:
    body = json.dumps({"sender": sender, "message": text}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/rest/webhook?token={token}", body,
                                     {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    return time.perf_counter() - started, answer


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (k - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("conversations", type=int, help="of each kind")
    parser.add_argument("--kind", default="all", help="all (repair, faq, greet) or a comma-separated list")
    parser.add_argument("--conc", type=int, default=1)
    parser.add_argument("--token", default=os.environ.get("RASA_AUTH_TOKEN", "tok"))
    parser.add_argument("--tag", default="")
    parser.add_argument("--raw", default="")
    parser.add_argument("--show", action="store_true", help="print every answer")
    args = parser.parse_args()
    kinds = ["repair", "faq", "greet"] if args.kind == "all" else args.kind.split(",")
    per_turn: dict[str, list[float]] = {}
    lock = threading.Lock()
    started_conversations = [0]
    bad = [0]

    def resident() -> None:
        while True:
            with lock:
                if started_conversations[0] >= args.conversations:
                    return
                started_conversations[0] += 1
            for kind in kinds:
                sender = f"profile-{uuid.uuid4().hex[:12]}"
                for i, text in enumerate(CONVERSATIONS[kind]):
                    seconds, answer = send(args.port, args.token, sender, text)
                    if args.show:
                        print(kind, text, "->", [m.get("text") for m in answer])
                    with lock:
                        per_turn.setdefault(f"{kind}{i}", []).append(seconds)
                        if not answer or (kind == "repair" and text == "明天上午" and "工单号" not in str(answer)):
                            bad[0] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=resident) for _ in range(args.conc)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    turns = sum(len(v) for v in per_turn.values())
    result: dict = {"tag": args.tag, "load": os.getloadavg()[0], "turns_per_s": turns / wall, "bad": bad[0]}
    for kind in kinds:
        times = [t for key, values in per_turn.items() if key.rstrip("0123456789") == kind for t in values]
        result[kind] = {"p50": percentile(times, 50) * 1000, "p95": percentile(times, 95) * 1000, "n": len(times)}
    result.update({key: round(statistics.median(values) * 1000, 1) for key, values in sorted(per_turn.items())})
    if args.raw:
        with open(args.raw, "a", encoding="utf-8") as out:
            out.write(json.dumps({"tag": args.tag, "wall": wall, "turns": turns, "load": result["load"], "bad": bad[0],
                                  "times": per_turn}) + "\n")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
