"""A small async client for the WeChat API calls we need (token, customer-service text)."""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

import aiohttp

from bot.channels.wechat import tokens
from bot.core.clock import utcnow
from bot.core.metrics import NO_METRICS, Metrics
from bot.core.privacy import mask_openid
from bot.db.store import TicketStore

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}  # invalid / expired access token
OUT_OF_WINDOW = 45015  # the resident's last message is more than 48 h old
# Customer-service messages reach a resident only this long after their last message.
CUSTOMER_SERVICE_WINDOW = timedelta(hours=48)


class WeChatApiError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatApi:
    def __init__(self, http: aiohttp.ClientSession, store: TicketStore, base_url: str, app_id: str,
                 app_secret: str, timeout: float = 10.0, metrics: Metrics = NO_METRICS) -> None:
        self.http = http
        self.metrics = metrics
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.app_secret = app_secret
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def access_token(self, wait: float = 20.0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline:
            token = await asyncio.to_thread(tokens.valid_token, self.store, self.app_id, utcnow())
            if token:
                return token
            if await asyncio.to_thread(tokens.take_refresh_lease, self.store, self.app_id, utcnow()):
                return await self._fetch_token()
            await asyncio.sleep(0.1)
        raise TimeoutError("no WeChat access token: another worker's refresh did not finish")

    async def _fetch_token(self) -> str:
        params = {"grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret}
        try:
            async with self.http.get(f"{self.base_url}/cgi-bin/token", params=params,
                                     timeout=self.timeout) as response:
                body = await response.json(content_type=None)
            if "access_token" not in body:
                errcode = int(body.get("errcode", -1))
                self.metrics.wechat_api_error("token", errcode)
                raise WeChatApiError(errcode, str(body.get("errmsg", "")))
        except BaseException:
            await asyncio.to_thread(tokens.save_token, self.store, self.app_id, None, None, utcnow())
            raise
        now = utcnow()
        expires_at = now + timedelta(seconds=int(body.get("expires_in", 7200)))
        await asyncio.to_thread(tokens.save_token, self.store, self.app_id, body["access_token"], expires_at, now)
        log.info("WeChat access token refreshed; valid until %s UTC", expires_at.isoformat(timespec="seconds"))
        return str(body["access_token"])

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        for attempt in (1, 2):
            token = await self.access_token()
            # ensure_ascii=False: WeChat shows \\uXXXX escapes literally in customer-service text.
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            async with self.http.post(f"{self.base_url}{path}", params={"access_token": token}, data=data,
                                      headers={"Content-Type": "application/json; charset=utf-8"},
                                      timeout=self.timeout) as response:
                body = await response.json(content_type=None)
            errcode = int(body.get("errcode", 0))
            if errcode:
                self.metrics.wechat_api_error(path.removeprefix("/cgi-bin/").replace("/", "_"), errcode)
            if errcode in TOKEN_ERRORS and attempt == 1:
                await asyncio.to_thread(tokens.invalidate_token, self.store, self.app_id, token, utcnow())
                continue
            if errcode:
                raise WeChatApiError(errcode, str(body.get("errmsg", "")))
            return body
        raise AssertionError("unreachable")

    async def send_text(self, openid: str, text: str) -> None:
        """Customer-service text message (客服消息)."""
        await self._post("/cgi-bin/message/custom/send",
                         {"touser": openid, "msgtype": "text", "text": {"content": text}})
        log.info("customer-service message sent to %s (%d chars)", mask_openid(openid), len(text))

    async def send_template(self, openid: str, template_id: str, data: dict[str, str], url: str = "") -> None:
        """Template message (模板消息): the only way to reach a resident outside the 48-hour window."""
        payload: dict[str, Any] = {"touser": openid, "template_id": template_id,
                                   "data": {key: {"value": value} for key, value in data.items()}}
        if url:
            payload["url"] = url
        await self._post("/cgi-bin/message/template/send", payload)
        log.info("template message %s sent to %s", template_id, mask_openid(openid))
