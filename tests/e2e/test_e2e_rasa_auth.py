"""Rasa's HTTP API on the real server: `--enable-api` is always behind `--auth-token`.

Without the token nobody reads a resident's conversation, rewrites it or replaces the
model; with it (what the gateway and the worker send) the same request goes through, and
the token is in no line of Rasa's log.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import aiohttp
import pytest

from bot.assistant.client import AssistantClient, AssistantUnavailable
from tests.live import LiveStack

pytestmark = pytest.mark.e2e

SENDER = "oE2eRasaAuth001"


def call(stack: LiveStack, method: str, path: str, token: str | None = None, body: object = None) -> int:
    """The HTTP status Rasa answers; `token` goes where Rasa reads it (`?token=`)."""
    query = f"?{urllib.parse.urlencode({'token': token})}" if token is not None else ""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{stack.rasa_url}{path}{query}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


@pytest.fixture(scope="module")
def stack(live_stack: LiveStack) -> LiveStack:
    live_stack.say(SENDER, "你好")  # a conversation worth reading
    return live_stack


@pytest.mark.parametrize("method, path, body", [
    ("GET", f"/conversations/{SENDER}/tracker", None),  # read a resident's conversation
    ("POST", f"/conversations/{SENDER}/tracker/events", [{"event": "restart"}]),  # rewrite it
    ("POST", f"/conversations/{SENDER}/trigger_intent", {"name": "greet"}),  # speak in it
    ("PUT", "/model", {"model_file": "/tmp/elsewhere.tar.gz"}),  # replace the model
    ("POST", "/model/parse", {"text": "我要报修"}),
    ("GET", "/status", None),
])
@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_the_http_api_refuses_a_request_without_the_token(stack: LiveStack, method, path, body, token):
    assert call(stack, method, path, token, body) in (401, 403)


def test_the_same_request_with_the_token_goes_through(stack: LiveStack):
    assert call(stack, "GET", f"/conversations/{SENDER}/tracker") == 401
    assert call(stack, "GET", f"/conversations/{SENDER}/tracker", stack.rasa_token) == 200
    assert call(stack, "GET", "/status", stack.rasa_token) == 200
    # The refused rewrite above changed nothing: the conversation is still there.
    url = f"{stack.rasa_url}/conversations/{SENDER}/tracker?{urllib.parse.urlencode({'token': stack.rasa_token})}"
    with urllib.request.urlopen(url, timeout=30) as response:
        events = json.loads(response.read())["events"]
    assert any(e["event"] == "user" and e.get("text") == "你好" for e in events)
    assert not any(e["event"] == "restart" for e in events)


async def test_the_assistant_client_sends_the_token_and_a_wrong_one_waits(stack: LiveStack):
    async with aiohttp.ClientSession() as http:
        client = AssistantClient(http, stack.rasa_url, stack.actions_url, stack.rasa_token)
        assert any("报修" in answer for answer in await client.ask("oE2eRasaAuth002", "你好"))
        impostor = AssistantClient(http, stack.rasa_url, stack.actions_url, "not-the-token")
        with pytest.raises(AssistantUnavailable, match="RASA_AUTH_TOKEN"):
            await impostor.trigger_intent("oE2eRasaAuth002", "greet", {})


def test_refusals_are_logged_and_the_token_never_is(stack: LiveStack):
    assert stack.rasa is not None and stack.rasa.log_path is not None
    assert call(stack, "GET", "/status", "not-the-token") == 401
    assert call(stack, "GET", "/status", stack.rasa_token) == 200
    log = stack.rasa.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Rasa server is up and running" in log and "User is not authenticated" in log
    assert stack.rasa_token not in log  # Rasa prints neither its argv nor request URLs (Sanic's access log is off)
