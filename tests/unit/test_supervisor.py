"""`make run`'s supervisor (bot.app.supervisor) on real child processes (small `python -c`
scripts that exit, sleep, or stop touching their heartbeat), with short delays; and the
heartbeats of the worker and the staff bot. Every wait polls for a condition with a deadline."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import aiohttp
import pytest

from bot.app.stack import is_healthy, stack_children
from bot.app.supervisor import ChildSpec, Policy, Service, StartupFailed, State, Supervisor, describe_exit
from bot.channels.telegram.app import StaffBot
from bot.core import heartbeat
from bot.core.company import Company
from bot.settings import Settings
from tests.unit.test_worker import WED_10, worker_for

DEADLINE = 30.0  # seconds: far more than any of these needs, even on a loaded machine

SLEEP_FOREVER = "import time; time.sleep(600)"
# Beats `count` times (0 = forever), every 0.05 s, then hangs: a stuck worker.
BEATS = ("import pathlib, sys, time\n"
         "path, count = pathlib.Path(sys.argv[1]), int(sys.argv[2])\n"
         "n = 0\n"
         "while count == 0 or n < count:\n"
         "    path.touch(); n += 1; time.sleep(0.05)\n"
         "time.sleep(600)\n")
# Ignores SIGTERM, says so by creating the file argv[1], then sleeps: only SIGKILL ends it.
IGNORES_SIGTERM = ("import pathlib, signal, sys, time\n"
                   "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                   "pathlib.Path(sys.argv[1]).touch()\n"
                   "time.sleep(600)\n")

FAST = Policy(initial_delay=0.02, max_delay=0.1, healthy_after=60, max_restarts=100, restart_window=60,
              heartbeat_max_age=1.0, start_timeout=10, settle=0.05, stop_timeout=2, poll_interval=0.01)


@pytest.fixture
def spawned() -> Iterator[list[Service]]:
    """Every child a test starts; any left running at the end is killed (and the test fails)."""
    services: list[Service] = []
    yield services
    left = [s for s in services if s.process.poll() is None]
    for service in left:
        service.process.kill()
        service.process.wait()
    assert not left, f"children left running: {[s.name for s in left]}"


def script(spawned: list[Service], name: str, code: str, *args: str) -> Callable[[], Service]:
    def start() -> Service:
        service = Service(name, subprocess.Popen([sys.executable, "-c", code, *args]), ())
        spawned.append(service)
        return service
    return start


def exits(code: int, after: float = 0.0) -> str:
    return f"import sys, time; time.sleep({after}); sys.exit({code})"


def until(condition: Callable[[], bool], supervisor: Supervisor | None = None, what: str = "") -> None:
    """Step the supervisor (if any) until `condition` holds; fail after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if supervisor is not None:
            supervisor.step()
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what or condition}")


async def until_async(condition: Callable[[], bool], what: str = "") -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.005)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def pid_of(supervisor: Supervisor, name: str) -> int:
    service = supervisor.service(name)
    assert service is not None
    return service.process.pid


def up_with_new_pid(supervisor: Supervisor, name: str, old: int) -> Callable[[], bool]:
    return lambda: supervisor.state(name) is State.UP and pid_of(supervisor, name) != old


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- restarting ----------------------------------------------------------------------------

def test_a_child_that_exits_is_restarted_and_the_restart_is_logged_with_its_exit_code(spawned):
    log: list[str] = []
    supervisor = Supervisor([ChildSpec("worker", script(spawned, "worker", exits(7, after=0.3))),
                             ChildSpec("other", script(spawned, "other", SLEEP_FOREVER))], FAST, log=log.append)
    try:
        supervisor.start()
        supervisor.wait_started()
        first, other = pid_of(supervisor, "worker"), pid_of(supervisor, "other")
        until(up_with_new_pid(supervisor, "worker", first), supervisor, "the worker restarted")
        assert f"worker (pid {first}) exited with code 7; restart attempt 1 in 0.02 s" in log
        assert any(re.fullmatch(r"worker restarted \(attempt 1, pid \d+\)", line) for line in log)
        assert f"worker is up again (pid {pid_of(supervisor, 'worker')})" in log
        # The other child kept running throughout, and nothing was said about it.
        assert pid_of(supervisor, "other") == other and supervisor.state("other") is State.UP
        assert not any(line.startswith("other") for line in log)
        assert gone(first)
    finally:
        supervisor.stop()


