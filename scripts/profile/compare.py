"""Pool the `--raw` files of interleaved scripts/profile/turns.py runs: p50/p95 per turn and turns a second, per tag.

    for round in 1 2 3 4 5 6; do
      for tag_port in $(printf "before:5005\nafter:5006\n" | shuf); do
        python scripts/profile/turns.py ${tag_port#*:} 10 --tag ${tag_port%:*} --raw /tmp/ab.jsonl >/dev/null
      done
    done
    python scripts/profile/compare.py /tmp/ab.jsonl
"""
from __future__ import annotations

import collections
import json
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from turns import CONVERSATIONS, percentile  # noqa: E402


def main() -> None:
    runs = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
    tags: dict[str, dict] = collections.defaultdict(lambda: {"times": collections.defaultdict(list), "wall": 0.0,
                                                            "turns": 0, "bad": 0, "load": []})
    for run in runs:
        tag = tags[run["tag"]]
        tag["wall"] += run["wall"]
        tag["turns"] += run["turns"]
        tag["bad"] += run["bad"]
        tag["load"].append(run["load"])
        for key, values in run["times"].items():
            tag["times"][key] += values
    for name, tag in tags.items():
        print(f"{name}: {tag['turns'] / tag['wall']:.2f} turns/s, {tag['bad']} bad, "
              f"load average {min(tag['load']):.1f}-{max(tag['load']):.1f}")
        for kind in CONVERSATIONS:
            keys = sorted(k for k in tag["times"] if k.rstrip("0123456789") == kind)
            if not keys:
                continue
            every = [t for k in keys for t in tag["times"][k]]
            print(f"  {kind:10s} p50 {percentile(every, 50) * 1000:6.1f} ms  p95 {percentile(every, 95) * 1000:6.1f} ms"
                  f"  n={len(every)}")
            for key in keys if len(keys) > 1 else ():
                values = tag["times"][key]
                text = CONVERSATIONS[kind][int(key[len(kind):])]
                print(f"    {text:12s} p50 {percentile(values, 50) * 1000:6.1f}  p95 {percentile(values, 95) * 1000:6.1f}")


if __name__ == "__main__":
    main()
