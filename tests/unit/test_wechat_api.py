"""The shared access token and customer-service messages, against a fake WeChat API on loopback."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bot.channels.wechat.api import WeChatApi, WeChatApiError
from bot.db.store import TicketStore
from tests.wechat_fakes import APP_ID, APP_SECRET, FakeWeChatApi


@pytest.fixture
async def fake_api():
    api = FakeWeChatApi()
    url = await api.start()
    yield api, url
    await api.close()


async def test_many_workers_share_one_token(fake_api, store):
    api, url = fake_api
    async with aiohttp.ClientSession() as http:
        # Eight "workers": separate clients, each with its own engine, one shared database.
        stores = [TicketStore(store.url) for _ in range(8)]
        workers = [WeChatApi(http, s, url, APP_ID, APP_SECRET) for s in stores]
        await asyncio.gather(*(w.send_text(f"oWorker{i}", f"第{i}条") for i, w in enumerate(workers)))
        for s in stores:
            s.dispose()
    assert api.tokens_issued == ["ACCESS_TOKEN_1"]  # nobody invalidated anybody
    assert sorted(m["touser"] for m in api.messages) == sorted(f"oWorker{i}" for i in range(8))


async def test_rejected_token_is_refreshed_once_and_the_message_goes_out(fake_api, sqlite_store):
    api, url = fake_api
    async with aiohttp.ClientSession() as http:
        client = WeChatApi(http, sqlite_store, url, APP_ID, APP_SECRET)
        await client.send_text("oA", "第一条")
        api.reject_tokens.add("ACCESS_TOKEN_1")  # WeChat says 40001 for it now
        await client.send_text("oA", "第二条")
    assert api.tokens_issued == ["ACCESS_TOKEN_1", "ACCESS_TOKEN_2"]
    assert api.texts_to("oA") == ["第一条", "第二条"]


async def test_customer_service_text_is_sent_as_real_utf8(fake_api, sqlite_store):
    api, url = fake_api
    async with aiohttp.ClientSession() as http:
        await WeChatApi(http, sqlite_store, url, APP_ID, APP_SECRET).send_text("oA", "您好，维修师傅马上到")
    assert api.messages[0]["_raw_has_escapes"] is False


async def test_bad_credentials_raise_a_clear_error(fake_api, sqlite_store):
    _api, url = fake_api
    async with aiohttp.ClientSession() as http:
        with pytest.raises(WeChatApiError, match="40013"):
            await WeChatApi(http, sqlite_store, url, APP_ID, "wrong-secret").send_text("oA", "x")


def test_no_refresh_lease_once_a_valid_token_is_saved(store):
    # The race behind two tokens: worker B finds no token, worker A fetches and saves one,
    # then B asks for the refresh lease. B must be refused and read A's token instead.
    from datetime import datetime, timedelta

    from bot.channels.wechat import tokens

    now = datetime(2026, 11, 30, 2, 0)
    assert tokens.valid_token(store, APP_ID, now) is None  # B looks: nothing yet
    assert tokens.take_refresh_lease(store, APP_ID, now)  # A takes the lease
    tokens.save_token(store, APP_ID, "ACCESS_TOKEN_A", now + timedelta(hours=2), now)
    assert not tokens.take_refresh_lease(store, APP_ID, now)  # B: refused, the token is valid
    assert tokens.valid_token(store, APP_ID, now) == "ACCESS_TOKEN_A"
    # Near expiry (inside the refresh margin), or once WeChat rejected it, a refresh is due again.
    assert tokens.take_refresh_lease(store, APP_ID, now + timedelta(hours=2) - tokens.REFRESH_MARGIN)
    tokens.save_token(store, APP_ID, "ACCESS_TOKEN_B", now + timedelta(hours=4), now + timedelta(hours=2))
    tokens.invalidate_token(store, APP_ID, "ACCESS_TOKEN_B", now + timedelta(hours=2))
    assert tokens.take_refresh_lease(store, APP_ID, now + timedelta(hours=2))
