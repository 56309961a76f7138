"""bot.rasa_run: Rasa's check of action-server responses, with the schema checked once."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any, Iterator

import pytest
import structlog.processors
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker

from bot import rasa_run
from tests.assistant.test_isolation import PROBE, PROJECT_ROOT

VALID: dict[str, Any] = {
    "events": [{"event": "slot", "name": "room", "value": "3栋2单元501", "timestamp": None},
               {"event": "active_loop", "name": None}],
    "responses": [{"text": "请问需要维修的房号是？", "buttons": []}],
}
STORE_CALLS = ("retrieve", "retrieve_full_tracker", "save", "keys")
INVALID = [
    {"events": [{"event": "slot", "name": 5}]},  # a slot's name is a string
    {"events": [{"no_event_key": True}]},
    {"events": {"event": "slot"}},  # events are a list
    {"responses": ["a bare string"]},
]


@pytest.fixture
def original() -> Iterator[Any]:
    """Rasa's own check; everything install() replaces is put back afterwards."""
    saved = RemoteAction._validate_action_result
    stores = {name: FailSafeTrackerStore.__dict__[name] for name in STORE_CALLS}
    blueprint = RestInput.__dict__["blueprint"]
    tracebacks = structlog.processors.dict_tracebacks
    yield saved
    structlog.processors.dict_tracebacks = tracebacks
    RemoteAction._validate_action_result = saved
    for name, call in stores.items():
        setattr(FailSafeTrackerStore, name, call)
    RestInput.blueprint = blueprint


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


class UnreachableStore(InMemoryTrackerStore):
    """A tracker store whose database is being restarted."""

    async def retrieve(self, sender_id: str) -> Any:
        raise ConnectionError("server closed the connection unexpectedly")

    async def retrieve_full_tracker(self, sender_id: str) -> Any:
        raise ConnectionError("server closed the connection unexpectedly")

    async def save(self, tracker: DialogueStateTracker) -> None:
        raise ConnectionError("server closed the connection unexpectedly")


def test_a_tracker_store_failure_fails_the_turn_instead_of_an_empty_stand_in(original):
    asyncio.run(_store_failure())


async def _store_failure() -> None:
    store = FailSafeTrackerStore(UnreachableStore(Domain.empty()))
    tracker = DialogueStateTracker("oResident", slots=[])
    # Rasa's own: no tracker (a new, empty conversation), and the save goes to memory.
    assert await store.retrieve("oResident") is None
    await store.save(tracker)
    assert rasa_run.install()
    for call in (store.retrieve("oResident"), store.retrieve_full_tracker("oResident"), store.save(tracker)):
        with pytest.raises(ConnectionError):
            await call
    working = FailSafeTrackerStore(InMemoryTrackerStore(Domain.empty()))
    await working.save(tracker)
    assert (await working.retrieve("oResident")).sender_id == "oResident"


def test_a_failed_turn_answers_nothing_and_a_good_one_everything(original, monkeypatch):
    handed: list[Any] = []
    monkeypatch.setattr(RestInput, "blueprint", lambda self, on_new_message: handed.append(on_new_message))
    assert rasa_run.install()
    asyncio.run(_turns(handed))


async def _turns(handed: list[Any]) -> None:
    async def failing(message: UserMessage) -> None:
        await message.output_channel.send_text_message(message.sender_id, "请问需要维修的房号是？")
        raise ConnectionError("the tracker store went away while saving")

    async def working(message: UserMessage) -> None:
        await message.output_channel.send_text_message(message.sender_id, "请问需要维修的房号是？")

    for on_new_message, expected in ((failing, []), (working, ["请问需要维修的房号是？"])):
        RestInput().blueprint(on_new_message)
        collector = CollectingOutputChannel()
        await handed[-1](UserMessage("3栋2单元501", collector, "oResident"))
        assert [m["text"] for m in collector.messages] == expected


def _logged_exception() -> str:
    """What Rasa's JSON log holds for an exception raised where a sender's id is a local."""
    import json
    import sys

    def handle(sender_id: str) -> None:
        raise ConnectionError("the lock store is down")

    try:
        handle("oSecretOpenid0001")
    except ConnectionError:
        event = structlog.processors.dict_tracebacks(None, "error", {"event": "failure", "exc_info": sys.exc_info()})
    return json.dumps(event, ensure_ascii=False)


def test_rasa_s_exception_logs_keep_the_traceback_without_frame_locals(original):
    assert "oSecretOpenid0001" in _logged_exception()  # structlog's default, as Rasa configures it
    assert rasa_run.install()
    logged = _logged_exception()
    assert "oSecretOpenid0001" not in logged
    assert "the lock store is down" in logged and '"name": "handle"' in logged  # the traceback stays
