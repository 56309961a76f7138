"""Latency benchmarks: the WeChat gateway's passive replies, and NLU parsing in Rasa.

Starts the real action server, Rasa server and gateway (`python -m bot serve`, in
development mode so WeChat's API is the gateway's own loopback stand-in) on free ports,
then plays WeChat's servers: every turn is real XML, signed and AES-encrypted (safe
mode), POSTed to /wechat. The latency measured is what WeChat sees: from sending the
push to having the passive reply. Then every held-out NLU test message is parsed through
the running Rasa server's /model/parse. Last, the flood case: 20 residents hold repair
conversations at once, first alone, then while one more resident floods the gateway with
messages back to back (other residents must not suffer). Results go to results/bench.md.

    python scripts/bench.py [--conversations 30] [--residents 20]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import migrate  # noqa: E402
from bot.app.model_cache import ensure_model  # noqa: E402
from bot.app.stack import (  # noqa: E402
    start_action_server,
    start_gateway,
    start_rasa,
    wait_until_healthy,
    write_endpoints,
)
from bot.channels.wechat.simulate import read_reply, signed_push, text_xml  # noqa: E402
from bot.settings import DEVELOPMENT_VALUES, PROJECT_ROOT  # noqa: E402
from tests.live import free_port  # noqa: E402

DEFAULT_RULES = PROJECT_ROOT / "project" / "default.yml"

# Non-emergency repairs: all four turns (an emergency skips the appointment question).
REPAIRS = ["客厅的灯不亮了", "厨房下水道堵了", "卫生间排风扇不转了", "卧室门锁坏了", "阳台窗户关不上了"]
TIMES = ["明天上午", "今天下午三点以后", "随时都可以", "周六上午十点", "晚上七点后"]


def conversation(n: int) -> list[tuple[str, str]]:
    room = f"{n % 20 + 1}栋{n % 3 + 1}单元{n % 9 + 1}0{n % 4 + 1}"
    return [("open", "我要报修"), ("describe", REPAIRS[n % len(REPAIRS)]), ("room", room),
            ("visit_time", TIMES[n % len(TIMES)])]


def push(gateway: str, openid: str, text: str, timeout: float = 30) -> tuple[float, str | None]:
    keys = dict(token=DEVELOPMENT_VALUES["WECHAT_TOKEN"], app_id=DEVELOPMENT_VALUES["WECHAT_APP_ID"],
                aes_key=DEVELOPMENT_VALUES["WECHAT_ENCODING_AES_KEY"], safe_mode=True)
    query, body = signed_push(text_xml(openid, text), **keys)
    request = urllib.request.Request(f"{gateway}/wechat?{urllib.parse.urlencode(query)}", data=body,
                                     headers={"Content-Type": "text/xml"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read().decode("utf-8")
    elapsed = time.perf_counter() - started
    return elapsed, read_reply(raw, query, **keys)


def parse_latencies(rasa_url: str) -> list[float]:
    """Round-trip time of /model/parse for each held-out message (each parsed once, after a warm-up)."""
    import yaml

    heldout = yaml.safe_load((PROJECT_ROOT / "tests" / "nlu" / "heldout.yml").read_text(encoding="utf-8"))
    texts = [line.strip()[2:] for block in heldout["nlu"] if "intent" in block
             for line in block["examples"].splitlines() if line.strip().startswith("- ")]
    timings = []
    for index, text in enumerate([*texts[:10], *texts]):
        body = json.dumps({"text": text}).encode("utf-8")
        token = urllib.parse.quote(DEVELOPMENT_VALUES["RASA_AUTH_TOKEN"])  # Rasa's API wants its token
        request = urllib.request.Request(f"{rasa_url}/model/parse?token={token}", data=body,
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        if index >= 10:
            timings.append(time.perf_counter() - started)
    return timings


@dataclass
class FloodRun:
    latencies: list[float] = field(default_factory=list)
    deferred: int = 0
    flood_sent: int = 0
    flood_told_to_wait: int = 0
    wall: float = 0.0


def residents_at_once(gateway: str, residents: int, flooders: int, tag: str, rate: float = 10.0) -> FloodRun:
    """`residents` repair conversations in parallel; meanwhile `flooders` threads send one
    resident's messages, `rate` a second in all, until the conversations are over."""
    run = FloodRun()
    done = threading.Event()
    lock = threading.Lock()

    def talk(n: int) -> None:
        for _, text in conversation(n) + conversation(n + residents):  # two repairs: about 20 s of load
            elapsed, reply = push(gateway, f"oBench{tag}{n:04d}", text)
            with lock:
                run.latencies.append(elapsed)
                run.deferred += reply is None

    def flood(thread: int) -> None:
        # An attacker does not wait for answers: each push is dropped after a moment (the
        # gateway goes on with it, as it does when WeChat's 5 s run out).
        count = 0
        interval = flooders / rate
        next_at = time.perf_counter() + thread * interval / flooders
        while not done.is_set():
            count += 1
            time.sleep(max(0.0, next_at - time.perf_counter()))  # pacing the sender, not waiting for a result
            next_at += interval
            try:
                _, reply = push(gateway, f"oBench{tag}Flooder", f"在吗{thread}-{count}", timeout=0.3)
            except (TimeoutError, OSError):
                reply = None
            with lock:
                run.flood_sent += 1
                run.flood_told_to_wait += bool(reply and "请稍后再发" in reply)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=residents + flooders) as pool:
        floods = [pool.submit(flood, t) for t in range(flooders)]
        talks = [pool.submit(talk, n) for n in range(residents)]
        for future in talks:
            future.result()
        run.wall = time.perf_counter() - started
        done.set()
        for future in floods:
            future.result()
    return run


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--residents", type=int, default=20, help="residents at once in the flood case")
    parser.add_argument("--flood-threads", type=int, default=4, help="parallel senders of the flooding resident")
    parser.add_argument("--flood-rate", type=float, default=10.0, help="the flooding resident's messages a second")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="wuye-bench-"))
    database_url = f"sqlite:///{workdir / 'tickets.db'}"
    migrate.upgrade(database_url)
    model = ensure_model()
    action_port, rasa_port, gateway_port = free_port(), free_port(), free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONUNBUFFERED="1", **DEVELOPMENT_VALUES,
               WECHAT_API_BASE_URL=f"{gateway}/dev/wechat-api", RASA_URL=f"http://127.0.0.1:{rasa_port}",
               ACTION_SERVER_URL=f"http://127.0.0.1:{action_port}")
    endpoints = write_endpoints(workdir / "endpoints.yml", action_port)
    services = [start_action_server(action_port, env, workdir / "log"),
                start_rasa(model, rasa_port, endpoints, env, workdir / "log"),
                start_gateway("127.0.0.1", gateway_port, env, workdir / "log", staff_port=free_port())]
    try:
        for service in services:
            wait_until_healthy(service, timeout=300)
        for n in range(args.warmup):
            for _, text in conversation(n):
                push(gateway, f"oBenchWarmup{n:04d}", text)
        by_step: dict[str, list[float]] = {}
        deferred = 0
        completed = 0
        started = time.perf_counter()
        for n in range(args.conversations):
            reply = None
            for step, text in conversation(n):
                elapsed, reply = push(gateway, f"oBenchResident{n:04d}", text)
                by_step.setdefault(step, []).append(elapsed)
                deferred += reply is None
            completed += bool(reply and "工单号" in reply)
        wall = time.perf_counter() - started
        parses = parse_latencies(f"http://127.0.0.1:{rasa_port}")
        # The flood case: every answer waited for in the HTTP response (a long passive budget),
        # so what is measured is when each resident has their answer, however long it takes.
        unlimited = workdir / "unlimited.yml"
        unlimited.write_text(DEFAULT_RULES.read_text(encoding="utf-8").replace(
            "  max_messages: 10 ", "  max_messages: 1000000 ").replace(
            "holiday_file: holidays.yml", f"holiday_file: {DEFAULT_RULES.parent / 'holidays.yml'}"), encoding="utf-8")
        flood_runs: dict[str, FloodRun] = {}
        for name, flooders, config in (("alone", 0, DEFAULT_RULES), ("one resident flooding", args.flood_threads,
                                                                     DEFAULT_RULES),
                                       ("one resident flooding, rate limit off", args.flood_threads, unlimited)):
            port = free_port()
            url = f"sqlite:///{workdir / f'flood-{port}.db'}"
            migrate.upgrade(url)
            flood_env = dict(env, DATABASE_URL=url, PASSIVE_REPLY_BUDGET="60", PROJECT_CONFIG=str(config),
                             WECHAT_API_BASE_URL=f"http://127.0.0.1:{port}/dev/wechat-api")
            flood_gateway = start_gateway("127.0.0.1", port, flood_env, workdir / "log", staff_port=free_port())
            try:
                wait_until_healthy(flood_gateway, timeout=120)
                flood_runs[name] = residents_at_once(f"http://127.0.0.1:{port}", args.residents, flooders,
                                                     f"F{port}", args.flood_rate)
            finally:
                flood_gateway.stop()
    finally:
        for service in reversed(services):
            service.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    every = [v for values in by_step.values() for v in values]
    lines = [
        "# Latency benchmarks",
        "",
        "## Gateway passive-reply latency (repair conversations)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {os.cpu_count()} CPUs: "
        f"{args.conversations} conversations of {len(conversation(0))} turns, one after another, "
        "safe mode (AES), real gateway + Rasa + action server, SQLite store.",
        "",
        "| turn | n | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for step, values in [*by_step.items(), ("all turns", every)]:
        lines.append(f"| {step} | {len(values)} | {percentile(values, 50) * 1000:.0f} | "
                     f"{percentile(values, 95) * 1000:.0f} | {max(values) * 1000:.0f} |")
    lines += ["", f"Deferred to a customer-service message (budget exceeded): {deferred} of {len(every)} turns. "
              f"Tickets confirmed: {completed} of {args.conversations}. Wall time {wall:.1f} s.",
              "", "## NLU parse latency (Rasa server, /model/parse)", "",
              f"{len(parses)} held-out messages (tests/nlu/heldout.yml), one at a time: "
              f"p50 {percentile(parses, 50) * 1000:.0f} ms, p95 {percentile(parses, 95) * 1000:.0f} ms, "
              f"max {max(parses) * 1000:.0f} ms."]
    lines += ["", "## Flood: one resident floods while others talk", "",
              f"{args.residents} residents each file two repairs at once ({2 * len(conversation(0))} turns each), "
              f"first alone, then while one more resident sends {args.flood_rate:g} messages a second "
              f"(from {args.flood_threads} parallel connections, not waiting for answers). "
              f"Latency of the {args.residents} residents' turns:", "",
              "| case | turns | p50 ms | p95 ms | max ms | wall s | flooder sent | asked to wait |",
              "|---|---|---|---|---|---|---|---|"]
    for name, run in flood_runs.items():
        values = run.latencies
        lines.append(f"| {name} | {len(values)} | {percentile(values, 50) * 1000:.0f} | "
                     f"{percentile(values, 95) * 1000:.0f} | {max(values) * 1000:.0f} | {run.wall:.1f} | "
                     f"{run.flood_sent} | {run.flood_told_to_wait} |")
    lines += ["", "Every turn's answer is awaited in its HTTP response here (passive budget raised to 60 s), so the "
              "latency is when the resident has the answer. The flooder's messages beyond the project's limit "
              "(flood.max_messages per flood.window_seconds, 10 per 60 s by default) are stored but never reach "
              "the assistant, and it is asked once per window to wait; its admitted messages are answered one "
              "at a time, in order. The last row raises the limit out of reach: only the one-in-flight rule is "
              "left."]
    report = "\n".join(lines) + "\n"
    out = PROJECT_ROOT / "results" / "bench.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(report)
    return 0 if completed == args.conversations else 1


if __name__ == "__main__":
    sys.exit(main())
