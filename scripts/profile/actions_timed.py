"""The action server (`python -m rasa_sdk --actions actions …`) timing every request (measurement only).

Every /webhook request appends one JSON line to $TIMING_LOG: the action, the request's total
(Sanic's request to response middleware), request and response size, the time in rasa_sdk's
executor, the request's JSON decoding and the response's encoding, the time in the resident's
project lookup and the urgency reading, and the SQL statements and transactions it made
(SQLAlchemy events). Run from the project root in the service runtime, with the arguments
rasa_sdk takes:

    TIMING_LOG=/tmp/actions.jsonl .venv/bin/python scripts/profile/actions_timed.py --actions actions --port 5055
"""
from __future__ import annotations

import collections
import functools
import importlib
import inspect
import json
import os
import pkgutil
import sys
import time
from typing import Any, Callable

LOG = os.environ.get("TIMING_LOG", "actions-timing.jsonl")
spent: dict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()
request: dict[str, Any] = {}


def timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started
                calls[label] += 1
        return wrapper

    @functools.wraps(function)
    def plain(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started
            calls[label] += 1
    return plain


def time_everywhere(module_name: str, name: str, label: str) -> None:
    """Time `module.name` in every module of ours that imported it by name."""
    original = getattr(importlib.import_module(module_name), name)
    replacement = timed(original, label)
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith(("actions", "bot")):
            for attribute, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attribute, replacement)


def install() -> None:
    from rasa_sdk import endpoint, executor
    from sanic import response
    from sanic.request import Request
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    import actions

    for info in pkgutil.iter_modules(actions.__path__):
        importlib.import_module(f"actions.{info.name}")

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        calls["sql"] += 1
        calls[f"sql_{statement.split(None, 1)[0].upper()}"] += 1

    @event.listens_for(Session, "after_begin")
    def _transaction(*args: Any) -> None:
        calls["transactions"] += 1

    time_everywhere("actions.common", "project_rules", "project_rules")
    time_everywhere("bot.cases.context", "rules_in_session", "rules_in_session")
    time_everywhere("bot.core.urgency", "assess", "assess")
    executor.ActionExecutor.run = timed(executor.ActionExecutor.run, "executor_run")
    encode = response.json

    def json_response(body: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        answer = encode(body, *args, **kwargs)
        spent["response_encode"] += time.perf_counter() - started
        request["bytes_out"] = len(answer.body or b"")
        return answer

    response.json = json_response
    decode = Request.load_json

    def load_json(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        parsed = decode(self, *args, **kwargs)
        spent["request_decode"] += time.perf_counter() - started
        request["bytes_in"] = len(self.body or b"")
        request["action"] = (parsed or {}).get("next_action")
        return parsed

    Request.load_json = load_json
    create_app = endpoint.create_app

    def create_timed_app(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)

        @app.middleware("request")
        async def _start(_request: Any) -> None:
            spent.clear()
            calls.clear()
            request.clear()
            request["started"] = time.perf_counter()

        @app.middleware("response")
        async def _stop(req: Any, _response: Any) -> None:
            if "started" not in request or req.path != "/webhook":
                return
            line = {"action": request.get("action"), "total": (time.perf_counter() - request["started"]) * 1000,
                    "bytes_in": request.get("bytes_in", 0), "bytes_out": request.get("bytes_out", 0),
                    "parts": {k: round(v * 1000, 3) for k, v in spent.items()}, "counts": dict(calls)}
            with open(LOG, "a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        return app

    endpoint.create_app = create_timed_app


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    install()
    from rasa_sdk.__main__ import main

    sys.argv[0] = "rasa_sdk"
    main()
