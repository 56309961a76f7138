"""The Rasa client sends Rasa's auth token on every call, and its errors never carry it."""
from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.assistant.client import AssistantClient, AssistantRefused, AssistantUnavailable, sender_headers
from bot.assistant.tracker import RasaApiMemory

TOKEN = "client-test-rasa-token"


class FakeRasa:
    """Rasa's REST channel and HTTP API, refusing what lacks `?token=` as `--auth-token` does,
    plus the action server's /health."""

    def __init__(self) -> None:
        self.tokens: list[str | None] = []
        self.sender_headers: list[str | None] = []
        self.server: TestServer | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self.webhook)
        app.router.add_post("/conversations/{sender}/trigger_intent", self.trigger)
        app.router.add_get("/conversations/{sender}/tracker", self.tracker)
        app.router.add_put("/conversations/{sender}/tracker/events", self.replace_events)
        app.router.add_get("/health", lambda _request: web.json_response({"status": "ok"}))
        return app

    def _authorised(self, request: web.Request) -> bool:
        self.tokens.append(request.query.get("token"))
        self.sender_headers.append(request.headers.get("X-Wuye-Sender"))
        return request.query.get("token") == TOKEN

    async def webhook(self, request: web.Request) -> web.Response:
        self._authorised(request)  # the REST channel itself is open in Rasa; the token rides along
        return web.json_response([{"recipient_id": "o1", "text": "您好"}])

    async def tracker(self, request: web.Request) -> web.Response:
        self._authorised(request)
        return web.json_response({"events": [{"event": "user", "text": "你好"}]})

    async def replace_events(self, request: web.Request) -> web.Response:
        self._authorised(request)
        return web.json_response({"events": []})

    async def trigger(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"status": "failure", "reason": "NotAuthenticated"}, status=401)
        if request.match_info["sender"] == "oMissing":
            return web.json_response({"status": "failure"}, status=400)
        return web.json_response({"messages": [{"text": "请为本次服务打分"}]})


@pytest.fixture
async def rasa() -> AsyncIterator[tuple[FakeRasa, str]]:
    fake = FakeRasa()
    fake.server = TestServer(fake.app(), host="127.0.0.1")
    await fake.server.start_server()
    yield fake, str(fake.server.make_url("")).rstrip("/")
    await fake.server.close()


async def test_every_call_to_rasa_carries_the_token(rasa):
    fake, url = rasa
    async with aiohttp.ClientSession() as http:
        client = AssistantClient(http, url, url, TOKEN)
        assert await client.ask("o1", "你好") == ["您好"]
        assert await client.trigger_intent("o1", "EXTERNAL_satisfaction_survey", {"survey_id": "1"}) == ["请为本次服务打分"]
    assert fake.tokens == [TOKEN, TOKEN]


async def test_a_refused_token_waits_like_a_down_rasa_and_is_never_in_the_error(rasa):
    _fake, url = rasa
    async with aiohttp.ClientSession() as http:
        with pytest.raises(AssistantUnavailable, match="RASA_AUTH_TOKEN") as refused:
            await AssistantClient(http, url, url, "wrong-token-5b7e").trigger_intent("o1", "EXTERNAL_x", {})
        # Other refusals are not retried; neither error names the URL (which holds the token).
        with pytest.raises(AssistantRefused, match="HTTP 400") as bad:
            await AssistantClient(http, url, url, TOKEN).trigger_intent("oMissing", "EXTERNAL_x", {})
    assert "wrong-token-5b7e" not in str(refused.value) and TOKEN not in str(bad.value)


async def test_every_call_about_a_resident_carries_a_hash_of_them_never_their_openid(rasa):
    """HAProxy keeps each resident on one Rasa replica by hashing X-Wuye-Sender (bot.app.balancer):
    their turns, the worker's injected intents and their tracker reads and erasures alike."""
    fake, url = rasa
    openid = "oResidentOpenid0000000000001"
    async with aiohttp.ClientSession() as http:
        client = AssistantClient(http, url, url, TOKEN)
        await client.ask(openid, "你好")
        await client.trigger_intent(openid, "EXTERNAL_satisfaction_survey", {})
        memory = RasaApiMemory(http, url, TOKEN)
        assert await memory.export(openid) == [{"event": "user", "text": "你好"}]
        assert await memory.erase(openid) == 1
        await client.ask("oSomeoneElse", "你好")
    [key] = sender_headers(openid).values()
    assert len(key) == 16 and openid not in key and key == sender_headers(openid)["X-Wuye-Sender"]
    assert fake.sender_headers == [key] * 5 + [sender_headers("oSomeoneElse")["X-Wuye-Sender"]]
    assert fake.sender_headers[-1] != key
