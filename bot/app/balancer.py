"""Several Rasa, action-server and gateway processes on one machine, behind HAProxy.

`make run` uses every core (bot.app.stack): one Rasa process per core, one action server per
core, two gateways, each on an internal loopback port, and HAProxy (Debian's package, run in
the foreground as a supervised child) on the ports one process of each would have had:

- Rasa (RASA_PORT): residents stay on one replica. The assistant client sends each call with
  `X-Wuye-Sender` (a short hash of the resident's openid, never the openid itself), and the
  backend hashes on it (`balance hdr(X-Wuye-Sender)`, `hash-type consistent`). One resident's
  turns are therefore taken by one Rasa process, whose in-memory lock store serialises them
  and whose in-memory tracker store holds the conversation. Rasa's Redis lock store cannot be
  shared by several Rasa instances safely (RasaHQ/rasa#9213), so stickiness is what makes
  replicas safe; the multi-machine shape (docker/endpoints.prod.yml) adds PostgreSQL as tracker
  store and still routes each resident to one Rasa.
- Action servers (ACTION_PORT): stateless, round robin.
- Gateway public listener (GATEWAY_PORT): WeChat puts the resident's openid in every push URL's
  query, and the backend hashes on it (`balance url_param openid`, consistent), so a resident's
  pushes and redeliveries meet the same process (its one-message-in-flight lock, its record of
  what is in flight). Staff listener (STAFF_PORT): round robin.

A replica that dies is out of the rotation within about a second (`option httpchk` every
500 ms, `fall 2`); a request that could not even connect to it is sent to another replica
(`retry-on conn-failure`, `option redispatch`). A request that reached a replica is never sent
again, whatever happened to it: a repeated POST would be a second turn, or a second ticket.

HAProxy logs nothing here: its request log would hold the URLs, and those carry openids (the
gateway's query, Rasa's /conversations/<openid>/… paths) and Rasa's token (`?token=`).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.app.access_log import HEALTH_CHECK_HEADER  # on HAProxy's checks of the gateways
from bot.settings import Settings

# Rasa with its model loaded takes this much memory (1.9 GiB resident measured, scripts/
# bench_capacity.py); the rest of the stack keeps RESERVED_MEMORY. The automatic replica count
# never plans more Rasa processes than fit.
RASA_MEMORY = 2 << 30
RESERVED_MEMORY = 2 << 30
DEFAULT_GATEWAYS = 2

# How fast a dead replica leaves the rotation: checked every 500 ms (250 ms once a check failed),
# out after 2 failed checks, back after 2 good ones (about 1 s each way; a refused connection
# fails a check at once, a slow answer only after `timeout check`).
CHECK = "inter 500ms fastinter 250ms downinter 1s fall 2 rise 2"
# Longest answers each side may take. The gateway's assistant client gives up on Rasa after 60 s
# (bot.assistant.client); Rasa gives up on an action after 300 s (its endpoint default); the
# gateway holds a push for at most the passive-reply budget (a few seconds for WeChat).
RASA_TIMEOUT = "120s"
ACTION_TIMEOUT = "310s"
GATEWAY_TIMEOUT = "120s"


@dataclass(frozen=True)
class Shape:
    """How many processes of each kind run, and on which ports. A kind with one process has it
    on its public port (no HAProxy in front of it); with several, they are on internal ports."""

    rasa: tuple[int, ...]
    actions: tuple[int, ...]
    gateways: tuple[tuple[int, int], ...]  # (public listener, staff listener)
    workers: int = 1
    # Why a count is lower than asked or than the cores would allow; printed at start.
    notes: tuple[str, ...] = field(default=())

    @classmethod
    def single(cls, settings: Settings) -> "Shape":
        """One process of each, on the public ports: the stack without HAProxy."""
        return cls((settings.rasa_port,), (settings.action_port,), ((settings.gateway_port, settings.staff_port),))

    @property
    def balanced(self) -> bool:
        return len(self.rasa) > 1 or len(self.actions) > 1 or len(self.gateways) > 1

    def describe(self) -> str:
        def kind(count: int, one: str, several: str) -> str:
            return f"{count} {one if count == 1 else several}"
        parts = [kind(len(self.rasa), "Rasa process", "Rasa processes"),
                 kind(len(self.actions), "action server", "action servers"),
                 kind(len(self.gateways), "gateway", "gateways"), kind(self.workers, "worker", "workers")]
        return ", ".join(parts) + (" behind HAProxy" if self.balanced else " (no HAProxy)")


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes (Linux), None where it cannot be read."""
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite")


