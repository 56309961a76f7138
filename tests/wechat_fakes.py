"""Play WeChat's side in tests: its servers (signed, optionally encrypted pushes) and its
API (a loopback server that records customer-service messages), plus a proxy that can
slow down or cut off the real Rasa server."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.wechat.simulate import (  # noqa: F401 - re-exported for the tests
    event_xml,
    image_xml,
    location_xml,
    new_msg_id,
    read_reply,
    signed_push,
    text_xml,
    video_xml,
    voice_xml,
)

TOKEN = "test-token"
APP_ID = "wx0123456789abcdef"
APP_SECRET = "test-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them


@dataclass
class Push:
    status: int
    body: str
    reply: str | None  # decrypted reply text, None for "success"


class WeChatServers:
    """Signs (and in safe mode encrypts) pushes exactly as WeChat's servers do."""

    def __init__(self, gateway_url: str, safe_mode: bool = False, token: str = TOKEN) -> None:
        self.url = gateway_url.rstrip("/") + "/wechat"
        self.safe_mode = safe_mode
        self.token = token

    def signed(self, xml: str, *, forge: bool = False, timestamp: int | None = None,
               nonce: str | None = None) -> tuple[dict[str, str], bytes]:
        return signed_push(xml, token=self.token, app_id=APP_ID, aes_key=AES_KEY, safe_mode=self.safe_mode,
                           forge=forge, timestamp=timestamp, nonce=nonce)

    async def post(self, http: aiohttp.ClientSession, query: dict[str, str], body: bytes) -> Push:
        """Send a query string and body as given (replays, tampered bodies)."""
        async with http.post(self.url, params=query, data=body, headers={"Content-Type": "text/xml"}) as response:
            text = await response.text()
            return Push(response.status, text, self.read_reply(text, query) if response.status == 200 else None)

    def read_reply(self, body: str, query: dict[str, str]) -> str | None:
        return read_reply(body, query, token=self.token, app_id=APP_ID, aes_key=AES_KEY, safe_mode=self.safe_mode)

    async def push(self, http: aiohttp.ClientSession, xml: str, *, forge: bool = False,
                   raw_body: bytes | None = None) -> Push:
        query, body = self.signed(xml, forge=forge)
        async with http.post(self.url, params=query, data=raw_body if raw_body is not None else body,
                             headers={"Content-Type": "text/xml"}) as response:
            text = await response.text()
            reply = self.read_reply(text, query) if response.status == 200 else None
            return Push(response.status, text, reply)


@dataclass
class FakeWeChatApi:
    """WeChat's API on loopback: hands out tokens, records customer-service messages."""

    tokens_issued: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    reject_tokens: set[str] = field(default_factory=set)
    # Residents whose last message is older than 48 h: customer-service sends get 45015.
    out_of_window: set[str] = field(default_factory=set)
    # The next N sends fail with "system busy" (WeChat's -1).
    busy_sends: int = 0
    # Sends to these residents hang until the client gives up (nothing is delivered).
    hang_for: set[str] = field(default_factory=set)
    hung: int = 0
    server: TestServer | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        app.router.add_post("/cgi-bin/message/template/send", self._send_template)
        return app

    async def start(self) -> str:
        self.server = TestServer(self.app(), host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self.server:
            await self.server.close()

    async def _token(self, request: web.Request) -> web.Response:
        if request.query.get("appid") != APP_ID or request.query.get("secret") != APP_SECRET:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        await asyncio.sleep(0.05)  # long enough for concurrent workers to overlap
        token = f"ACCESS_TOKEN_{len(self.tokens_issued) + 1}"
        self.tokens_issued.append(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def _send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        # Like WeChat, only the newest token is valid.
        if token in self.reject_tokens or not self.tokens_issued or token != self.tokens_issued[-1]:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        raw = await request.read()
        payload = json.loads(raw.decode("utf-8"))
        refusal = await self._refusal(payload)
        if refusal is not None:
            return refusal
        if payload["touser"] in self.out_of_window:
            return web.json_response({"errcode": 45015, "errmsg": "response out of time limit"})
        payload["_raw_has_escapes"] = b"\\u" in raw
        self.messages.append(payload)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _refusal(self, payload: dict[str, Any]) -> web.Response | None:
        if payload.get("touser") in self.hang_for:
            self.hung += 1
            await asyncio.sleep(3600)  # the caller times out or dies; nothing is delivered
        if self.busy_sends > 0:
            self.busy_sends -= 1
            return web.json_response({"errcode": -1, "errmsg": "system error"})
        return None

    async def _send_template(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        if not self.tokens_issued or token != self.tokens_issued[-1]:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        payload = json.loads((await request.read()).decode("utf-8"))
        refusal = await self._refusal(payload)
        if refusal is not None:
            return refusal
        for key, value in payload.get("data", {}).items():
            text = value.get("value", "")
            if len(text) > 20 or "\n" in text:  # WeChat refuses such fields
                return web.json_response({"errcode": 47003, "errmsg": f"argument invalid! data.{key}.value"})
        self.templates.append(payload)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": len(self.templates)})

    def everything_to(self, openid: str) -> list[dict[str, Any]]:
        return [m for m in self.messages + self.templates if m["touser"] == openid]

    def texts_to(self, openid: str) -> list[str]:
        return [m["text"]["content"] for m in self.messages if m["touser"] == openid]


class RasaProxy:
    """Sits between the gateway and the real Rasa: pass through, slow down, or be down."""

    def __init__(self, rasa_url: str) -> None:
        self.rasa_url = rasa_url.rstrip("/")
        self.delay = 0.0
        self.down = False
        self.forwarded = 0
        self.server: TestServer | None = None
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self.http = aiohttp.ClientSession()
        return str(self.server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self.http:
            await self.http.close()
        if self.server:
            await self.server.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            request.transport.close()  # like a dead server: the connection just drops
            raise web.HTTPServiceUnavailable()
        await asyncio.sleep(self.delay)
        body = await request.read()
        async with self.http.request(request.method, f"{self.rasa_url}{request.rel_url}", data=body,
                                     headers={"Content-Type": request.headers.get("Content-Type", "")}) as upstream:
            payload = await upstream.read()
            self.forwarded += 1
            return web.Response(status=upstream.status, body=payload, content_type=upstream.content_type)
