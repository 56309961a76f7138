"""Keep `make run`'s child processes running: restart one that dies, back off, give up on a crash loop.

One loop in the stack's own process looks at every child each `poll_interval`:

- A child that exits, whose heartbeat file goes stale (the worker, the staff bot: they have no
  HTTP side), or that is not up within `start_timeout` of being started, is stopped (SIGTERM,
  then SIGKILL) and started again after a delay: `initial_delay`, doubled on each further
  restart up to `max_delay`, and back to `initial_delay` once the child has stayed up for
  `healthy_after`. Each restart is logged: the child, its exit code or signal, the attempt and
  the delay. The other children keep running meanwhile.
- A restarted child counts as up again only when its health probe answers (an HTTP service's
  health URLs), or it has written a heartbeat, or (neither) it is still alive after `settle`.
- More than `max_restarts` restarts of one child within `restart_window`: a crash loop. The
  supervisor gives up, saying so, and the caller stops the stack.

The clock, the wall clock (heartbeat files carry wall-clock times) and sleep are injectable.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Callable, Mapping

from bot.core import heartbeat


@dataclass
class Service:
    """One child process (and the log file it writes to)."""
    name: str
    # Not in the repr: its argv holds Rasa's auth token.
    process: subprocess.Popen = field(repr=False)
    # Each must answer 200 for the service to be healthy; none: no HTTP side (the worker).
    health_urls: tuple[str, ...]
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)
    # Sent as `?token=` with each health check and never shown: Rasa's /status needs it.
    health_token: str = field(default="", repr=False)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; closes the log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log:
            self._log.close()
            self._log = None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class Policy:
    initial_delay: float = 1.0
    max_delay: float = 30.0
    # Up this long: the next restart waits `initial_delay` again.
    healthy_after: float = 60.0
    # More restarts than this within restart_window: a crash loop, the stack stops.
    max_restarts: int = 5
    restart_window: float = 300.0
    # A heartbeat older than this: the child is stuck and restarted.
    heartbeat_max_age: float = 180.0
    # A (re)started child not up by then is stopped and restarted. Generous: several Rasa
    # processes loading their models at once on a busy 2-core machine took up to 426 s.
    start_timeout: float = 600.0
    # Without a health probe or heartbeat: alive this long after starting is up.
    settle: float = 2.0
    # SIGTERM, then SIGKILL after this long.
    stop_timeout: float = 15.0
    poll_interval: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Policy":
        d = cls()
        return cls(
            initial_delay=_seconds(env, "STACK_BACKOFF_INITIAL", d.initial_delay),
            max_delay=_seconds(env, "STACK_BACKOFF_MAX", d.max_delay),
            healthy_after=_seconds(env, "STACK_HEALTHY_AFTER", d.healthy_after),
            max_restarts=int(env.get("STACK_RESTART_LIMIT") or d.max_restarts),
            restart_window=_seconds(env, "STACK_RESTART_WINDOW", d.restart_window),
            heartbeat_max_age=_seconds(env, "HEARTBEAT_MAX_AGE", d.heartbeat_max_age),
            start_timeout=_seconds(env, "STACK_START_TIMEOUT", d.start_timeout),
            stop_timeout=_seconds(env, "STACK_STOP_TIMEOUT", d.stop_timeout),
        )

    def delay(self, attempt: int) -> float:
        """The wait before restart number `attempt` (1, 2, …) since the child was last up for long."""
        return min(self.max_delay, self.initial_delay * 2 ** max(0, attempt - 1))


@dataclass
class ChildSpec:
    name: str
    start: Callable[[], Service]
    # The health probe (an HTTP service's health URLs); None: the heartbeat, or alive for `settle`.
    ready: Callable[[Service], bool] | None = None
    # Touched by the child each round of its loop; stale: stuck, restarted.
    heartbeat: Path | None = None


class CrashLoop(RuntimeError):
    pass


class StartupFailed(RuntimeError):
    pass


class State(Enum):
    STARTING = "starting"
    UP = "up"
    WAITING = "waiting to restart"
    STOPPED = "stopped"


@dataclass
class _Child:
    spec: ChildSpec
    service: Service | None = None
    state: State = State.STOPPED
    since: float = 0.0  # when it was started (STARTING) or came up (UP)
    restart_at: float = 0.0
    attempt: int = 0  # restarts since it was last up for healthy_after
    restarts: deque[float] = field(default_factory=deque)  # when, within restart_window
    starts: int = 0


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def log_to_stderr(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} supervisor: {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, specs: list[ChildSpec], policy: Policy | None = None, *,
                 log: Callable[[str], None] = log_to_stderr, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy = policy or Policy()
        self.log = log
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self._children = [_Child(spec) for spec in specs]
        self._halted = threading.Event()

    # --- what is running ------------------------------------------------------------------

    def service(self, name: str) -> Service | None:
        return self._child(name).service

    def state(self, name: str) -> State:
        return self._child(name).state

    def services(self) -> list[Service]:
        return [c.service for c in self._children if c.service is not None]

    def _child(self, name: str) -> _Child:
        for child in self._children:
            if child.spec.name == name:
                return child
        raise KeyError(name)

    # --- starting -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every child, in order (without waiting for any)."""
        for child in self._children:
            self._spawn(child)

    def wait_started(self, timeout: float | None = None) -> None:
        """Until every child is up. At start-up nothing is restarted: a child that exits (or is
        not up in time) is a broken setup, raised as StartupFailed."""
        timeout = self.policy.start_timeout if timeout is None else timeout
        deadline = self.clock() + timeout
        while True:
            waiting = []
            for child in self._children:
                if child.state is not State.STARTING:
                    continue
                assert child.service is not None
                code = child.service.process.poll()
                if code is not None:
                    raise StartupFailed(f"{child.spec.name} exited with {describe_exit(code)}{self._hint(child)}")
                if self._ready(child):
                    child.state, child.since = State.UP, self.clock()
                else:
                    waiting.append(child.spec.name)
            if not waiting:
                return
            if self.clock() >= deadline:
                raise StartupFailed(f"{', '.join(waiting)} not up after {timeout:g} s")
            self.sleep(min(0.5, self.policy.poll_interval))

    def _spawn(self, child: _Child) -> None:
        if child.spec.heartbeat is not None:
            # A beat left by the last run does not say the new process is up.
            child.spec.heartbeat.unlink(missing_ok=True)
        child.service = child.spec.start()
        child.state, child.since = State.STARTING, self.clock()
        child.starts += 1

    def _ready(self, child: _Child) -> bool:
        assert child.service is not None
        spec = child.spec
        if spec.ready is not None and not spec.ready(child.service):
            return False
        if spec.heartbeat is not None:
            return heartbeat.age(spec.heartbeat, self.wall()) is not None
        return spec.ready is not None or self.clock() - child.since >= self.policy.settle

    # --- supervising ----------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until a crash loop (1, after logging it) or halt() (0); KeyboardInterrupt ends it too."""
        try:
            while not self._halted.is_set():
                self.step()
                self.sleep(self.policy.poll_interval)
            return 0
        except CrashLoop as crash:
            self.log(str(crash))
            return 1

    def halt(self) -> None:
        """Make run(), in another thread, return after its current round (then stop() the children)."""
        self._halted.set()

    def step(self) -> None:
        """Look at every child once: restart what is due, notice what died or got stuck."""
        for child in self._children:
            self._check(child)

    def _check(self, child: _Child) -> None:
        policy, name = self.policy, child.spec.name
        if child.state is State.STOPPED:
            return
        if child.state is State.WAITING:
            if self.clock() >= child.restart_at:
                self._spawn(child)
                assert child.service is not None
                self.log(f"{name} restarted (attempt {child.attempt}, pid {child.service.process.pid})")
            return
        assert child.service is not None
        code = child.service.process.poll()
        if code is not None:
            self._failed(child, f"exited with {describe_exit(code)}")
            return
        now = self.clock()
        if child.state is State.STARTING:
            if self._ready(child):
                child.state, child.since = State.UP, now
                self.log(f"{name} is up again (pid {child.service.process.pid})")
            elif now - child.since > policy.start_timeout:
                self._failed(child, f"not up {policy.start_timeout:g} s after starting")
            return
        if child.attempt and now - child.since >= policy.healthy_after:
            child.attempt = 0  # it has stayed up: the next restart starts from initial_delay
        if child.spec.heartbeat is not None:
            age = heartbeat.age(child.spec.heartbeat, self.wall())
            if age is None or age > policy.heartbeat_max_age:
                last = "missing" if age is None else f"{age:.1f} s old"
                self._failed(child, f"is stuck (heartbeat {child.spec.heartbeat} {last}, "
                                    f"limit {policy.heartbeat_max_age:g} s)")

    def _failed(self, child: _Child, reason: str) -> None:
        policy, name = self.policy, child.spec.name
        assert child.service is not None
        pid = child.service.process.pid
        child.service.stop(policy.stop_timeout)  # still running when stuck: SIGTERM, then SIGKILL
        now = self.clock()
        while child.restarts and now - child.restarts[0] > policy.restart_window:
            child.restarts.popleft()
        if len(child.restarts) >= policy.max_restarts:
            child.state = State.STOPPED
            raise CrashLoop(f"{name} (pid {pid}) {reason}, after {len(child.restarts)} restarts within "
                            f"{policy.restart_window:g} s: a crash loop; giving up and stopping the stack"
                            f"{self._hint(child)}")
        child.restarts.append(now)
        child.attempt += 1
        delay = policy.delay(child.attempt)
        child.state, child.restart_at = State.WAITING, now + delay
        self.log(f"{name} (pid {pid}) {reason}; restart attempt {child.attempt} in {delay:g} s{self._hint(child)}")

    @staticmethod
    def _hint(child: _Child) -> str:
        path = child.service.log_path if child.service is not None else None
        return f" (see {path})" if path else ""

    # --- stopping -------------------------------------------------------------------------

    def stop(self, timeout: float | None = None) -> None:
        """Stop every child: SIGTERM to all at once (the last started first), SIGKILL to any
        still running `timeout` seconds later; wait for each, so none is left behind."""
        timeout = self.policy.stop_timeout if timeout is None else timeout
        running = [c for c in reversed(self._children) if c.service is not None]
        for child in running:
            assert child.service is not None
            if child.service.process.poll() is None:
                child.service.process.send_signal(signal.SIGTERM)
        deadline = self.clock() + timeout
        for child in running:
            assert child.service is not None
            child.service.stop(max(0.0, deadline - self.clock()))
            child.state = State.STOPPED
        for child in self._children:
            child.state = State.STOPPED
