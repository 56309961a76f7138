"""HTTP endpoints WeChat's servers call: GET URL verification, POST message push."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.channels.wechat import replay
from bot.channels.wechat.keys import CONVERSATIONS, CREDENTIALS
from bot.channels.wechat.protocol import (
    MAX_BODY_BYTES,
    ProtocolError,
    read_push,
    render_text_reply,
    verify_url,
)
from bot.core.clock import utcnow

log = logging.getLogger(__name__)

BODY_READ_TIMEOUT = 10.0  # seconds; WeChat sends a push's few KiB at once


def _refuse(request: web.Request, error: ProtocolError) -> web.Response:
    # No message content or openid here: only why and from where.
    log.warning("refused WeChat %s from %s: %s", request.method, request.remote, error.reason)
    return web.Response(status=error.status, text=error.reason)


async def verify(request: web.Request) -> web.Response:
    try:
        return web.Response(text=verify_url(request.query, request.app[CREDENTIALS]))
    except ProtocolError as error:
        return _refuse(request, error)


async def receive(request: web.Request) -> web.Response:
    arrived = asyncio.get_running_loop().time()  # the reply latency counts from here
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _refuse(request, ProtocolError(413, "body too large"))
    try:
        # The limit holds after decompression too (aiohttp stops inflating at client_max_size),
        # and a client that trickles its body does not hold the connection for ever.
        body = await asyncio.wait_for(request.read(), BODY_READ_TIMEOUT)
    except web.HTTPRequestEntityTooLarge:
        return _refuse(request, ProtocolError(413, "body too large"))
    except asyncio.TimeoutError:
        return _refuse(request, ProtocolError(408, "body not received in time"))
    creds = request.app[CREDENTIALS]
    try:
        push = read_push(body, request.query, creds)
    except ProtocolError as error:
        return _refuse(request, error)
    conversations = request.app[CONVERSATIONS]
    if not await asyncio.to_thread(replay.remember_push, conversations.store, timestamp=request.query["timestamp"],
                                   nonce=request.query.get("nonce", ""), body=body, now=utcnow()):
        return _refuse(request, ProtocolError(403, "nonce already used with another body"))
    answer = await conversations.handle(push.message, arrived)
    if answer is None:
        return web.Response(text="success")
    xml = render_text_reply(push.message, answer, creds, push.encrypted, request.query.get("nonce", ""))
    return web.Response(text=xml, content_type="application/xml", charset="utf-8")


ROUTES = [
    web.get("/wechat", verify),
    web.post("/wechat", receive),
]
