"""Capacity: how many turns a second the stack takes, one process of each against replicas behind HAProxy.

For each shape (one process of each without HAProxy, then 1, 2 and 4 Rasa replicas with an
action server per core and two gateways behind HAProxy, bot.app.balancer), started by
`make run`'s own code (bot.app.stack and its supervisor) on free loopback ports, residents
hold repair conversations (scripts/bench.py's) in a closed loop, with no think time: each
sends its next message as soon as it has the answer to the last, and when a conversation
ends a new resident (a new openid) takes the place (--same-resident: one openid per thread
for all its conversations, so one Rasa session that keeps growing; Rasa's cost per turn grows
with the session's length). 1, 20 and 60 residents at once, each level for --seconds, two
ways in:

- through the gateway, as WeChat's servers push (signed, AES, `?openid=`), with the real passive
  budget (PASSIVE_REPLY_BUDGET, 4 s): an answer that misses it goes as a customer-service
  message to the gateway's stand-in of WeChat's API, where the resident waits for it (the turn's
  latency is then until that message arrived); the gateways' `wuye_deferred_replies_total`
  (their staff listeners' /metrics) counts those;
- straight to Rasa's REST channel (RASA_PORT: HAProxy, or the one Rasa), with the assistant
  client's `X-Wuye-Sender` header so that each resident stays on one replica.

The flood limit is raised out of reach (every resident here sends far more than 10 messages a
minute). Results go to results/bench-capacity.md, with the load average during each run.

    python scripts/bench_capacity.py [--shapes single,1,2,4,2g1] [--levels 1,20,60] [--seconds 30] [--same-resident]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import DEFAULT_RULES, conversation, percentile, push  # noqa: E402

from bot.app import migrate  # noqa: E402
from bot.app.balancer import Shape, available_memory  # noqa: E402
from bot.app.model_cache import ensure_model  # noqa: E402
from bot.app.stack import prepare_balancer, stack_children, write_endpoints  # noqa: E402
from bot.app.supervisor import Policy, Supervisor  # noqa: E402
from bot.assistant.client import sender_headers  # noqa: E402
from bot.settings import DEVELOPMENT_VALUES, PROJECT_ROOT, Settings  # noqa: E402
from tests.live import free_port  # noqa: E402

TURN_TIMEOUT = 120.0
DEFERRED = re.compile(r"^wuye_deferred_replies_total (\S+)$", re.M)


@dataclass
class Level:
    path: str
    residents: int
    latencies: list[float] = field(default_factory=list)
    deferred: int = 0  # turns whose answer came as a customer-service message (counted by the client)
    deferred_metric: float = 0.0  # what the gateways' /metrics say (their sum)
    conversations: int = 0
    confirmed: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # what the failed turns met
    wall: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and at the end
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds each kind of process used in the level

    @property
    def turns_per_second(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


@dataclass
class Stack:
    settings: Settings
    shape: Shape
    supervisor: Supervisor
    token: str
    log_dir: Path

    def replicas_marked_down(self) -> int:
        """How often HAProxy took a replica out of the rotation (its log: startup warnings, state changes)."""
        log = self.log_dir / "haproxy.log"
        return log.read_text(encoding="utf-8", errors="replace").count(" is DOWN") if log.exists() else 0

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system, /proc) each kind of process has used so far: rasa, actions,
        gateway, haproxy (replicas summed)."""
        ticks = os.sysconf("SC_CLK_TCK")
        used: dict[str, float] = {}
        for service in self.supervisor.services():
            try:
                fields = Path(f"/proc/{service.process.pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            kind = service.name.split("-")[0]
            used[kind] = used.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
        return used

    def rasa_memory(self) -> list[int]:
        """Resident memory (bytes) of each Rasa process, from /proc."""
        sizes = []
        for service in self.supervisor.services():
            if service.name.startswith("rasa"):
                try:
                    status = Path(f"/proc/{service.process.pid}/status").read_text(encoding="ascii")
                    sizes.append(int(status.split("VmRSS:")[1].split()[0]) * 1024)
                except (OSError, IndexError, ValueError):
                    pass
        return sizes

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    @property
    def rasa(self) -> str:
        return f"http://127.0.0.1:{self.settings.rasa_port}"

    def deferred_total(self) -> float:
        """Sum of every gateway's wuye_deferred_replies_total, read on each one's own staff port."""
        total = 0.0
        for _, staff_port in self.shape.gateways:
            with urllib.request.urlopen(f"http://127.0.0.1:{staff_port}/metrics", timeout=10) as response:
                match = DEFERRED.search(response.read().decode("utf-8"))
            total += float(match.group(1)) if match else 0.0
        return total


@dataclass
class Run:
    name: str
    shape: Shape
    startup: float
    levels: list[Level]
    rasa_memory: list[int]
    marked_down: int  # HAProxy took a replica out this many times during the levels (none was stopped)


def shape_for(name: str, settings: Settings, cpus: int) -> Shape:
    """single; N (N Rasa replicas, an action server per core, two gateways); NgM (M gateways)."""
    if name == "single":
        return Shape.single(settings)
    rasa_part, _, gateway_part = name.partition("g")
    rasa, gateways = int(rasa_part), int(gateway_part or min(2, cpus))
    return Shape(rasa=(settings.rasa_port,) if rasa == 1 else tuple(free_port() for _ in range(rasa)),
                 actions=tuple(free_port() for _ in range(cpus)),
                 gateways=((settings.gateway_port, settings.staff_port),) if gateways == 1
                 else tuple((free_port(), free_port()) for _ in range(gateways)), workers=0)


def start(name: str, workdir: Path, cpus: int) -> tuple[Stack, float]:
    run_dir = workdir / name
    run_dir.mkdir()
    database_url = f"sqlite:///{run_dir / 'tickets.db'}"
    migrate.upgrade(database_url)
    settings = Settings(database_url=database_url, rasa_port=free_port(), action_port=free_port(),
                        gateway_port=free_port(), staff_port=free_port())
    shape = shape_for(name, settings, cpus)
    if name == "single":
        shape = Shape(shape.rasa, shape.actions, shape.gateways, workers=0)
    unlimited = run_dir / "unlimited.yml"
    unlimited.write_text(DEFAULT_RULES.read_text(encoding="utf-8").replace(
        "  max_messages: 10 ", "  max_messages: 1000000 ").replace(
        "holiday_file: holidays.yml", f"holiday_file: {DEFAULT_RULES.parent / 'holidays.yml'}"), encoding="utf-8")
    token = f"bench-rasa-{secrets.token_hex(6)}"
    env = dict(os.environ, **dict(DEVELOPMENT_VALUES, RASA_AUTH_TOKEN=token), DATABASE_URL=database_url,
               PYTHONUNBUFFERED="1", RASA_URL=f"http://127.0.0.1:{settings.rasa_port}",
               ACTION_SERVER_URL=f"http://127.0.0.1:{settings.action_port}",
               WECHAT_API_BASE_URL=f"http://127.0.0.1:{settings.gateway_port}/dev/wechat-api",
               PROJECT_CONFIG=str(unlimited), WORKER_HEARTBEAT_FILE=str(run_dir / "worker.heartbeat"))
    endpoints = write_endpoints(run_dir / "endpoints.yml", settings.action_port)
    config = prepare_balancer(settings, shape, env, run_dir / "run")
    children = stack_children(settings, env, ensure_model(), endpoints, run_dir / "log", shape, config)
    supervisor = Supervisor(children, Policy(start_timeout=900, max_restarts=0))
    started = time.perf_counter()
    supervisor.start()
    try:
        supervisor.wait_started(timeout=900)
    except BaseException:
        supervisor.stop()
        raise
    return Stack(settings, shape, supervisor, token, run_dir / "log"), time.perf_counter() - started


def say_rasa(stack: Stack, openid: str, text: str) -> tuple[float, str]:
    body = json.dumps({"sender": openid, "message": text}).encode("utf-8")
    request = urllib.request.Request(f"{stack.rasa}/webhooks/rest/webhook", data=body,
                                     headers={"Content-Type": "application/json", **sender_headers(openid)})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=TURN_TIMEOUT) as response:
        answers = json.loads(response.read())
    return time.perf_counter() - started, "\n".join(str(a.get("text") or "") for a in answers)


