"""`rasa run` that times the parts of every turn (measurement only; never in production).

Run it like `python -m rasa run …` (same arguments, from the project root, in the assistant
runtime); every message handled appends one JSON line to $TIMING_LOG: the text, the turn's
total and the inclusive time and count of each part (each graph node by name, policy
predictions, custom-action calls and their HTTP request, the action-response schema check,
tracker store fetch and save). With WUYE_FAST_ACTION_CHECK=1 it first applies bot.rasa_run.

    TIMING_LOG=/tmp/rasa.jsonl .venv-assistant/bin/python scripts/profile/rasa_timed.py run --enable-api …
"""
from __future__ import annotations

import collections
import functools
import inspect
import json
import os
import sys
import time
from typing import Any, Callable, Optional

LOG = os.environ.get("TIMING_LOG", "rasa-timing.jsonl")
spent: dict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()


def timed(owner: Any, name: str, label: Optional[str] = None, key: Optional[Callable[..., str]] = None) -> None:
    function = inspect.getattr_static(owner, name)
    static = isinstance(function, staticmethod)
    function = getattr(owner, name)
    label = label or name

    def record(started: float, args: tuple, kwargs: dict) -> None:
        part = label if key is None else f"{label}:{key(*args, **kwargs)}"
        spent[part] += time.perf_counter() - started
        calls[part] += 1

    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                record(started, args, kwargs)
    else:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                record(started, args, kwargs)
    setattr(owner, name, staticmethod(wrapper) if static else wrapper)


def install() -> None:
    from rasa.core import processor
    from rasa.core.actions import action
    from rasa.engine import graph
    from rasa.engine.runner import dask
    from rasa.shared.core import trackers
    from rasa.utils import endpoints

    timed(graph.GraphNode, "__call__", "node", key=lambda node, *a, **k: node._node_name)
    timed(dask.DaskGraphRunner, "run", "graph_run")
    messages = processor.MessageProcessor
    for name in ("log_message", "parse_message", "run_action_extract_slots", "_run_prediction_loop",
                 "predict_next_with_tracker_if_should", "save_tracker", "fetch_tracker_and_update_session"):
        timed(messages, name)
    timed(messages, "_run_action", "run_action", key=lambda self, *a, **k: (a[0] if a else k["action"]).name())
    timed(action.RemoteAction, "_action_call_format")
    timed(action.RemoteAction, "_validate_action_result")
    timed(endpoints.EndpointConfig, "request", "http_request")
    timed(trackers.DialogueStateTracker, "current_state")
    handle = messages.handle_message

    async def handle_message(self: Any, message: Any) -> Any:
        spent.clear()
        calls.clear()
        started = time.perf_counter()
        try:
            return await handle(self, message)
        finally:
            total = time.perf_counter() - started
            line = {"text": message.text, "total": total * 1000,
                    "parts": {k: round(v * 1000, 3) for k, v in spent.items()}, "counts": dict(calls)}
            with open(LOG, "a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")

    messages.handle_message = handle_message


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    if os.environ.get("WUYE_FAST_ACTION_CHECK"):
        from bot import rasa_run

        assert rasa_run.install()
    install()
    from rasa.__main__ import main

    main()