def test_the_backoff_doubles_up_to_its_cap(spawned):
    log: list[str] = []
    supervisor = Supervisor([ChildSpec("flaky", script(spawned, "flaky", exits(1)))], FAST, log=log.append)
    try:
        supervisor.start()
        until(lambda: sum("restart attempt" in line for line in log) >= 5, supervisor, "five restarts")
    finally:
        supervisor.stop()
    delays = [float(m.group(1)) for line in log if (m := re.search(r"restart attempt \d+ in ([\d.]+) s", line))]
    assert delays[:5] == [0.02, 0.04, 0.08, 0.1, 0.1]
    attempts = [int(m.group(1)) for line in log if (m := re.search(r"restart attempt (\d+)", line))]
    assert attempts[:5] == [1, 2, 3, 4, 5]


def test_the_backoff_starts_again_once_the_child_has_stayed_up(spawned):
    clock = FakeClock()
    log: list[str] = []
    policy = Policy(initial_delay=1, max_delay=8, healthy_after=10, max_restarts=100, settle=0, stop_timeout=2)
    supervisor = Supervisor([ChildSpec("gateway", script(spawned, "gateway", SLEEP_FOREVER))], policy,
                            log=log.append, clock=clock)

    def killed_then_back(expected: str) -> None:
        pid = pid_of(supervisor, "gateway")
        os.kill(pid, signal.SIGKILL)
        until(lambda: supervisor.state("gateway") is State.WAITING, supervisor, "the kill noticed")
        assert log[-1] == f"gateway (pid {pid}) exited with signal SIGKILL; {expected}"
        supervisor.step()
        assert supervisor.state("gateway") is State.WAITING  # its delay has not passed on this clock
        clock.now += policy.delay(int(expected.split()[2]))
        until(lambda: supervisor.state("gateway") is State.UP, supervisor, "back up")

    try:
        supervisor.start()
        supervisor.wait_started()
        killed_then_back("restart attempt 1 in 1 s")
        killed_then_back("restart attempt 2 in 2 s")
        killed_then_back("restart attempt 3 in 4 s")
        clock.now += policy.healthy_after
        supervisor.step()
        killed_then_back("restart attempt 1 in 1 s")
    finally:
        supervisor.stop()


def test_a_crash_loop_stops_the_supervisor_with_a_clear_message(spawned):
    log: list[str] = []
    deadline = time.monotonic() + DEADLINE

    def sleep(seconds: float) -> None:
        assert time.monotonic() < deadline, "no crash loop detected"
        time.sleep(seconds)

    policy = Policy(initial_delay=0.01, max_delay=0.02, max_restarts=3, restart_window=60, settle=0.05,
                    poll_interval=0.01)
    supervisor = Supervisor([ChildSpec("rasa", script(spawned, "rasa", exits(3))),
                             ChildSpec("actions", script(spawned, "actions", SLEEP_FOREVER))], policy,
                            log=log.append, sleep=sleep)
    try:
        supervisor.start()
        assert supervisor.run() == 1
        assert sum("restart attempt" in line for line in log) == 3
        assert re.fullmatch(r"rasa \(pid \d+\) exited with code 3, after 3 restarts within 60 s: a crash loop; "
                            r"giving up and stopping the stack", log[-1])
        assert supervisor.state("rasa") is State.STOPPED
    finally:
        supervisor.stop()
    assert all(service.process.poll() is not None for service in spawned)


def test_restarts_long_ago_do_not_count_towards_a_crash_loop(spawned):
    clock = FakeClock()
    log: list[str] = []
    policy = Policy(initial_delay=1, max_delay=1, max_restarts=2, restart_window=60, settle=0, stop_timeout=2)
    supervisor = Supervisor([ChildSpec("worker", script(spawned, "worker", SLEEP_FOREVER))], policy,
                            log=log.append, clock=clock)
    try:
        supervisor.start()
        for _ in range(4):  # four restarts, each a minute after the last: never two within the window
            until(lambda: supervisor.state("worker") is State.UP, supervisor, "up")
            os.kill(pid_of(supervisor, "worker"), signal.SIGKILL)
            until(lambda: supervisor.state("worker") is State.WAITING, supervisor, "the kill noticed")
            clock.now += 61
        until(lambda: supervisor.state("worker") is State.UP, supervisor, "up")
        assert not any("crash loop" in line for line in log)
    finally:
        supervisor.stop()