def pushed_since(stack: Stack, openid: str, after: int) -> tuple[int, list[str]]:
    query = urllib.parse.urlencode({"openid": openid, "after": after})
    with urllib.request.urlopen(f"{stack.gateway}/dev/simulator/pushed?{query}", timeout=10) as response:
        body = json.loads(response.read())
    return int(body["next"]), list(body["messages"])


def say_gateway(stack: Stack, openid: str, text: str, after: list[int]) -> tuple[float, str, bool]:
    """(latency until the answer, the answer, whether it came as a customer-service message)."""
    started = time.perf_counter()
    _, reply = push(stack.gateway, openid, text, timeout=TURN_TIMEOUT)
    if reply is not None:
        return time.perf_counter() - started, reply, False
    while time.perf_counter() - started < TURN_TIMEOUT:
        following, messages = pushed_since(stack, openid, after[0])
        if messages:
            after[0] = following
            return time.perf_counter() - started, "\n".join(messages), True
        time.sleep(0.05)
    raise TimeoutError(f"no answer to a deferred turn within {TURN_TIMEOUT:g} s")


def run_level(stack: Stack, path: str, residents: int, seconds: float, tag: str, same_resident: bool = False) -> Level:
    level = Level(path, residents)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    deferred_before = stack.deferred_total() if path == "gateway" else 0.0
    level.load = (os.getloadavg()[0], 0.0)
    cpu_before = stack.cpu_seconds()

    def resident(n: int) -> None:
        openid = f"oCap{tag}{n:04d}"
        after = [0]
        round_ = 0
        while time.perf_counter() < deadline:
            if not same_resident:  # the next resident takes this one's place
                openid, after = f"oCap{tag}{n:04d}r{round_}", [0]
            reply = ""
            for _, text in conversation(n + round_ * residents):
                try:
                    if path == "gateway":
                        elapsed, reply, deferred = say_gateway(stack, openid, text, after)
                    else:
                        (elapsed, reply), deferred = say_rasa(stack, openid, text), False
                except (OSError, TimeoutError) as exc:
                    kind = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else type(exc).__name__
                    with lock:
                        level.failed += 1
                        level.errors[kind] = level.errors.get(kind, 0) + 1
                    reply = ""
                    break
                with lock:
                    level.latencies.append(elapsed)
                    level.deferred += deferred
            with lock:
                level.conversations += 1
                level.confirmed += "工单号" in reply
            round_ += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(residents) as pool:
        list(pool.map(resident, range(residents)))
    level.wall = time.perf_counter() - started
    level.load = (level.load[0], os.getloadavg()[0])
    level.cpu = {kind: used - cpu_before.get(kind, 0.0) for kind, used in stack.cpu_seconds().items()}
    if path == "gateway":
        level.deferred_metric = stack.deferred_total() - deferred_before
    return level


