"""Start the local stack: action server, Rasa server, gateway, worker (and staff bot), as child processes.

Used by `make run` (python -m bot stack), which keeps them running with bot.app.supervisor,
and by the end-to-end tests (the start_* helpers), so both start the real servers the same way.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import partial
from pathlib import Path
from typing import Callable

from bot.app import balancer, migrate
from bot.app.balancer import Frontends, Shape
from bot.app.model_cache import assistant_python, ensure_model
from bot.app.services import company_of
from bot.app.supervisor import ChildSpec, Policy, Service, StartupFailed, Supervisor
from bot.settings import DEVELOPMENT_VALUES, PROJECT_ROOT, Settings


def _spawn(name: str, argv: list[str], health_urls: tuple[str, ...], env: dict[str, str], log_dir: Path | None,
           health_token: str = "") -> Service:
    log_file = None
    log_path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        log_file = open(log_path, "ab")
    process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=log_file or None,
                               stderr=subprocess.STDOUT if log_file else None)
    return Service(name, process, health_urls, log_path, log_file, health_token)


def _answers_200(url: str, token: str) -> bool:
    if token:
        url = f"{url}?{urllib.parse.urlencode({'token': token})}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def is_healthy(service: Service) -> bool:
    """Every health URL of the service answers 200 (true for one without an HTTP side)."""
    return all(_answers_200(url, service.health_token) for url in service.health_urls)


def wait_until_healthy(service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    settle = time.monotonic() + 2
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            hint = f" (see {service.log_path})" if service.log_path else ""
            raise RuntimeError(f"{service.name} exited with code {service.process.returncode}{hint}")
        if not service.health_urls:
            if time.monotonic() >= settle:  # no HTTP side (the worker): alive after a moment is healthy
                return
            time.sleep(0.2)
            continue
        if all(_answers_200(url, service.health_token) for url in service.health_urls):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{service.name} not healthy at {', '.join(service.health_urls)} after {timeout:.0f} s")


def write_endpoints(path: Path, action_port: int) -> Path:
    path.write_text(f'action_endpoint:\n  url: "http://127.0.0.1:{action_port}/webhook"\n', encoding="utf-8")
    return path


def start_action_server(port: int, env: dict[str, str], log_dir: Path | None = None, name: str = "actions") -> Service:
    argv = [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)]
    # The action server writes tickets for whoever calls it and has no auth of its own: only
    # Rasa (here on loopback) may reach it. rasa_sdk takes its bind address from SANIC_HOST
    # and would otherwise listen on every interface.
    return _spawn(name, argv, (f"http://127.0.0.1:{port}/health",), dict(env, SANIC_HOST="127.0.0.1"), log_dir)


class MissingRasaToken(RuntimeError):
    pass


def start_rasa(model: Path, port: int, endpoints: Path, env: dict[str, str], log_dir: Path | None = None,
               name: str = "rasa") -> Service:
    """Rasa with its HTTP API behind env's RASA_AUTH_TOKEN, in every mode: without a token the
    API lets anyone who reaches it read and rewrite any resident's conversation or replace the model."""
    token = env.get("RASA_AUTH_TOKEN", "")
    if not token:
        raise MissingRasaToken("RASA_AUTH_TOKEN is not set; Rasa's HTTP API is never started without a token")
    # bot.rasa_run is `rasa run` with its action-response schema checked once (docs/profile.md).
    argv = [str(assistant_python()), "-m", "bot.rasa_run", "run", "--enable-api", "--auth-token", token,
            "--model", str(model), "--port", str(port), "--interface", "127.0.0.1", "--endpoints", str(endpoints),
            "--credentials", str(PROJECT_ROOT / "credentials.yml")]
    return _spawn(name, argv, (f"http://127.0.0.1:{port}/status",), env, log_dir, health_token=token)


def start_worker(env: dict[str, str], log_dir: Path | None = None, name: str = "worker") -> Service:
    return _spawn(name, [sys.executable, "-m", "bot", "worker"], (), env, log_dir)


def start_staffbot(env: dict[str, str], log_dir: Path | None = None) -> Service:
    return _spawn("staffbot", [sys.executable, "-m", "bot", "staffbot"], (), env, log_dir)


def start_gateway(host: str, port: int, env: dict[str, str], log_dir: Path | None = None,
                  staff_port: int | None = None, name: str = "gateway") -> Service:
    """The gateway's public listener on host:port and its staff API listener on loopback at
    staff_port (env's STAFF_PORT, or its default, when not given); healthy when both answer."""
    staff_port = staff_port or int(env.get("STAFF_PORT") or Settings().staff_port)
    argv = [sys.executable, "-m", "bot", "serve", "--host", host, "--port", str(port),
            "--staff-host", "127.0.0.1", "--staff-port", str(staff_port)]
    health = (f"http://{host}:{port}/healthz", f"http://127.0.0.1:{staff_port}/healthz")
    return _spawn(name, argv, health, env, log_dir)


