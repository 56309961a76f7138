"""Rasa's REST channel answers 200 and nothing when a turn failed inside Rasa (its Redis lock
store down, say): the client takes an empty answer only when Rasa's tracker holds the turn."""
from __future__ import annotations

from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.assistant.client import AssistantClient, AssistantUnavailable

TOKEN = "empty-answer-test-token"


class SilentRasa:
    """A REST channel that says nothing, and a tracker holding the turns in `turns`."""

    def __init__(self) -> None:
        self.turns: set[str] = set()
        self.tracker_status = 200
        self.tracker_reads = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self.webhook)
        app.router.add_get("/conversations/{sender}/tracker", self.tracker)
        app.router.add_get("/health", lambda _request: web.json_response({"status": "ok"}))
        return app

    async def webhook(self, request: web.Request) -> web.Response:
        key = ((await request.json()).get("metadata") or {}).get("dedupe_key")
        if key == "msgid:said-nothing":  # the turn was taken; the bot just had nothing to say
            self.turns.add(key)
        return web.json_response([])

    async def tracker(self, request: web.Request) -> web.Response:
        self.tracker_reads += 1
        if self.tracker_status != 200:
            return web.json_response({"status": "failure"}, status=self.tracker_status)
        events: list[dict[str, Any]] = [{"event": "user", "text": "x", "metadata": {"dedupe_key": key}}
                                        for key in sorted(self.turns)]
        return web.json_response({"events": events})


@pytest.fixture
async def rasa() -> AsyncIterator[tuple[SilentRasa, str]]:
    fake = SilentRasa()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


async def test_an_empty_answer_without_the_turn_in_the_tracker_is_rasa_failing_inside(rasa):
    fake, url = rasa
    async with aiohttp.ClientSession() as http:
        client = AssistantClient(http, url, url, TOKEN)
        with pytest.raises(AssistantUnavailable, match="no turn"):
            await client.ask("o1", "我要报修", {"dedupe_key": "msgid:1"})
        assert await client.ask("o1", "嗯", {"dedupe_key": "msgid:said-nothing"}) == []


async def test_an_empty_answer_stands_when_the_tracker_cannot_tell(rasa):
    fake, url = rasa
    async with aiohttp.ClientSession() as http:
        client = AssistantClient(http, url, url, TOKEN)
        assert await client.ask("o1", "你好") == []  # no dedupe key: nothing to look for
        assert fake.tracker_reads == 0
        fake.tracker_status = 404
        assert await client.ask("o1", "你好", {"dedupe_key": "msgid:2"}) == []
        fake.tracker_status = 500  # Rasa failing on the read too: the message waits
        with pytest.raises(AssistantUnavailable):
            await client.ask("o1", "你好", {"dedupe_key": "msgid:3"})