def test_a_child_that_exits_at_start_up_fails_the_start(spawned):
    policy = dataclasses.replace(FAST, settle=DEADLINE)  # alive for a moment is not up yet
    supervisor = Supervisor([ChildSpec("actions", script(spawned, "actions", exits(2)))], policy, log=print)
    try:
        supervisor.start()
        with pytest.raises(StartupFailed, match="actions exited with code 2"):
            supervisor.wait_started()
    finally:
        supervisor.stop()


# --- health ---------------------------------------------------------------------------------

def test_a_restarted_service_is_up_again_only_once_its_health_probe_answers(spawned):
    answering = {"now": True}
    probed: list[int] = []

    def probe(service: Service) -> bool:
        probed.append(service.process.pid)
        return answering["now"]

    log: list[str] = []
    supervisor = Supervisor([ChildSpec("gateway", script(spawned, "gateway", SLEEP_FOREVER), ready=probe)], FAST,
                            log=log.append)
    try:
        supervisor.start()
        supervisor.wait_started()
        first = pid_of(supervisor, "gateway")
        answering["now"] = False
        os.kill(first, signal.SIGTERM)
        until(lambda: supervisor.state("gateway") is State.STARTING, supervisor, "the restart")
        second = pid_of(supervisor, "gateway")
        until(lambda: probed.count(second) >= 20, supervisor, "the new process probed")
        assert supervisor.state("gateway") is State.STARTING  # alive, but its health URL does not answer
        assert not any("up again" in line for line in log)
        answering["now"] = True
        until(lambda: supervisor.state("gateway") is State.UP, supervisor, "up")
        assert log[-1] == f"gateway is up again (pid {second})"
        assert f"gateway (pid {first}) exited with signal SIGTERM; restart attempt 1 in 0.02 s" in log
    finally:
        supervisor.stop()


def test_a_stale_heartbeat_restarts_the_child_and_not_the_others(spawned, tmp_path):
    stuck, healthy = tmp_path / "run" / "worker.heartbeat", tmp_path / "run" / "staffbot.heartbeat"
    stuck.parent.mkdir()
    log: list[str] = []
    supervisor = Supervisor([
        ChildSpec("worker", script(spawned, "worker", BEATS, str(stuck), "3"), heartbeat=stuck),
        ChildSpec("staffbot", script(spawned, "staffbot", BEATS, str(healthy), "0"), heartbeat=healthy),
    ], FAST, log=log.append)
    try:
        supervisor.start()
        supervisor.wait_started()
        first, bot = pid_of(supervisor, "worker"), pid_of(supervisor, "staffbot")
        until(up_with_new_pid(supervisor, "worker", first), supervisor, "the stuck worker restarted")
        assert any(re.fullmatch(rf"worker \(pid {first}\) is stuck \(heartbeat {re.escape(str(stuck))} [\d.]+ s old, "
                                r"limit 1 s\); restart attempt 1 in 0.02 s", line) for line in log), log
        assert gone(first)  # SIGTERM'd although it was still running
        assert pid_of(supervisor, "staffbot") == bot and supervisor.state("staffbot") is State.UP
        assert not any(line.startswith("staffbot") for line in log)
    finally:
        supervisor.stop()


def test_a_child_with_a_heartbeat_is_up_only_once_it_has_beaten(spawned, tmp_path):
    beat = tmp_path / "worker.heartbeat"
    beat.touch()  # left by an earlier run: says nothing about the new process
    supervisor = Supervisor([ChildSpec("worker", script(spawned, "worker", SLEEP_FOREVER), heartbeat=beat)],
                            FAST, log=print)
    try:
        supervisor.start()
        assert not beat.exists()
        with pytest.raises(StartupFailed, match="worker not up after 0.2 s"):
            supervisor.wait_started(timeout=0.2)
    finally:
        supervisor.stop()


# --- stopping -------------------------------------------------------------------------------

