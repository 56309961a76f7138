"""`make run`'s shape on a machine with several cores (bot.app.balancer): how many processes of
each kind, on which ports, and the HAProxy config in front of them (checked by `haproxy -c`)."""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from bot.app import balancer
from bot.app.balancer import Frontends, Shape
from bot.app.stack import is_healthy, prepare_balancer, shape_lines, stack_children
from bot.settings import Settings

GIB = 1 << 30
SQLITE = Settings(database_url="sqlite:////tmp/wuye.db")
POSTGRES = Settings(database_url="postgresql+psycopg2://wuye@db/wuye")


@pytest.fixture
def haproxy_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """plan() falls back to one process of each without haproxy; these tests plan as if it were there."""
    monkeypatch.setattr(balancer.shutil, "which", lambda name: f"/usr/sbin/{name}")


@pytest.mark.parametrize(("cpus", "rasa", "actions", "gateways"), [(1, 1, 1, 1), (2, 2, 2, 2), (4, 4, 4, 2),
                                                                    (8, 8, 8, 2)])
def test_every_core_by_default(haproxy_installed, cpus, rasa, actions, gateways):
    shape = balancer.plan(SQLITE, cpus=cpus, memory=64 * GIB)
    assert (len(shape.rasa), len(shape.actions), len(shape.gateways), shape.workers) == (rasa, actions, gateways, 1)
    assert shape.balanced == (cpus > 1) and shape.notes == ()


def test_one_core_is_todays_shape_on_the_public_ports(haproxy_installed):
    settings = Settings()
    assert balancer.plan(settings, cpus=1) == Shape.single(settings) == Shape(
        (settings.rasa_port,), (settings.action_port,), ((settings.gateway_port, settings.staff_port),))
    one_each = Settings(rasa_replicas=1, action_replicas=1, gateway_replicas=1)
    assert balancer.plan(one_each, cpus=16) == Shape.single(one_each)


def test_replicas_are_on_internal_ports_from_the_bases(haproxy_installed):
    settings = Settings.from_env({"RASA_REPLICAS": "3", "ACTION_REPLICAS": "2", "GATEWAY_REPLICAS": "1",
                                  "RASA_REPLICA_PORT": "16000"})
    shape = balancer.plan(settings, cpus=2)
    assert shape.rasa == (16000, 16001, 16002) and shape.actions == (15105, 15106)
    assert shape.gateways == ((8080, 8081),)  # one gateway: on the public ports, HAProxy only for the others
    assert "3 Rasa processes, 2 action servers, 1 gateway, 1 worker behind HAProxy" == shape.describe()


def test_fewer_rasa_processes_when_memory_is_short(haproxy_installed):
    shape = balancer.plan(SQLITE, cpus=8, memory=8 * GIB)
    assert len(shape.rasa) == 3 and len(shape.actions) == 8
    assert shape.notes == ("8 cores but 8.0 GiB available: 3 Rasa process(es) (about 2 GiB each)",)
    assert len(balancer.plan(Settings(rasa_replicas=6), cpus=8, memory=8 * GIB).rasa) == 6  # asked: as asked
    assert len(balancer.plan(SQLITE, cpus=4, memory=1 * GIB).rasa) == 1  # never none


def test_several_workers_only_on_postgresql(haproxy_installed):
    assert balancer.plan(dataclasses.replace(POSTGRES, worker_replicas=3), cpus=2).workers == 3
    shape = balancer.plan(dataclasses.replace(SQLITE, worker_replicas=3), cpus=2)
    assert shape.workers == 1 and "the ticket store is SQLite" in shape.notes[0]


def test_without_haproxy_one_process_of_each_and_says_why(monkeypatch):
    monkeypatch.setattr(balancer.shutil, "which", lambda name: None)
    shape = balancer.plan(SQLITE, cpus=4, memory=64 * GIB)
    assert shape == dataclasses.replace(Shape.single(SQLITE), notes=shape.notes)
    assert "haproxy is not installed (scripts/ensure-haproxy.sh)" in shape.notes[0]


