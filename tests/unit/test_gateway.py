"""Gateway health: a real aiohttp server on loopback."""
from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from bot.app.gateway import create_app
from bot.settings import Settings
from tests.live import free_port


async def get_health(settings: Settings) -> tuple[int, dict]:
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get("/healthz")
        return response.status, await response.json()


async def test_healthy_store_with_rasa_down_is_reported_not_fatal(sqlite_store):
    settings = Settings(database_url=sqlite_store.url, rasa_url=f"http://127.0.0.1:{free_port()}")
    status, body = await get_health(settings)
    assert status == 200
    assert body["checks"] == {"store": "ok", "rasa": "unavailable"}


async def test_unreachable_store_makes_the_gateway_unhealthy():
    settings = Settings(database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/none",
                        rasa_url=f"http://127.0.0.1:{free_port()}")
    status, body = await get_health(settings)
    assert status == 503 and body["checks"]["store"] == "unavailable"

