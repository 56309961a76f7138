"""No secret reaches a log: the gateway, the staff bot, the worker and the action server run as real processes
with known stand-in secrets, do their work against fake WeChat and Telegram APIs, and
nothing they print (stdout, stderr, INFO and up) contains any of the secrets."""
from __future__ import annotations

import asyncio
import os
import sys
import urllib.parse
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from bot.app import migrate
from bot.app.stack import start_action_server
from bot.cases.tickets import request_human
from bot.core.rules import load_rules
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT
from tests.live import free_port, staff_member
from tests.telegram_fakes import BOT_TOKEN, STAFF_CHAT, FakeTelegram
from tests.wechat_fakes import AES_KEY, APP_ID, APP_SECRET, TOKEN, FakeWeChatApi, WeChatServers, text_xml

pytestmark = pytest.mark.e2e

STAFF_TOKEN = "agent-4c1d9e7b-secret"
DB_PASSWORD = "Db-Pa55-9f8e7d"  # the server trusts loopback; the password still travels in DATABASE_URL
RASA_TOKEN = "rasa-2b8d61f0-secret"


async def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)):
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not answer")


async def test_no_secret_appears_in_any_output(postgres_database_url: str, tmp_path: Path):
    database_url = str(make_url(postgres_database_url).set(password=DB_PASSWORD).render_as_string(False))
    migrate.upgrade(database_url)
    wechat, telegram = FakeWeChatApi(), FakeTelegram()
    wechat_url, telegram_url = await wechat.start(), await telegram.start()
    port, staff_port = free_port(), free_port()
    env = dict(os.environ, DATABASE_URL=database_url, LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
               WECHAT_TOKEN=TOKEN, WECHAT_APP_ID=APP_ID, WECHAT_APP_SECRET=APP_SECRET,
               WECHAT_ENCODING_AES_KEY=AES_KEY, WECHAT_API_BASE_URL=wechat_url,
               TELEGRAM_BOT_TOKEN=BOT_TOKEN, TELEGRAM_API_BASE_URL=telegram_url, STAFF_CHAT_ID=str(STAFF_CHAT),
               RASA_URL=f"http://127.0.0.1:{free_port()}", ACTION_SERVER_URL=f"http://127.0.0.1:{free_port()}",
               RASA_AUTH_TOKEN=RASA_TOKEN)
    env.pop("WUYE_ENV", None)  # production
    env.pop("STAFF_API_TOKEN", None)  # refused in production: staff have their own tokens
    setup = TicketStore(database_url)
    staff_member(setup, "E2E-SECRETS", "检查员", token=STAFF_TOKEN)
    setup.dispose()
    logs = tmp_path / "logs"
    logs.mkdir()

    def spawn(name: str, *args: str) -> asyncio.subprocess.Process:
        return asyncio.create_subprocess_exec(  # type: ignore[return-value]
            sys.executable, "-m", "bot", *args, cwd=PROJECT_ROOT, env=env,
            stdout=open(logs / f"{name}.out", "wb"), stderr=open(logs / f"{name}.err", "wb"))

    action_port = free_port()
    actions = start_action_server(action_port, env, logs)  # holds DATABASE_URL (and its password) too
    gateway = await spawn("gateway", "serve", "--host", "127.0.0.1", "--port", str(port),
                          "--staff-port", str(staff_port))
    staffbot = await spawn("staffbot", "staffbot")
    store = TicketStore(database_url)
    try:
        await wait_for_http(f"http://127.0.0.1:{port}/healthz")
        await wait_for_http(f"http://127.0.0.1:{staff_port}/healthz")
        await wait_for_http(f"http://127.0.0.1:{action_port}/health")
        async with aiohttp.ClientSession() as http:
            # A resident writes (safe mode; the assistant is down, so the gateway also retries and logs).
            push = await WeChatServers(f"http://127.0.0.1:{port}", safe_mode=True).push(
                http, text_xml("oSecretsCheck", "厨房漏水了，电话13812345678"))
            assert push.status == 200
            # Staff read the case list through the staff API's own listener (the agent token travels in a header).
            async with http.get(f"http://127.0.0.1:{staff_port}/api/tickets",
                                headers={"Authorization": f"Bearer {STAFF_TOKEN}"}) as response:
                assert response.status == 200
        # A case for staff: the staff bot posts its card through the (fake) Bot API.
        with store.transaction() as session:
            number = request_human(session, load_rules(PROJECT_ROOT / "project" / "default.yml"),
                                   openid="oSecretsCheck", context="转人工", channel="wechat").number
        await telegram.wait_for_sent(lambda m: number in m["text"])
        worker = await spawn("worker", "worker", "--once")
        assert await asyncio.wait_for(worker.wait(), 120) == 0
    finally:
        for process in (gateway, staffbot):
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
        actions.stop()
        store.dispose()
        await wechat.close()
        await telegram.close()

    output = {path.name: path.read_text(encoding="utf-8", errors="replace") for path in sorted(logs.iterdir())}
    assert "actions.log" in output and "staff bot running" in output["staffbot.err"] and "GET /healthz" in output["gateway.err"]
    secrets = {"WeChat token": TOKEN, "WeChat app secret": APP_SECRET, "EncodingAESKey": AES_KEY,
               "staff token": STAFF_TOKEN, "Telegram token": BOT_TOKEN,
               "Telegram token (URL-encoded)": urllib.parse.quote(BOT_TOKEN), "database password": DB_PASSWORD,
               "Rasa auth token": RASA_TOKEN, "resident's phone": "13812345678", "openid": "oSecretsCheck"}
    leaks = [f"{what} in {name}" for name, text in output.items() for what, value in secrets.items() if value in text]
    assert not leaks, leaks
