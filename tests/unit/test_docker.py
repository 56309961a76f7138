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
    assert sorted(ours) == ["bot/__init__.py", "bot/core/", "bot/nlu/"]
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