def test_the_config_routes_residents_sticky_and_never_repeats_a_request(tmp_path):
    settings = Settings()
    shape = Shape((15005, 15006), (15105, 15106), ((18080, 18180), (18081, 18181)))
    text = balancer.haproxy_config(shape, Frontends.of(settings), tmp_path / "haproxy.sock", development=True)
    lines = [line.strip() for line in text.splitlines()]

    def backend(name: str) -> list[str]:
        start = lines.index(f"backend {name}")
        end = next((i for i in range(start + 1, len(lines)) if not lines[i]), len(lines))
        return lines[start + 1:end]

    assert "balance hdr(X-Wuye-Sender)" in backend("rasa") and "hash-type consistent" in backend("rasa")
    assert "option httpchk GET /" in backend("rasa")
    assert backend("rasa")[-2:] == ["server rasa1 127.0.0.1:15005 check", "server rasa2 127.0.0.1:15006 check"]
    assert "balance roundrobin" in backend("actions") and "option httpchk GET /health" in backend("actions")
    assert "balance url_param openid" in backend("gateway") and "hash-type consistent" in backend("gateway")
    assert "balance roundrobin" in backend("staff")
    assert "server gateway2 127.0.0.1:18081 check backup" in backend("gateway_dev")
    # Only a connection that never reached a replica is retried (elsewhere); nothing is logged.
    assert {"retry-on conn-failure", "option redispatch 1", "retries 3", "option http-server-close",
            "no log"} <= set(lines)
    assert not any(line.startswith("log ") or "empty-response" in line for line in lines)
    assert "bind 127.0.0.1:5005" in lines and "bind 127.0.0.1:8080" in lines and "bind 127.0.0.1:8081" in lines
    production = balancer.haproxy_config(shape, Frontends.of(settings), tmp_path / "haproxy.sock")
    assert "gateway_dev" not in production


@pytest.mark.skipif(not shutil.which("haproxy") and not os.environ.get("CI"),
                    reason="haproxy not installed (scripts/ensure-haproxy.sh)")
def test_haproxy_accepts_the_config_and_the_stack_starts_it_first(tmp_path):
    settings = Settings()
    shape = Shape((15005, 15006), (15105, 15106), ((18080, 18180), (18081, 18181)), workers=2,
                  notes=("a note",))
    env = {"WORKER_HEARTBEAT_FILE": str(tmp_path / "run" / "worker.heartbeat")}
    config = prepare_balancer(settings, shape, env, tmp_path / "run")  # runs `haproxy -c`
    assert config == tmp_path / "haproxy.cfg" and "stats socket" in config.read_text(encoding="utf-8")
    children = stack_children(settings, env, tmp_path / "model.tar.gz", tmp_path / "endpoints.yml", tmp_path,
                              shape, config)
    assert [c.name for c in children] == ["haproxy", "actions-1", "actions-2", "rasa-1", "rasa-2", "gateway-1",
                                          "gateway-2", "worker-1", "worker-2"]
    assert all(c.ready is is_healthy for c in children[:7])
    assert [c.heartbeat for c in children[7:]] == [tmp_path / "run" / "worker-1.heartbeat",
                                                   tmp_path / "run" / "worker-2.heartbeat"]
    banner = "\n".join(shape_lines(settings, shape, config))
    assert "Rasa :5005 -> 2 replicas on :15005-15006" in banner and "note: a note" in banner
    broken = tmp_path / "broken.cfg"
    broken.write_text("frontend x\n    bind 127.0.0.1:1\n    balance nonsense\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="haproxy refused"):
        balancer.check_config(broken)


def test_one_of_each_needs_no_config(tmp_path):
    assert prepare_balancer(Settings(), Shape.single(Settings()), {}, tmp_path / "run") is None
    assert not (tmp_path / "haproxy.cfg").exists()


def test_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   2048 kB\n", encoding="ascii")
    assert balancer.available_memory(meminfo) == 2048 * 1024
    assert balancer.available_memory(tmp_path / "missing") is None


def test_server_states_are_read_from_the_stats_socket(tmp_path):
    import socket
    import threading

    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            assert conn.recv(100) == b"show stat\n"
            conn.sendall(b"# pxname,svname,qcur,status,\nrasa,FRONTEND,,OPEN,\nrasa,rasa1,0,UP,\n"
                         b"rasa,rasa2,0,DOWN 1/2,\nrasa,BACKEND,0,UP,\n\n")

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        assert balancer.server_states(Path(path)) == {("rasa", "rasa1"): "UP", ("rasa", "rasa2"): "DOWN"}
    finally:
        thread.join()
        server.close()


def test_haproxys_passing_checks_stay_out_of_the_gateways_access_log(tmp_path, caplog):
    import logging

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from bot.app.access_log import HEALTH_CHECK_HEADER, PathOnlyAccessLogger

    text = balancer.haproxy_config(Shape((1,), (2,), ((3, 4), (5, 6))), Frontends.of(Settings()), tmp_path / "s")
    assert f"http-check send meth GET uri / hdr {HEALTH_CHECK_HEADER} haproxy" in text
    assert f"http-check send meth GET uri /healthz hdr {HEALTH_CHECK_HEADER} haproxy" in text
    logger = PathOnlyAccessLogger(logging.getLogger("test.access"), "")
    check = make_mocked_request("GET", "/", headers={HEALTH_CHECK_HEADER: "haproxy"})
    with caplog.at_level(logging.INFO, logger="test.access"):
        logger.log(check, web.Response(status=200), 0.001)
        logger.log(check, web.Response(status=503), 0.001)  # a failing one is worth a line
        logger.log(make_mocked_request("GET", "/healthz"), web.Response(status=200), 0.001)
    assert [r.getMessage().split()[-4:-2] for r in caplog.records] == [["/", "503"], ["/healthz", "200"]]
