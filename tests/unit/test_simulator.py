"""The development WeChat simulator: works in development, cannot exist in production."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import migrate
from bot.app.gateway import create_app
from bot.app.stack import development_env
from bot.channels.wechat.simulator import SimulatorRefused
from bot.settings import DEVELOPMENT_VALUES as DEV
from bot.settings import PROJECT_ROOT, Settings
from tests.live import free_port

# Stand-ins for a real account's secrets (not the development ones). No staff token: in
# production each person has their own, and a shared STAFF_API_TOKEN is refused.
PRODUCTION_SECRETS = {"WECHAT_TOKEN": "prod-token-7f3a", "WECHAT_APP_ID": "wxprod0000000001",
                      "WECHAT_APP_SECRET": "prod-secret-91c2", "RASA_AUTH_TOKEN": "prod-rasa-3e9c"}


def dev_settings(database_url: str, port: int, **overrides) -> Settings:
    values = dict(database_url=database_url, environment="development", wechat_token=DEV["WECHAT_TOKEN"],
                  wechat_app_id=DEV["WECHAT_APP_ID"], wechat_app_secret=DEV["WECHAT_APP_SECRET"],
                  wechat_encoding_aes_key=DEV["WECHAT_ENCODING_AES_KEY"], wechat_allow_plaintext=True,
                  wechat_api_base_url=f"http://127.0.0.1:{port}/dev/wechat-api",
                  rasa_url=f"http://127.0.0.1:{free_port()}", action_server_url=f"http://127.0.0.1:{free_port()}",
                  passive_reply_budget=0.5)
    values.update(overrides)
    return Settings(**values)


async def test_simulator_signs_encrypts_and_posts_through_the_real_endpoint(sqlite_url, company):
    migrate.upgrade(sqlite_url)
    port = free_port()
    server = TestServer(create_app(dev_settings(sqlite_url, port), company), host="127.0.0.1", port=port)
    await server.start_server()
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
        async with http.get("/dev/simulator") as response:
            assert response.status == 200 and "微信公众号模拟器" in await response.text()
        async with http.post("/dev/simulator/send", json={"openid": "oSim1", "kind": "subscribe"}) as response:
            body = await response.json()
        assert body["safe_mode"] is True and "欢迎关注" in body["reply"]
        # Rasa is down here: the text is acknowledged and the answer will come as a pushed message.
        async with http.post("/dev/simulator/send", json={"openid": "oSim1", "text": "我要报修"}) as response:
            assert "已经收到" in (await response.json())["reply"]
        async with http.post("/dev/simulator/send", data=b"not json") as response:
            assert response.status == 400 and "JSON" in (await response.json())["error"]
    await server.close()


async def test_production_has_no_simulator(sqlite_url, company):
    migrate.upgrade(sqlite_url)
    server = TestServer(create_app(Settings(database_url=sqlite_url), company), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        for path in ("/dev/simulator", "/dev/wechat-api/cgi-bin/token"):
            async with http.get(str(server.make_url(path))) as response:
                assert response.status == 404
    await server.close()


def test_development_mode_refuses_the_real_wechat_api(sqlite_url, company):
    with pytest.raises(SimulatorRefused, match="non-loopback"):
        create_app(dev_settings(sqlite_url, 1, wechat_api_base_url="https://api.weixin.qq.com"), company)


@pytest.mark.parametrize("listener", ["--host", "--staff-host"])
def test_development_mode_refuses_to_listen_beyond_loopback(sqlite_url, listener):
    env = dict(os.environ, DATABASE_URL=sqlite_url, WUYE_ENV="development",
               WECHAT_API_BASE_URL="http://127.0.0.1:9/dev/wechat-api")
    result = subprocess.run([sys.executable, "-m", "bot", "serve", listener, "0.0.0.0", "--port", str(free_port())],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "loopback only" in result.stderr


def test_gateway_access_log_keeps_openids_out(sqlite_url):
    """WeChat puts the resident's openid in the push URL; the served gateway logs the path only."""
    migrate.upgrade(sqlite_url)
    port = free_port()
    env = dict(os.environ, DATABASE_URL=sqlite_url, LOG_LEVEL="INFO", **PRODUCTION_SECRETS)
    env.pop("WUYE_ENV", None)
    env.pop("STAFF_API_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--staff-port", str(free_port())], cwd=PROJECT_ROOT, env=env, stderr=subprocess.PIPE,
                               text=True)
    try:
        url = f"http://127.0.0.1:{port}/wechat?signature=0&timestamp=1&nonce=2&openid=oSecretResident42"
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError:
                break  # refused (bad signature): the request was served and logged
            except OSError:
                time.sleep(0.1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "GET /wechat " in stderr
    assert "oSecretResident42" not in stderr and "signature=" not in stderr



def test_production_refuses_to_start_with_empty_or_development_secrets(sqlite_url):
    env = dict(os.environ, DATABASE_URL=sqlite_url, **DEV)
    env.pop("WUYE_ENV")  # production, but the development tokens are still around
    env["RASA_AUTH_TOKEN"] = ""
    result = subprocess.run([sys.executable, "-m", "bot", "serve", "--port", str(free_port())], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "WECHAT_TOKEN is the development value" in result.stderr
    assert "RASA_AUTH_TOKEN is not set" in result.stderr
    assert "STAFF_API_TOKEN is for development only" in result.stderr  # the demo member's token, in production
    assert DEV["WECHAT_APP_SECRET"] not in result.stderr  # names the variable, never its value
    assert DEV["STAFF_API_TOKEN"] not in result.stderr
    worker = subprocess.run([sys.executable, "-m", "bot", "worker", "--once"], cwd=PROJECT_ROOT,
                            env=dict(env, WECHAT_APP_SECRET=""), capture_output=True, text=True, timeout=60)
    assert worker.returncode == 2 and "WECHAT_APP_SECRET is not set" in worker.stderr


def test_real_secrets_pass_and_development_needs_none():
    assert Settings.from_env(dict(PRODUCTION_SECRETS)).production_problems("serve") == []
    assert Settings.from_env({"WUYE_ENV": "development"}).production_problems("serve") == []
    # The demo staff member's token is development's own.
    assert Settings.from_env({"WUYE_ENV": "development", "STAFF_API_TOKEN": DEV["STAFF_API_TOKEN"]}
                             ).production_problems("serve") == []


def test_make_run_fills_in_development_values_only_for_development(monkeypatch):
    monkeypatch.setenv("WUYE_ENV", "production")
    for name in ("WECHAT_TOKEN", "STAFF_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    env = development_env(Settings())
    assert "WECHAT_TOKEN" not in env and "STAFF_API_TOKEN" not in env and env["WUYE_ENV"] == "production"
    monkeypatch.delenv("WUYE_ENV")
    assert development_env(Settings())["WECHAT_TOKEN"] == DEV["WECHAT_TOKEN"]
