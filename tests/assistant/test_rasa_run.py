"""bot.rasa_run: Rasa's check of action-server responses, with the schema checked once."""
from __future__ import annotations

import subprocess
import sys
from typing import Any, Iterator

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot import rasa_run
from tests.assistant.test_isolation import PROBE, PROJECT_ROOT

VALID: dict[str, Any] = {
    "events": [{"event": "slot", "name": "room", "value": "3栋2单元501", "timestamp": None},
               {"event": "active_loop", "name": None}],
    "responses": [{"text": "请问需要维修的房号是？", "buttons": []}],
}
INVALID = [
    {"events": [{"event": "slot", "name": 5}]},  # a slot's name is a string
    {"events": [{"no_event_key": True}]},
    {"events": {"event": "slot"}},  # events are a list
    {"responses": ["a bare string"]},
]


@pytest.fixture
def original() -> Iterator[Any]:
    saved = RemoteAction._validate_action_result
    yield saved
    RemoteAction._validate_action_result = saved


def _message(check: Any, result: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as raised:
        check(RemoteAction("action_x", None), result)
    return raised.value.message


def test_responses_are_judged_as_rasa_judges_them(original):
    assert rasa_run.install()
    patched = RemoteAction._validate_action_result
    assert patched is not original
    assert patched(RemoteAction("action_x", None), VALID) is True
    assert patched(RemoteAction("action_x", None), {}) is True
    for result in INVALID:
        assert _message(patched, result) == _message(original, result)


def test_another_rasa_release_is_left_alone(original, monkeypatch):
    monkeypatch.setattr("rasa.version.__version__", "3.7.0")
    assert not rasa_run.install()
    assert RemoteAction._validate_action_result is original


def test_it_runs_in_the_assistant_runtime_alone():
    install = PROBE + "\nfrom bot import rasa_run\nassert rasa_run.install()\n"
    result = subprocess.run([sys.executable, "-c", install, "bot.rasa_run.main"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
