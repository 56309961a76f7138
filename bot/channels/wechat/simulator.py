"""Development-only WeChat simulator: a browser chat that drives the real pipeline.

The page asks the gateway to build, sign and (in safe mode) encrypt real WeChat XML and
POST it to the gateway's own /wechat endpoint over HTTP, exactly as WeChat's servers do.
Deferred answers arrive through a stand-in of WeChat's customer-service API mounted
under /dev/wechat-api, which the page polls.

It can only be installed when WUYE_ENV=development, the gateway listens on loopback and
the WeChat API base URL is on loopback too, so it cannot run in production by accident.
"""
from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
from aiohttp import web

from bot.channels.wechat.keys import HTTP
from bot.channels.wechat.simulate import event_xml, image_xml, read_reply, signed_push, text_xml, voice_xml
from bot.settings import Settings

log = logging.getLogger(__name__)

PUSHED = web.AppKey("simulator_pushed", list)
PAGE = Path(__file__).with_name("simulator.html")
_tokens = itertools.count(1)


class SimulatorRefused(RuntimeError):
    pass


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_allowed(settings: Settings, bind_host: str | None = None) -> None:
    if not settings.is_development:
        raise SimulatorRefused("the WeChat simulator exists only with WUYE_ENV=development")
    if not is_loopback(urlparse(settings.wechat_api_base_url).hostname):
        raise SimulatorRefused("the WeChat simulator refuses a non-loopback WECHAT_API_BASE_URL "
                               f"({settings.wechat_api_base_url}); unset WUYE_ENV for production")
    if bind_host is not None and not is_loopback(bind_host):
        raise SimulatorRefused(f"development mode listens on loopback only, not {bind_host}")


async def page(_request: web.Request) -> web.Response:
    return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html", charset="utf-8")


def _xml_for(payload: dict) -> str:
    openid = str(payload.get("openid") or "oSimulatorUser")[:64]
    kind = payload.get("kind", "text")
    if kind == "subscribe":
        return event_xml(openid, "subscribe")
    if kind == "click":
        return event_xml(openid, "CLICK", str(payload.get("key", "")))
    if kind == "voice":
        return voice_xml(openid, str(payload.get("text", "")))
    if kind == "image":
        return image_xml(openid, "http://simulator.local/photo.jpg")
    return text_xml(openid, str(payload.get("text", "")))


def make_send(settings: Settings):  # type: ignore[no-untyped-def]
    async def send(request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        safe_mode = bool(settings.wechat_encoding_aes_key) and payload.get("safe_mode", True)
        query, body = signed_push(_xml_for(payload), token=settings.wechat_token, app_id=settings.wechat_app_id,
                                  aes_key=settings.wechat_encoding_aes_key, safe_mode=safe_mode)
        url = f"{request.url.origin()}/wechat"
        try:
            async with request.app[HTTP].post(url, params=query, data=body,
                                              timeout=aiohttp.ClientTimeout(total=10)) as response:
                text = await response.text()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return web.json_response({"error": f"gateway unreachable: {exc!r}"}, status=502)
        if response.status != 200:
            return web.json_response({"error": f"gateway answered {response.status}: {text}"}, status=502)
        reply = read_reply(text, query, token=settings.wechat_token, app_id=settings.wechat_app_id,
                           aes_key=settings.wechat_encoding_aes_key, safe_mode=safe_mode)
        return web.json_response({"reply": reply, "safe_mode": safe_mode},
                                 dumps=lambda v: json.dumps(v, ensure_ascii=False))

    return send


async def fake_token(_request: web.Request) -> web.Response:
    return web.json_response({"access_token": f"SIMULATOR_TOKEN_{next(_tokens)}", "expires_in": 7200})


async def fake_custom_send(request: web.Request) -> web.Response:
    payload = json.loads((await request.read()).decode("utf-8"))
    request.app[PUSHED].append({"openid": payload.get("touser"), "text": payload.get("text", {}).get("content", "")})
    return web.json_response({"errcode": 0, "errmsg": "ok"})


async def pushed(request: web.Request) -> web.Response:
    openid = request.query.get("openid", "")
    after = int(request.query.get("after", "0") or 0)
    # Read into a name first: inside enumerate(), mypy infers the key as AppKey[Iterable[Any]] and rejects it.
    sent = request.app[PUSHED]
    items = [(i, m) for i, m in enumerate(sent) if m["openid"] == openid and i >= after]
    return web.json_response({"next": len(sent), "messages": [m["text"] for _, m in items]},
                             dumps=lambda v: json.dumps(v, ensure_ascii=False))


def install(app: web.Application, settings: Settings) -> None:
    check_allowed(settings)
    app[PUSHED] = []
    app.add_routes([
        web.get("/dev/simulator", page),
        web.post("/dev/simulator/send", make_send(settings)),
        web.get("/dev/simulator/pushed", pushed),
        web.get("/dev/wechat-api/cgi-bin/token", fake_token),
        web.post("/dev/wechat-api/cgi-bin/message/custom/send", fake_custom_send),
    ])
    log.warning("development mode: WeChat simulator at /dev/simulator (never enable in production)")
