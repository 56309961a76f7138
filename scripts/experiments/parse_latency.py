"""Time Agent.parse_message for one trained model over the bench sentences (p50/p95, ms).

    nice -n 15 .venv-assistant/bin/python scripts/experiments/parse_latency.py MODEL.tar.gz
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_e5 import percentile, sentences  # noqa: E402


async def run(model: str) -> dict:
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    texts = sentences(200)
    for text in texts[:10]:
        await agent.parse_message(text)
    latencies = []
    for text in texts:
        t0 = time.perf_counter()
        await agent.parse_message(text)
        latencies.append((time.perf_counter() - t0) * 1000)
    return {"model": model, "n": len(texts), "p50_ms": round(percentile(latencies, 0.5), 1),
            "p95_ms": round(percentile(latencies, 0.95), 1)}


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    print(json.dumps(asyncio.run(run(sys.argv[1]))))