def rows(name: str, levels: list[Level]) -> Iterator[str]:
    for level in levels:
        values = level.latencies or [0.0]
        deferred = f"{level.deferred} ({level.deferred_metric:g})" if level.path == "gateway" else "-"
        yield (f"| {name} | {level.path} | {level.residents} | {len(level.latencies)} | "
               f"{percentile(values, 50) * 1000:.0f} | {percentile(values, 95) * 1000:.0f} | "
               f"{level.turns_per_second:.1f} | {deferred} | {level.confirmed}/{level.conversations} | "
               f"{level.failed} | {level.load[0]:.1f} → {level.load[1]:.1f} |")


CPU_KINDS = ("rasa", "actions", "gateway", "haproxy")


def cpu_rows(name: str, levels: list[Level]) -> Iterator[str]:
    """CPU milliseconds per turn, by kind of process (a replica's share summed with the others')."""
    for level in levels:
        turns = len(level.latencies) or 1
        per_turn = [level.cpu.get(kind, 0.0) * 1000 / turns for kind in CPU_KINDS]
        busy = sum(level.cpu.values()) / level.wall if level.wall else 0.0
        yield (f"| {name} | {level.path} | {level.residents} | " + " | ".join(f"{ms:.1f}" for ms in per_turn)
               + f" | {sum(per_turn):.1f} | {busy:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="single,1,2,4",
                        help="comma-separated: single (one of each, no HAProxy) and Rasa replica counts")
    parser.add_argument("--levels", default="1,20,60", help="residents at once")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long each level runs")
    parser.add_argument("--paths", default="gateway,rasa")
    parser.add_argument("--same-resident", action="store_true",
                        help="each thread keeps one openid for all its conversations (one ever longer Rasa session)")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "results" / "bench-capacity.md"))
    args = parser.parse_args()
    if not shutil.which("haproxy"):
        print("haproxy is not installed: scripts/ensure-haproxy.sh", file=sys.stderr)
        return 1
    cpus = os.cpu_count() or 1
    levels = [int(n) for n in args.levels.split(",")]
    paths = args.paths.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="wuye-capacity-"))
    results: list[Run] = []
    began = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    try:
        for name in args.shapes.split(","):
            print(f"==> {name}: starting", flush=True)
            stack, startup = start(name, workdir, cpus)
            try:
                done = []
                down_at_start = stack.replicas_marked_down()  # each server once, while they were starting
                # Warm-up: one conversation each way (the first turns of a fresh Rasa are slow).
                for path in paths:
                    run_level(stack, path, 2, 0.1, f"{name}W{path[0]}")
                for path in paths:
                    for residents in levels:
                        level = run_level(stack, path, residents, args.seconds, f"{name}{path[0]}{residents}",
                                          args.same_resident)
                        print("\n".join([*rows(name, [level]), *cpu_rows(name, [level])]), flush=True)
                        done.append(level)
                results.append(Run(name, stack.shape, startup, done, stack.rasa_memory(),
                                   stack.replicas_marked_down() - down_at_start))
            finally:
                stack.supervisor.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    memory = available_memory()
    lines = [
        "# Capacity: one process of each against replicas behind HAProxy",
        "",
        f"Measured {began} UTC on {cpus} CPUs"
        + (f", {memory / (1 << 30):.0f} GiB available" if memory else "")
        + f" (python scripts/bench_capacity.py --shapes {args.shapes} --levels {args.levels} "
        f"--seconds {args.seconds:g}). Closed loop, no think time: each resident sends its next message as soon "
        "as it has the answer, repair conversations of 4 turns (scripts/bench.py's) over and over, for "
        f"{args.seconds:g} s per level, "
        + ("each thread one resident (one openid) for all its conversations, so one ever longer Rasa session. "
           if args.same_resident else
           "each conversation a new resident (a new openid) taking the place of the one who finished. ")
        + "SQLite ticket store; Rasa's in-memory tracker and lock stores.",
        "",
        "Shapes: **single** = one Rasa, one action server, one gateway, no HAProxy (`RASA_REPLICAS=1 "
        "ACTION_REPLICAS=1 GATEWAY_REPLICAS=1`); **N** = N Rasa replicas (sticky per resident), "
        f"{cpus} action servers and {min(2, cpus)} gateways behind HAProxy (N=1: the one Rasa without HAProxy "
        "in front of it).",
        "",
        "| shape | processes | start-up s | Rasa memory (RSS, each) | replicas marked DOWN |",
        "|---|---|---|---|---|",
        *[f"| {run.name} | {run.shape.describe()} | {run.startup:.0f} | "
          f"{', '.join(f'{size / (1 << 30):.2f} GiB' for size in run.rasa_memory)} | "
          f"{run.marked_down if run.shape.balanced else '-'} |" for run in results],
        "",
        "Latency per turn: from sending the message to having the answer (a deferred answer: until its "
        "customer-service message arrived). Deferred: turns whose answer missed the passive budget (4 s) as "
        "the residents saw it (the gateways' `wuye_deferred_replies_total` in brackets). Load: the 1-minute load "
        "average at the start and at the end of the level.",
        "",
        "| shape | way in | residents | turns | p50 ms | p95 ms | turns/s | deferred | tickets | errors | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *[row for run in results for row in rows(run.name, run.levels)],
        "",
        "CPU per turn (ms), by kind of process, from /proc over each level (every replica of a kind summed; "
        "the residents' client and the load generator are not counted); busy cores: all these processes' CPU "
        "seconds per second of the level.",
        "",
        "| shape | way in | residents | Rasa | action servers | gateways | HAProxy | total | busy cores |",
        "|---|---|---|---|---|---|---|---|---|",
        *[row for run in results for row in cpu_rows(run.name, run.levels)],
        "",
    ]
    errors = [f"{run.name} {level.path} {level.residents}: "
              + ", ".join(f"{count} × {kind}" for kind, count in sorted(level.errors.items()))
              for run in results for level in run.levels if level.errors]
    if errors:
        lines += ["Errors (a turn that got no answer ends that conversation; the resident starts the next):", "",
                  *[f"- {line}" for line in errors], ""]
    report = "\n".join(lines)
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