def start_haproxy(config: Path, health_urls: tuple[str, ...], env: dict[str, str],
                  log_dir: Path | None = None) -> Service:
    """HAProxy in the foreground on `config` (bot.app.balancer); up when each frontend reaches a replica."""
    return _spawn("haproxy", balancer.haproxy_argv(config), health_urls, env, log_dir)


def development_env(settings: Settings) -> dict[str, str]:
    """The stack's environment. Development values are filled in only for development: with
    WUYE_ENV set to anything else, every secret must come from the environment."""
    env = dict(os.environ, DATABASE_URL=settings.database_url, PYTHONUNBUFFERED="1")
    if env.get("WUYE_ENV", "development") != "development":
        return env
    for key, value in DEVELOPMENT_VALUES.items():
        env.setdefault(key, value)
    env.setdefault("WECHAT_API_BASE_URL", f"http://127.0.0.1:{settings.gateway_port}/dev/wechat-api")
    env.setdefault("WECHAT_ALLOW_PLAINTEXT", "1")  # the simulator offers both modes
    env.setdefault("RASA_URL", f"http://127.0.0.1:{settings.rasa_port}")
    env.setdefault("ACTION_SERVER_URL", f"http://127.0.0.1:{settings.action_port}")
    return env


def shown_secret(env: dict[str, str], name: str) -> str:
    """What `make run` may print for a secret: the development value itself (the newcomer
    needs it to try the API), otherwise only the variable that holds it."""
    value = env.get(name, "")
    return value if value and value == DEVELOPMENT_VALUES.get(name) else f"${name}"


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def stack_log(path: Path) -> Callable[[str], None]:
    """The supervisor's messages: to stderr and appended to var/log/stack.log."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {message}"
        print(line, file=sys.stderr, flush=True)
        with open(path, "a", encoding="utf-8") as file:
            file.write(line + "\n")
    return log


def _numbered(name: str, index: int, count: int) -> str:
    return name if count == 1 else f"{name}-{index}"


def stack_children(settings: Settings, env: dict[str, str], model: Path, endpoints: Path,
                   log_dir: Path, shape: Shape | None = None, haproxy_config: Path | None = None) -> list[ChildSpec]:
    """What `make run` starts, in order; HTTP services are up when their health URLs answer,
    the worker and the staff bot while they keep touching their heartbeat files. `shape`: how
    many of each (bot.app.balancer; default one of each, on the public ports, no HAProxy);
    when several, HAProxy (on `haproxy_config`) comes first, on the public ports."""
    shape = shape or Shape.single(settings)
    children = []
    if shape.balanced:
        if haproxy_config is None:
            raise ValueError("several replicas need an HAProxy config")
        urls = balancer.health_urls(shape, Frontends.of(settings))
        children.append(ChildSpec("haproxy", lambda: start_haproxy(haproxy_config, urls, env, log_dir),
                                  ready=is_healthy))
    for index, port in enumerate(shape.actions, start=1):
        name = _numbered("actions", index, len(shape.actions))
        children.append(ChildSpec(name, partial(start_action_server, port, env, log_dir, name), ready=is_healthy))
    for index, port in enumerate(shape.rasa, start=1):
        name = _numbered("rasa", index, len(shape.rasa))
        children.append(ChildSpec(name, partial(start_rasa, model, port, endpoints, env, log_dir, name),
                                  ready=is_healthy))
    # One gateway listens where the public one would; several behind HAProxy listen on loopback.
    host = settings.gateway_host if len(shape.gateways) == 1 else "127.0.0.1"
    for index, (port, staff_port) in enumerate(shape.gateways, start=1):
        name = _numbered("gateway", index, len(shape.gateways))
        children.append(ChildSpec(name, partial(start_gateway, host, port, env, log_dir, staff_port, name),
                                  ready=is_healthy))
    for index in range(1, shape.workers + 1):
        name = _numbered("worker", index, shape.workers)
        worker_env = env
        if shape.workers > 1:  # each its own heartbeat and metrics port
            beat = Path(env["WORKER_HEARTBEAT_FILE"])
            worker_env = dict(env, WORKER_HEARTBEAT_FILE=str(beat.with_name(f"{beat.stem}-{index}{beat.suffix}")),
                              WORKER_METRICS_PORT=str(settings.worker_metrics_port + index - 1)
                              if settings.worker_metrics_port else "0")
        children.append(ChildSpec(name, partial(start_worker, worker_env, log_dir, name),
                                  heartbeat=Path(worker_env["WORKER_HEARTBEAT_FILE"])))
    if env.get("TELEGRAM_BOT_TOKEN") and env.get("STAFF_CHAT_ID"):
        children.append(ChildSpec("staffbot", lambda: start_staffbot(env, log_dir),
                                  heartbeat=Path(env["STAFFBOT_HEARTBEAT_FILE"])))
    return children


def prepare_balancer(settings: Settings, shape: Shape, env: dict[str, str], run_dir: Path) -> Path | None:
    """var/haproxy.cfg for `shape`, checked by `haproxy -c`; None when one process of each needs none."""
    if not shape.balanced:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir.parent / "haproxy.cfg"
    development = env.get("WUYE_ENV", "development") == "development"
    config.write_text(balancer.haproxy_config(shape, Frontends.of(settings), run_dir / "haproxy.sock",
                                              development=development), encoding="utf-8")
    balancer.check_config(config)
    return config


def _ports(ports: tuple[int, ...]) -> str:
    return str(ports[0]) if len(ports) == 1 else f"{ports[0]}-{ports[-1]}"


def shape_lines(settings: Settings, shape: Shape, config: Path | None) -> list[str]:
    """The banner's account of how many processes run where."""
    lines = [f"  shape          {shape.describe()}"]
    if shape.balanced:
        if len(shape.rasa) > 1:
            lines.append(f"                 Rasa :{settings.rasa_port} -> {len(shape.rasa)} replicas on "
                         f":{_ports(shape.rasa)}, each resident on one (hash of X-Wuye-Sender)")
        if len(shape.actions) > 1:
            lines.append(f"                 actions :{settings.action_port} -> {len(shape.actions)} on "
                         f":{_ports(shape.actions)}, round robin")
        if len(shape.gateways) > 1:
            lines.append(f"                 gateway :{settings.gateway_port} -> {len(shape.gateways)} on "
                         f":{_ports(tuple(p for p, _ in shape.gateways))} (hash of ?openid=), staff "
                         f":{settings.staff_port} -> :{_ports(tuple(s for _, s in shape.gateways))}")
        lines.append(f"                 HAProxy config {config} (logs no traffic)")
    lines += [f"                 note: {note}" for note in shape.notes]
    return lines


