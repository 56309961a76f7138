"""Telegram's Bot API on loopback: records what the bot sends, and plays staff members
pressing buttons and replying (updates served to the bot's getUpdates long poll)."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

BOT_TOKEN = "123456:TEST-staff-bot"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "物业工单助手", "username": "wuye_staff_bot"}
STAFF_CHAT = -100200300
HEAD_CHAT = -100900900


def user(user_id: int, name: str) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": name}


@dataclass
class FakeTelegram:
    sent: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    server: TestServer | None = None
    _next_update: int = 1
    _next_message: int = 1000
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._call)
        app.router.add_get("/bot{token}/{method}", self._call)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self.server:
            await self.server.close()

    # --- the API ---------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return await request.json()
        raw = dict(await request.post()) if request.can_read_body else dict(request.query)
        params: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                params[key] = json.loads(value)
            except (TypeError, ValueError):
                params[key] = value
        return params

    async def _call(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != BOT_TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return web.json_response({"ok": True, "result": True})
        return web.json_response({"ok": True, "result": await handler(params)})

    async def _api_getMe(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {**BOT_USER, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 0.5)
        while True:
            pending = [u for u in self.updates if u["update_id"] >= offset]
            if pending or time.monotonic() >= deadline:
                return pending
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), max(deadline - time.monotonic(), 0.01))
            except asyncio.TimeoutError:
                pass

    def _message(self, chat_id: int, text: str, sender: dict[str, Any], **extra: Any) -> dict[str, Any]:
        self._next_message += 1
        chat = {"id": chat_id, "type": "supergroup" if chat_id < 0 else "private", "title": "物业客服值班群"}
        return {"message_id": self._next_message, "date": int(time.time()), "chat": chat, "from": sender,
                "text": text, **extra}

    async def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        markup = params.get("reply_markup") or {}
        if "inline_keyboard" in markup:  # like Telegram, a message carries only inline keyboards
            extra["reply_markup"] = markup
        if markup.get("force_reply"):
            extra["_force_reply"] = True  # recorded for the tests, not part of Telegram's message
        message = self._message(int(params["chat_id"]), str(params["text"]), BOT_USER, **extra)
        self.sent.append(message)
        return message

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        self.answers.append(params)
        return True

    # --- staff members acting ----------------------------------------------------------

    def _push(self, kind: str, payload: dict[str, Any]) -> None:
        self.updates.append({"update_id": self._next_update, kind: payload})
        self._next_update += 1
        self._new_update.set()

    def press(self, who: dict[str, Any], message: dict[str, Any], data: str) -> str:
        query_id = f"cq{self._next_update}"
        original = {k: v for k, v in message.items() if not k.startswith("_")}
        self._push("callback_query", {"id": query_id, "from": who, "chat_instance": "staff-chat", "data": data,
                                      "message": original})
        return query_id

    def reply(self, who: dict[str, Any], to: dict[str, Any], text: str) -> None:
        original = {k: v for k, v in to.items() if not k.startswith("_")}
        self._push("message", self._message(to["chat"]["id"], text, who, reply_to_message=original))

    def command(self, who: dict[str, Any], text: str, chat_id: int = STAFF_CHAT) -> None:
        command = text.split()[0]
        self._push("message", self._message(chat_id, text, who,
                                            entities=[{"type": "bot_command", "offset": 0, "length": len(command)}]))

    # --- waiting for the bot -------------------------------------------------------------

    async def wait_for_sent(self, predicate, timeout: float = 20.0) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.sent:
                if predicate(message):
                    return message
            await asyncio.sleep(0.05)
        raise AssertionError(f"the bot did not send the expected message; it sent: {[m['text'] for m in self.sent]}")

    async def wait_for_answer(self, query_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for answer in self.answers:
                if answer.get("callback_query_id") == query_id:
                    return answer
            await asyncio.sleep(0.05)
        raise AssertionError(f"callback {query_id} was not answered")

    def cards(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("reply_markup")]


async def eventually(condition, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until `condition()` holds (the bot works in its own task, after the fake saw its request)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")
