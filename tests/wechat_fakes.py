"""Play WeChat's side in tests: its servers (signed, optionally encrypted pushes) and its
API (a loopback server that records customer-service messages), plus a proxy that can
slow down or cut off the real Rasa server."""
from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from wechatpy.crypto import WeChatCrypto

from bot.wechat.protocol import sign

TOKEN = "test-token"
APP_ID = "wx0123456789abcdef"
APP_SECRET = "test-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them
ACCOUNT = "gh_property_account"

_msg_ids = itertools.count(int(time.time() * 1000))


def new_msg_id() -> int:
    return next(_msg_ids)


def text_xml(openid: str, content: str, msg_id: int | None = None, create_time: int | None = None) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id or new_msg_id()}</MsgId></xml>")


def voice_xml(openid: str, recognition: str, msg_id: int | None = None) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[voice]]></MsgType>"
            f"<MediaId><![CDATA[media-voice]]></MediaId><Format><![CDATA[amr]]></Format>"
            f"<Recognition><![CDATA[{recognition}]]></Recognition><MsgId>{msg_id or new_msg_id()}</MsgId></xml>")


def image_xml(openid: str, pic_url: str = "http://mmbiz.example/pic.jpg") -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
            f"<PicUrl><![CDATA[{pic_url}]]></PicUrl><MediaId><![CDATA[media-image]]></MediaId>"
            f"<MsgId>{new_msg_id()}</MsgId></xml>")


def location_xml(openid: str, label: str) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[location]]></MsgType>"
            f"<Location_X>31.23</Location_X><Location_Y>121.47</Location_Y><Scale>15</Scale>"
            f"<Label><![CDATA[{label}]]></Label><MsgId>{new_msg_id()}</MsgId></xml>")


def video_xml(openid: str) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[video]]></MsgType>"
            f"<MediaId><![CDATA[m]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId>"
            f"<MsgId>{new_msg_id()}</MsgId></xml>")


def event_xml(openid: str, event: str, key: str = "", create_time: int | None = None) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>")


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
        self.crypto = WeChatCrypto(token, AES_KEY, APP_ID)

    def signed(self, xml: str | bytes, *, forge: bool = False) -> tuple[dict[str, str], bytes]:
        timestamp, nonce = str(int(time.time())), f"n{new_msg_id()}"
        body = xml.encode("utf-8") if isinstance(xml, str) else xml
        query = {"timestamp": timestamp, "nonce": nonce,
                 "signature": sign(self.token, timestamp, nonce), "openid": "ignored"}
        if self.safe_mode:
            envelope = self.crypto.encrypt_message(body.decode("utf-8"), nonce, timestamp)
            encrypt = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
            query.update(encrypt_type="aes", msg_signature=sign(self.token, timestamp, nonce, encrypt))
            body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                    f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>").encode()
        if forge:
            key = "msg_signature" if self.safe_mode else "signature"
            query[key] = "0" * 40
        return query, body

    def read_reply(self, body: str, query: dict[str, str]) -> str | None:
        if body == "success":
            return None
        if self.safe_mode:
            envelope_sig = body.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
            timestamp = body.split("<TimeStamp>")[1].split("</TimeStamp>")[0]
            body = self.crypto.decrypt_message(body, envelope_sig, timestamp, query["nonce"])
        return body.split("<Content><![CDATA[")[1].split("]]></Content>")[0]

    async def push(self, http: aiohttp.ClientSession, xml: str | bytes, *, forge: bool = False,
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
    reject_tokens: set[str] = field(default_factory=set)
    server: TestServer | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
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
        payload["_raw_has_escapes"] = b"\\u" in raw
        self.messages.append(payload)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

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
