"""A resident's export and erasure reach the real Rasa's memory of the conversation: the
embedded in-memory tracker store through Rasa's token-protected HTTP API (the SQL tracker
store on PostgreSQL is covered in test_e2e_production.py)."""
from __future__ import annotations

import aiohttp
import pytest

from bot.assistant.tracker import RasaApiMemory

pytestmark = pytest.mark.e2e


async def test_export_and_erase_through_rasas_api(live_stack):
    sender = "oE2eRightsInMemory01"
    live_stack.say(sender, "你好")
    async with aiohttp.ClientSession() as http:
        memory = RasaApiMemory(http, live_stack.rasa_url, live_stack.rasa_token)
        events = await memory.export(sender)
        assert [e.get("text") for e in events if e.get("event") == "user"] == ["你好"]
        assert await memory.erase(sender) == len(events)
        assert [e for e in await memory.export(sender) if e.get("event") == "user"] == []
        # Without the token Rasa refuses to hand over a conversation.
        with pytest.raises(Exception, match="HTTP 401|HTTP 403|RASA_AUTH_TOKEN"):
            await RasaApiMemory(http, live_stack.rasa_url, "wrong-token").export(sender)
    # The conversation goes on as a new one.
    assert live_stack.say(sender, "你好")
