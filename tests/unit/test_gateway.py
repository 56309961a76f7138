"""Gateway health and its two listeners: real aiohttp servers on loopback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import migrate
from bot.app.gateway import create_app, create_staff_app
from bot.cases.staff_directory import add_staff, issue_token
from bot.db.store import TicketStore
from bot.settings import DEVELOPMENT_VALUES as DEV
from bot.settings import PROJECT_ROOT, Settings
from tests.live import free_port

RASA_TOKEN = "gateway-test-rasa-token"


async def get_health(settings: Settings) -> tuple[int, dict]:
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get("/healthz")
        return response.status, await response.json()


@pytest.fixture
async def rasa_status() -> AsyncIterator[str]:
    """Rasa's /status as `rasa run --enable-api --auth-token` serves it: 401 without `?token=`."""
    async def status(request: web.Request) -> web.Response:
        if request.query.get("token") != RASA_TOKEN:
            return web.json_response({"status": "failure", "reason": "NotAuthenticated"}, status=401)
        return web.json_response({"model_file": "model.tar.gz"})

    app = web.Application()
    app.router.add_get("/status", status)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_healthy_store_with_rasa_down_is_reported_not_fatal(sqlite_store):
    settings = Settings(database_url=sqlite_store.url, rasa_url=f"http://127.0.0.1:{free_port()}")
    status, body = await get_health(settings)
    assert status == 200
    assert body["checks"] == {"store": "ok", "rasa": "unavailable"}


async def test_the_health_check_asks_rasa_with_its_token(sqlite_store, rasa_status):
    settings = Settings(database_url=sqlite_store.url, rasa_url=rasa_status, rasa_auth_token=RASA_TOKEN)
    assert (await get_health(settings))[1]["checks"] == {"store": "ok", "rasa": "ok"}
    # A wrong token shows in the health check before a resident's message meets it.
    wrong = Settings(database_url=sqlite_store.url, rasa_url=rasa_status, rasa_auth_token="not-the-token")
    assert (await get_health(wrong))[1]["checks"]["rasa"] == "http 401"


async def test_unreachable_store_makes_the_gateway_unhealthy():
    settings = Settings(database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/none",
                        rasa_url=f"http://127.0.0.1:{free_port()}")
    status, body = await get_health(settings)
    assert status == 503 and body["checks"]["store"] == "unavailable"


@pytest.mark.parametrize("environment", ["production", "development"])
async def test_the_public_listener_never_serves_staff_routes(sqlite_store, environment):
    settings = Settings(database_url=sqlite_store.url, environment=environment, staff_api_token="agent",
                        rasa_url=f"http://127.0.0.1:{free_port()}",
                        wechat_api_base_url=f"http://127.0.0.1:{free_port()}/dev/wechat-api")
    headers = {"Authorization": "Bearer agent"}
    async with TestClient(TestServer(create_app(settings))) as client:
        for method, path in (("GET", "/api/tickets"), ("GET", "/api/alerts"), ("GET", "/api/jobs"),
                             ("POST", "/api/tickets/BX20261125-0001/resolve")):
            response = await client.request(method, path, headers=headers)
            assert response.status == 404, (method, path)
        assert (await client.get("/wechat")).status != 404  # WeChat's endpoint is here (refused: unsigned)


DEV_STAFF_TOKEN = "agent-dev-token-5b7e"  # the demo staff member's (development only)


async def test_the_staff_listener_serves_the_staff_api_and_nothing_of_wechat(sqlite_store):
    settings = Settings(database_url=sqlite_store.url, environment="development", staff_api_token=DEV_STAFF_TOKEN)
    async with TestClient(TestServer(create_staff_app(settings))) as client:
        for method, path in (("GET", "/wechat"), ("POST", "/wechat"), ("GET", "/dev/simulator"), ("GET", "/")):
            assert (await client.request(method, path)).status == 404, (method, path)
        health = await client.get("/healthz")
        assert health.status == 200 and (await health.json())["checks"] == {"store": "ok"}
        assert (await client.get("/api/tickets")).status == 401
        assert (await client.get("/api/tickets", headers={"Authorization": "Bearer not-the-token-0000"})).status == 401
        assert (await client.get("/api/tickets", headers={"Authorization": f"Bearer {DEV_STAFF_TOKEN}"})).status == 200


def test_python_m_bot_serve_runs_both_listeners_and_stops_cleanly_on_sigterm(sqlite_url):
    """The served process: staff routes answer on the staff port only, WeChat on the public one only.
    In production nobody signs in with STAFF_API_TOKEN: a staff member's own token opens the staff API."""
    migrate.upgrade(sqlite_url)
    store = TicketStore(sqlite_url)
    with store.transaction() as session:
        member = add_staff(session, name="王磊", employee_number="A001", roles=["agent"], projects=["default"],
                           known_projects={"default"})
        token = issue_token(session, member, label="test")
    store.dispose()
    public, staff = free_port(), free_port()
    env = dict(os.environ, DATABASE_URL=sqlite_url, LOG_LEVEL="INFO", WECHAT_TOKEN="prod-token-7f3a",
               WECHAT_APP_ID="wxprod0000000001", WECHAT_APP_SECRET="prod-secret-91c2", RASA_AUTH_TOKEN=RASA_TOKEN,
               RASA_URL=f"http://127.0.0.1:{free_port()}")
    for variable in ("WUYE_ENV", "STAFF_API_TOKEN", "PROJECTS_DIR", "PROJECT_CONFIG"):
        env.pop(variable, None)
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(public),
                                "--staff-host", "127.0.0.1", "--staff-port", str(staff)],
                               cwd=PROJECT_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert status_of(f"http://127.0.0.1:{staff}/healthz", wait=True) == 200
        assert status_of(f"http://127.0.0.1:{public}/healthz", wait=True) == 200
        assert status_of(f"http://127.0.0.1:{public}/api/tickets", token) == 404
        assert status_of(f"http://127.0.0.1:{staff}/api/tickets", token) == 200
        assert status_of(f"http://127.0.0.1:{staff}/api/tickets", DEV["STAFF_API_TOKEN"]) == 401  # no demo member
        assert status_of(f"http://127.0.0.1:{staff}/wechat") == 404
        assert status_of(f"http://127.0.0.1:{public}/wechat") == 403  # WeChat's endpoint (unsigned: refused)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert f"serving staff API on http://127.0.0.1:{staff}" in stderr


def status_of(url: str, token: str | None = None, wait: bool = False) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    for _ in range(150 if wait else 1):
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as refused:
            return refused.code
        except OSError:
            if not wait:
                raise
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer")