def test_stopping_terminates_every_child_and_kills_one_that_ignores_sigterm(spawned, tmp_path):
    ignoring = tmp_path / "ignoring-sigterm"
    supervisor = Supervisor([
        ChildSpec("actions", script(spawned, "actions", SLEEP_FOREVER)),
        ChildSpec("rasa", script(spawned, "rasa", IGNORES_SIGTERM, str(ignoring))),
        ChildSpec("worker", script(spawned, "worker", exits(1))),  # waiting to be restarted when stopped
        ChildSpec("gateway", script(spawned, "gateway", SLEEP_FOREVER)),
    ], Policy(initial_delay=60, settle=0.05, poll_interval=0.01), log=lambda _: None)
    supervisor.start()
    until(lambda: ignoring.exists() and supervisor.state("worker") is State.WAITING, supervisor, "all started")
    pids = [s.process.pid for s in spawned]
    started = time.monotonic()
    supervisor.stop(timeout=0.5)
    assert time.monotonic() - started < 10
    assert all(gone(pid) for pid in pids)
    codes = {s.name: s.process.returncode for s in spawned}
    assert codes == {"actions": -signal.SIGTERM, "rasa": -signal.SIGKILL, "worker": 1, "gateway": -signal.SIGTERM}
    assert all(supervisor.state(name) is State.STOPPED for name in codes)


def test_exit_codes_and_signals_are_named():
    assert describe_exit(3) == "code 3"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"


def test_the_policy_is_read_from_the_environment():
    policy = Policy.from_env({"STACK_RESTART_LIMIT": "8", "STACK_RESTART_WINDOW": "120", "STACK_BACKOFF_MAX": "45",
                              "HEARTBEAT_MAX_AGE": "90"})
    assert (policy.max_restarts, policy.restart_window, policy.max_delay, policy.heartbeat_max_age) == (8, 120, 45, 90)
    assert Policy.from_env({}) == Policy()
    assert [Policy().delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


# --- the stack's children -----------------------------------------------------------------

def test_the_stack_waits_on_health_urls_and_heartbeats(tmp_path):
    env = {"WORKER_HEARTBEAT_FILE": str(tmp_path / "w.hb"), "STAFFBOT_HEARTBEAT_FILE": str(tmp_path / "s.hb")}
    children = stack_children(Settings(), env, tmp_path / "model.tar.gz", tmp_path / "endpoints.yml", tmp_path)
    assert [c.name for c in children] == ["actions", "rasa", "gateway", "worker"]
    assert all(c.ready is is_healthy and c.heartbeat is None for c in children[:3])
    assert children[3].heartbeat == tmp_path / "w.hb" and children[3].ready is None
    with_bot = stack_children(Settings(), dict(env, TELEGRAM_BOT_TOKEN="t", STAFF_CHAT_ID="-100"),
                              tmp_path / "model.tar.gz", tmp_path / "endpoints.yml", tmp_path)
    assert with_bot[-1].name == "staffbot" and with_bot[-1].heartbeat == tmp_path / "s.hb"


def test_the_heartbeat_files_are_settings():
    settings = Settings.from_env({"WORKER_HEARTBEAT_FILE": "/tmp/w.hb"})
    assert settings.worker_heartbeat_file == Path("/tmp/w.hb")
    assert Settings.from_env({}).staffbot_heartbeat_file.parts[-3:] == ("var", "run", "staffbot.heartbeat")


# --- the heartbeats -------------------------------------------------------------------------

async def beats_each_round(beat: Path, running: asyncio.Task) -> None:
    """The file appears, and each time it is made old it is soon written again."""
    await until_async(beat.exists, "the first beat")
    for _ in range(3):
        os.utime(beat, (0, 0))  # as if last written in 1970
        await until_async(lambda: (heartbeat.age(beat) or 1e9) < 60, "the next beat")
    assert not running.done()


async def test_the_worker_touches_its_heartbeat_each_round(sqlite_store, rules, tmp_path):
    beat = tmp_path / "run" / "worker.heartbeat"
    async with aiohttp.ClientSession() as http:
        worker = worker_for(sqlite_store, rules, http, "http://127.0.0.1:9", WED_10)
        worker.heartbeat = beat
        task = asyncio.create_task(worker.run_forever(poll_interval=0.01))
        try:
            await beats_each_round(beat, task)
        finally:
            worker.stopping.set()
            await task


async def test_the_staff_bots_feed_touches_its_heartbeat_each_round(sqlite_store, rules, tmp_path):
    beat = tmp_path / "run" / "staffbot.heartbeat"
    bot = StaffBot(Settings(), Company.of(rules), sqlite_store)
    task = asyncio.create_task(bot.feed(None, 0.01, beat))  # type: ignore[arg-type]  # nothing to post
    try:
        await beats_each_round(beat, task)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_heartbeat_file_that_cannot_be_written_is_not_fatal(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    heartbeat.beat(blocker / "worker.heartbeat")  # logged, not raised
    assert heartbeat.age(blocker / "worker.heartbeat") is None