def run_stack(settings: Settings) -> int:
    """`make run`: bring everything up, print where to go, restart what dies (bot.app.supervisor),
    stop everything on Ctrl-C / SIGTERM or when one child keeps crashing."""
    migrate.upgrade(settings.database_url, project=company_of(settings).default_code)
    model = ensure_model()
    log_dir = PROJECT_ROOT / "var" / "log"
    env = development_env(settings)
    # The children and the supervisor agree on where the heartbeats are.
    env["WORKER_HEARTBEAT_FILE"] = str(settings.worker_heartbeat_file)
    env["STAFFBOT_HEARTBEAT_FILE"] = str(settings.staffbot_heartbeat_file)
    endpoints = write_endpoints(PROJECT_ROOT / "var" / "endpoints.local.yml", settings.action_port)
    log = stack_log(log_dir / "stack.log")
    shape = balancer.plan(settings, memory=balancer.available_memory())
    for note in shape.notes:
        log(note)
    config = prepare_balancer(settings, shape, env, PROJECT_ROOT / "var" / "run")
    children = stack_children(settings, env, model, endpoints, log_dir, shape, config)
    policy = Policy.from_env(env)
    supervisor = Supervisor(children, policy, log=log)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        supervisor.start()
        try:
            supervisor.wait_started(timeout=policy.start_timeout)
        except StartupFailed as exc:
            print(f"stack not started: {exc}", file=sys.stderr)
            return 1
        host, port = settings.gateway_host, settings.gateway_port
        telegram = any(child.name == "staffbot" for child in children)
        staff_bot = (f"Telegram, posting cases to chat {env['STAFF_CHAT_ID']}" if telegram
                     else "off (set TELEGRAM_BOT_TOKEN and STAFF_CHAT_ID); escalations wait in /api/alerts")
        lines = [
            "",
            "物业客服助手 is running:",
            f"  WeChat simulator  http://{host}:{port}/dev/simulator  <- start here",
            f"  gateway        http://{host}:{port}/  (health: /healthz, WeChat: /wechat)",
            f"  staff API      http://127.0.0.1:{settings.staff_port}/api/tickets  "
            f"(own listener; Authorization: Bearer {shown_secret(env, 'STAFF_API_TOKEN')})",
            "                 signed in as 演示员工 (every role, every project; development only); "
            "add real staff with: python -m bot staff add …",
            f"  web console    http://127.0.0.1:{settings.staff_port}/console/  (login demo / "
            f"{shown_secret(env, 'CONSOLE_DEMO_PASSWORD')})",
            f"  Rasa REST      http://127.0.0.1:{settings.rasa_port}/webhooks/rest/webhook  "
            f"(HTTP API: ?token={shown_secret(env, 'RASA_AUTH_TOKEN')})",
            f"  action server  http://127.0.0.1:{settings.action_port}/health",
            "  worker         callbacks, progress updates, SLA checks (python -m bot worker)",
            *shape_lines(settings, shape, config),
            f"  staff bot      {staff_bot}",
            f"  ticket store   {settings.database_url}",
            f"  logs           {log_dir}/  (restarts: stack.log)",
            f"Try: curl -s localhost:{settings.rasa_port}/webhooks/rest/webhook "
            "-d '{\"sender\":\"demo\",\"message\":\"我要报修\"}'",
            f"A child that dies or gets stuck is restarted (logged in stack.log); one that fails again after "
            f"{policy.max_restarts} restarts within {policy.restart_window:g} s stops the stack. Press Ctrl-C to stop.",
        ]
        print("\n".join(lines), flush=True)
        return supervisor.run()
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C must not leave children behind: stopping is bounded (SIGKILL after the timeout).
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        supervisor.stop()
