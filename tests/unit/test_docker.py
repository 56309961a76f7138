"""The two images, read statically (no Docker engine on the build machines): each installs its
own runtime's lock, the assistant image carries nothing of the service side, and every
service in the compose file runs from the image of its runtime."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.settings import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "docker"


def copies(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            sources.extend(line.split()[1:-1])
    return sources


def test_each_image_installs_its_own_lock():
    for runtime in ("assistant", "service"):
        text = (DOCKER / f"{runtime}.Dockerfile").read_text(encoding="utf-8")
        assert re.search(rf"pip install .*-r requirements/{runtime}\.lock", text)
        assert "pip check" in text
        other = "service" if runtime == "assistant" else "assistant"
        assert f"{other}.lock" not in text


def test_the_assistant_image_copies_only_what_rasa_needs():
    sources = copies(DOCKER / "assistant.Dockerfile")
    ours = [s for s in sources if s.startswith("bot/")]
    assert sorted(ours) == ["bot/__init__.py", "bot/core/", "bot/nlu/", "bot/rasa_run.py"]
    assert "." not in sources and "actions/" not in sources
    for source in sources:
        if "[" not in source:  # an optional, globbed file (a pre-trained model) may be absent
            assert (PROJECT_ROOT / source).exists(), source


def test_compose_runs_rasa_from_the_assistant_image_and_the_rest_from_the_service_image():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        if "build" not in service:
            continue  # postgres, redis: upstream images
        expected = "docker/assistant.Dockerfile" if name == "rasa" else "docker/service.Dockerfile"
        assert service["build"]["dockerfile"] == expected, name


def test_compose_has_no_secret_restarts_everything_and_checks_its_health():
    text = (DOCKER / "docker-compose.yml").read_text(encoding="utf-8")
    assert ":wuye@" not in text and "PASSWORD: wuye" not in text  # the password comes from the environment
    assert "${POSTGRES_PASSWORD:?" in text  # … and is required
    compose = yaml.safe_load(text)
    for name, service in compose["services"].items():
        assert service.get("restart") in ("unless-stopped", "on-failure"), name
        if name != "migrate":  # one-shot
            assert service.get("healthcheck", {}).get("test"), name


def test_only_the_gateway_is_published_and_the_backends_have_no_way_out():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert [name for name, service in services.items() if service.get("ports")] == ["gateway"]
    assert compose["networks"]["internal"]["internal"] is True
    for backend in ("postgres", "redis", "actions", "rasa"):
        assert services[backend]["networks"] == ["internal"], backend


def test_the_gateway_publishes_only_its_wechat_listener_to_the_world():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    gateway = compose["services"]["gateway"]
    public = [port for port in gateway["ports"] if not str(port).startswith("127.0.0.1:")]
    assert public == ["8080:8080"]  # GATEWAY_PORT: /wechat and /healthz, never a staff route
    # The staff API listener: the host's loopback only, for the intranet reverse proxy.
    assert [port for port in gateway["ports"] if port not in public] == ["127.0.0.1:8081:8081"]
    assert "--staff-host" in gateway["command"]
    assert "EXPOSE 8081" not in (DOCKER / "service.Dockerfile").read_text(encoding="utf-8")


def test_rasa_serves_its_http_api_only_with_a_token_that_the_gateway_and_worker_hold():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    command = services["rasa"]["command"]
    assert "--enable-api" in command
    assert command[command.index("--auth-token") + 1].startswith("${RASA_AUTH_TOKEN:?")  # required, from the env
    for caller in ("gateway", "worker"):
        assert services[caller]["environment"]["RASA_AUTH_TOKEN"].startswith("${RASA_AUTH_TOKEN:?"), caller
    # The image on its own refuses to start without one too.
    cmd = (DOCKER / "assistant.Dockerfile").read_text(encoding="utf-8").split("\nCMD ")[1]
    assert "--enable-api --auth-token" in cmd and "${RASA_AUTH_TOKEN:?" in cmd
    # The action server (no auth of its own) is reached on the internal network only.
    assert "ports" not in services["actions"] and services["actions"]["networks"] == ["internal"]


def test_rasa_is_started_through_bot_rasa_run_in_every_deployment():
    """bot.rasa_run (`rasa run` with its action-response schema checked once, docs/profile.md) in
    compose, the image's own CMD and the Kubernetes manifest, as `make run` starts it."""
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    assert compose["services"]["rasa"]["command"][:4] == ["python", "-m", "bot.rasa_run", "run"]
    cmd = (DOCKER / "assistant.Dockerfile").read_text(encoding="utf-8").split("\nCMD ")[1]
    assert "exec python -m bot.rasa_run run " in cmd
    manifests = list(yaml.safe_load_all((PROJECT_ROOT / "deploy" / "kubernetes" / "rasa.yaml").read_text(encoding="utf-8")))
    [container] = [c for doc in manifests if doc and doc.get("kind") == "Deployment"
                   for c in doc["spec"]["template"]["spec"]["containers"]]
    assert container["command"][:4] == ["python", "-m", "bot.rasa_run", "run"]


def test_the_build_context_leaves_out_local_state_and_secrets():
    ignored = set((PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".env", "var", ".venv", ".venv-assistant", "models", ".git"} <= ignored


def test_the_worker_and_the_staff_bot_are_healthy_while_their_heartbeat_is_fresh(tmp_path):
    """No port: each one's healthcheck reads the age of the heartbeat file its environment names
    (on /tmp, where the image's user may write), run here as Docker would, on a copy of the file."""
    import os
    import subprocess
    import sys

    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    for name, variable in (("worker", "WORKER_HEARTBEAT_FILE"), ("staffbot", "STAFFBOT_HEARTBEAT_FILE")):
        service = compose["services"][name]
        path = service["environment"][variable]
        assert path.startswith("/tmp/"), name
        assert service["environment"]["DATABASE_URL"].startswith("postgresql"), name  # the merged anchor kept
        kind, python, flag, code = service["healthcheck"]["test"]
        assert (kind, python, flag) == ("CMD", "python", "-c") and path in code, name
        beat = tmp_path / f"{name}.heartbeat"

        def healthy() -> bool:
            check = subprocess.run([sys.executable, "-c", code.replace(path, str(beat))], timeout=30)
            return check.returncode == 0

        assert not healthy(), f"{name}: no heartbeat yet"
        beat.touch()
        assert healthy(), name
        os.utime(beat, (0, 0))  # last beat in 1970: stuck
        assert not healthy(), f"{name}: stale heartbeat"
