"""The assistant runtime holds Rasa and our graph components only, and the components
import nothing from the service side (storage, use cases, channels, wiring)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVICE_SIDE = ("bot.db", "bot.cases", "bot.channels", "bot.staff_api", "bot.worker", "bot.app", "bot.assistant",
                "bot.settings", "actions", "wechatpy", "telegram", "alembic", "jinja2")

# Runs in a fresh interpreter: any import of a service-side module raises at once.
PROBE = f"""
import importlib.abc, sys
BLOCKED = {SERVICE_SIDE!r}
class RefuseServiceSide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("service-side module imported: " + name)
        return None
sys.meta_path.insert(0, RefuseServiceSide())
for component in sys.argv[1:]:
    module, _, cls = component.rpartition(".")
    getattr(__import__(module, fromlist=[cls]), cls)
print(" ".join(sorted(m for m in sys.modules if m == "bot" or m.startswith("bot."))))
"""


def our_components() -> list[str]:
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8"))
    return [step["name"] for step in config["pipeline"] if step["name"].startswith("bot.")]


def test_the_service_packages_are_absent_here():
    for package in ("wechatpy", "telegram", "alembic", "jinja2"):
        assert importlib.util.find_spec(package) is None, f"{package} belongs to the service runtime"
    assert importlib.util.find_spec("rasa") is not None


def test_our_components_import_only_the_pure_core():
    components = our_components()
    # Traditional->Simplified, the n-gram blend, the entity reconciler, the FAQ-only ResponseSelector
    assert len(components) == 4
    result = subprocess.run([sys.executable, "-c", PROBE, *components], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = result.stdout.split()
    assert "bot.nlu.intent_blend" in loaded and "bot.nlu.faq_selector" in loaded
    assert all(m in ("bot", "bot.nlu", "bot.core") or m.startswith(("bot.nlu.", "bot.core.")) for m in loaded), loaded