def plan(settings: Settings, cpus: int | None = None, memory: int | None = None) -> Shape:
    """The shape `make run` starts: RASA_REPLICAS, ACTION_REPLICAS, GATEWAY_REPLICAS and
    WORKER_REPLICAS when set (1: one process, no HAProxy), else every core: a Rasa process and
    an action server per core (fewer Rasa when memory is short), two gateways (one on a
    one-core machine), one worker."""
    cpus = cpus or os.cpu_count() or 1
    notes: list[str] = []
    rasa = settings.rasa_replicas or cpus
    if not settings.rasa_replicas and memory is not None:
        fit = max(1, (memory - RESERVED_MEMORY) // RASA_MEMORY)
        if fit < rasa:
            notes.append(f"{rasa} cores but {memory / (1 << 30):.1f} GiB available: {fit} Rasa process(es) "
                         f"(about {RASA_MEMORY >> 30} GiB each)")
            rasa = int(fit)
    actions = settings.action_replicas or cpus
    # Several gateways (and action servers) on one SQLite file are safe: bot.db.store opens it in
    # WAL mode (readers never wait for the writer), with a 30 s busy timeout, and every write
    # transaction starts with BEGIN IMMEDIATE, so writers queue for the one write lock instead of
    # failing with "database is locked". The gateway already shared the file with the worker
    # and the action server; a message waiting for Rasa is retried by the replica holding its
    # lease (bot.channels.wechat.inbound), so two gateways never both answer it.
    gateways = settings.gateway_replicas or min(DEFAULT_GATEWAYS, cpus)
    workers = settings.worker_replicas or 1
    if workers > 1 and _is_sqlite(settings.database_url):
        # Claims are safe on SQLite too (BEGIN IMMEDIATE), but every claim and every finished job
        # takes the one write lock the gateways and action servers need for residents' messages.
        notes.append(f"WORKER_REPLICAS={workers} asked, 1 worker: the ticket store is SQLite (one writer at a time; "
                     "several workers are for PostgreSQL, which they claim from with SKIP LOCKED)")
        workers = 1
    if not (rasa > 1 or actions > 1 or gateways > 1):
        return replace(Shape.single(settings), workers=workers, notes=tuple(notes))
    if shutil.which("haproxy") is None:
        notes.append("haproxy is not installed (scripts/ensure-haproxy.sh): one process of each")
        return replace(Shape.single(settings), workers=workers, notes=tuple(notes))

    def ports(base: int, count: int, public: int) -> tuple[int, ...]:
        return (public,) if count == 1 else tuple(base + i for i in range(count))

    gateway_ports = ports(settings.gateway_replica_port, gateways, settings.gateway_port)
    staff_ports = ports(settings.staff_replica_port, gateways, settings.staff_port)
    return Shape(ports(settings.rasa_replica_port, rasa, settings.rasa_port),
                 ports(settings.action_replica_port, actions, settings.action_port),
                 tuple(zip(gateway_ports, staff_ports)), workers, tuple(notes))


@dataclass(frozen=True)
class Frontends:
    """Where HAProxy listens: the public ports of the kinds that have several processes."""

    rasa_port: int
    action_port: int
    gateway_host: str
    gateway_port: int
    staff_host: str
    staff_port: int

    @classmethod
    def of(cls, settings: Settings) -> "Frontends":
        return cls(settings.rasa_port, settings.action_port, settings.gateway_host, settings.gateway_port,
                   settings.staff_host, settings.staff_port)


def _servers(prefix: str, ports: tuple[int, ...], backup_after: int | None = None) -> list[str]:
    lines = []
    for index, port in enumerate(ports, start=1):
        backup = " backup" if backup_after is not None and index > backup_after else ""
        lines.append(f"    server {prefix}{index} 127.0.0.1:{port} check{backup}")
    return lines


def haproxy_config(shape: Shape, front: Frontends, stats_socket: Path, *, development: bool = False) -> str:
    """haproxy.cfg for `shape` (only the kinds with several processes get a frontend)."""
    lines = [
        "# Written by bot/app/balancer.py at each start of the stack; edits are overwritten.",
        "global",
        "    nbthread 1",  # tens of requests a second: one thread, the cores are the replicas'
        f"    stats socket {stats_socket} mode 600 level user",
        "    # No `log` line: HAProxy logs no traffic (URLs carry openids and Rasa's token).",
        "",
        "defaults",
        "    mode http",
        "    no log",
        # Clients keep their connections; each request gets a new loopback connection to a replica
        # (microseconds): a connect to a replica that has died is refused, and retried elsewhere,
        # where a request on a kept-alive connection to it would fail after it was sent.
        "    option http-server-close",
        # Loopback connects in microseconds: a refused or hanging one is a dead replica, retried elsewhere.
        "    timeout connect 1s",
        "    timeout http-request 15s",
        "    timeout http-keep-alive 30s",
        f"    timeout client {ACTION_TIMEOUT}",
        "    timeout queue 30s",
        # A check that is refused fails at once (a dead replica); one that is slow to answer is not
        # failed for being slow: a busy Rasa serves its health URL between the turns queued in its
        # event loop, seconds later at full load, and taking it out would move its residents
        # (and lose their conversations) for nothing.
        "    timeout check 10s",
        # Only a connection that failed (the request never reached a replica) is retried, on
        # another replica. Never `empty-response`, `response-timeout` or a status: the replica may
        # have taken the turn (or written the ticket) before it failed to answer.
        "    retries 3",
        "    retry-on conn-failure",
        "    option redispatch 1",
        f"    default-server {CHECK}",
        "",
    ]
    if len(shape.rasa) > 1:
        lines += [
            "frontend rasa",
            f"    bind 127.0.0.1:{front.rasa_port}",
            "    default_backend rasa",
            "",
            "backend rasa",
            f"    timeout server {RASA_TIMEOUT}",
            "    timeout check 30s",
            # The assistant client's hash of the resident; calls without it (health, /model/parse)
            # fall back to round robin.
            "    balance hdr(X-Wuye-Sender)",
            "    hash-type consistent",
            "    option httpchk GET /",  # "Hello from Rasa": 200 without the token
            "    http-check expect status 200",
            *_servers("rasa", shape.rasa),
            "",
        ]
    if len(shape.actions) > 1:
        lines += [
            "frontend actions",
            f"    bind 127.0.0.1:{front.action_port}",
            "    default_backend actions",
            "",
            "backend actions",
            f"    timeout server {ACTION_TIMEOUT}",
            "    balance roundrobin",
            "    option httpchk GET /health",
            "    http-check expect status 200",
            *_servers("actions", shape.actions),
            "",
        ]
    if len(shape.gateways) > 1:
        public = tuple(p for p, _ in shape.gateways)
        staff = tuple(s for _, s in shape.gateways)
        lines += [
            "frontend gateway",
            f"    bind {front.gateway_host}:{front.gateway_port}",
        ]
        if development:
            # The simulator's stand-in of WeChat's API keeps what was pushed in one process's
            # memory: every /dev/ request goes to the first gateway (the others stand by).
            lines.append("    use_backend gateway_dev if { path_beg /dev/ }")
        lines += [
            "    default_backend gateway",
            "",
            "backend gateway",
            f"    timeout server {GATEWAY_TIMEOUT}",
            "    balance url_param openid",  # WeChat's push URL: ?signature=…&openid=<resident>
            "    hash-type consistent",
            "    option httpchk",
            f"    http-check send meth GET uri / hdr {HEALTH_CHECK_HEADER} haproxy",
            "    http-check expect status 200",
            *_servers("gateway", public),
            "",
        ]
        if development:
            lines += [
                "backend gateway_dev",
                f"    timeout server {GATEWAY_TIMEOUT}",
                "    option httpchk",
                f"    http-check send meth GET uri / hdr {HEALTH_CHECK_HEADER} haproxy",
                "    http-check expect status 200",
                *_servers("gateway", public, backup_after=1),
                "",
            ]
        lines += [
            "frontend staff",
            f"    bind {front.staff_host}:{front.staff_port}",
            "    default_backend staff",
            "",
            "backend staff",
            f"    timeout server {GATEWAY_TIMEOUT}",
            "    balance roundrobin",
            "    option httpchk",
            f"    http-check send meth GET uri /healthz hdr {HEALTH_CHECK_HEADER} haproxy",
            "    http-check expect status 200",
            *_servers("staff", staff),
            "",
        ]
    return "\n".join(lines)


def health_urls(shape: Shape, front: Frontends) -> tuple[str, ...]:
    """HAProxy is up when each of its frontends reaches a healthy replica."""
    urls = []
    if len(shape.rasa) > 1:
        urls.append(f"http://127.0.0.1:{front.rasa_port}/")
    if len(shape.actions) > 1:
        urls.append(f"http://127.0.0.1:{front.action_port}/health")
    if len(shape.gateways) > 1:
        urls += [f"http://{front.gateway_host}:{front.gateway_port}/", f"http://{front.staff_host}:{front.staff_port}/healthz"]
    return tuple(urls)


def check_config(path: Path) -> None:
    """`haproxy -c`: a config HAProxy refuses is reported with its own words, before the stack starts."""
    result = subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"haproxy refused {path}: {(result.stderr or result.stdout).strip()}")


def haproxy_argv(config: Path) -> list[str]:
    # -db: foreground, no daemon, no master-worker: the supervisor is the master.
    return ["haproxy", "-db", "-f", str(config)]


def server_states(stats_socket: Path, timeout: float = 2.0) -> dict[tuple[str, str], str]:
    """(backend, server) -> "UP", "DOWN", "MAINT", … from HAProxy's stats socket (`show stat`)."""
    return {key: values.get("status", "").split(" ")[0] for key, values in server_stats(stats_socket, timeout).items()}


def server_stats(stats_socket: Path, timeout: float = 2.0) -> dict[tuple[str, str], dict[str, str]]:
    """(backend, server) -> its row of HAProxy's `show stat` (status, stot: requests sent to it, …)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(stats_socket))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    rows = b"".join(chunks).decode("utf-8", "replace").splitlines()
    if not rows or not rows[0].startswith("# "):
        return {}
    header = rows[0][2:].split(",")
    states: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows[1:]:
        values = dict(zip(header, row.split(",")))
        if values.get("svname") in (None, "", "FRONTEND", "BACKEND"):
            continue
        states[(values["pxname"], values["svname"])] = values
    return states
