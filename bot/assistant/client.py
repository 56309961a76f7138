"""Client of the Rasa assistant (REST channel); the sender is always the resident's openid.

Implements `bot.cases.ports.Assistant`.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.cases.ports import AssistantUnavailable
from bot.core import metrics as reasons
from bot.core.metrics import NO_METRICS, Metrics

__all__ = ["AssistantClient", "AssistantRefused", "AssistantUnavailable", "check_status"]

log = logging.getLogger(__name__)


class AssistantRefused(Exception):
    """Rasa turned the request down (HTTP 4xx other than an auth failure); trying again will not help."""


def check_status(status: int) -> None:
    """Raise for an unsuccessful answer of Rasa, saying the status only (the URL holds the token).

    A refused token (401/403) is a deployment fault that a restart with the right
    RASA_AUTH_TOKEN fixes: the message waits and is retried, like when Rasa is down.
    """
    if status >= 500:
        raise AssistantUnavailable(f"Rasa answered HTTP {status}")
    if status in (401, 403):
        raise AssistantUnavailable(f"Rasa refused the request (HTTP {status}): check RASA_AUTH_TOKEN")
    if status >= 400:
        raise AssistantRefused(f"Rasa answered HTTP {status}")


def _status_reason(status: int) -> str:
    if status >= 500:
        return reasons.HTTP_5XX
    return reasons.AUTH_REFUSED if status in (401, 403) else reasons.REFUSED


class AssistantClient:
    def __init__(self, http: aiohttp.ClientSession, rasa_url: str, action_server_url: str,
                 auth_token: str, timeout: float = 60.0, metrics: Metrics = NO_METRICS) -> None:
        self.http = http
        self.metrics = metrics
        self.rasa_url = rasa_url.rstrip("/")
        self.action_server_url = action_server_url.rstrip("/")
        # Rasa (`--auth-token`) reads its token from the `token` query parameter only; a
        # bearer header is taken as a JWT. Errors below never carry the URL, so it stays
        # out of logs and of the job errors staff see.
        self.auth_token = auth_token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._actions_ok_until = 0.0

    async def _action_server_up(self) -> bool:
        # Rasa swallows action-server failures into an empty answer (and a consumed
        # message), so we check the action server first; a good answer is cached briefly.
        loop = asyncio.get_running_loop()
        if loop.time() < self._actions_ok_until:
            return True
        try:
            async with self.http.get(f"{self.action_server_url}/health",
                                     timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status == 200:
                    self._actions_ok_until = loop.time() + 2.0
                    return True
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        self.metrics.assistant_error(reasons.ACTION_SERVER_DOWN)
        return False

    async def ask(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[str]:
        if not await self._action_server_up():
            raise AssistantUnavailable("action server unreachable")
        payload = {"sender": sender, "message": text, "metadata": metadata or {}}
        answers = await self._post(f"{self.rasa_url}/webhooks/rest/webhook", payload)
        return [str(item["text"]) for item in answers if item.get("text")]

    async def _post(self, url: str, payload: dict[str, Any], params: dict[str, str] | None = None) -> Any:
        query = {**(params or {}), "token": self.auth_token}
        try:
            async with self.http.post(url, json=payload, params=query, timeout=self.timeout) as response:
                if response.status >= 400:
                    self.metrics.assistant_error(_status_reason(response.status))
                check_status(response.status)
                # Any content type: aiohttp's own error for a wrong one would quote the URL.
                return await response.json(content_type=None)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            self.metrics.assistant_error(reasons.TIMEOUT if isinstance(exc, asyncio.TimeoutError)
                                         else reasons.UNREACHABLE)
            raise AssistantUnavailable(f"Rasa unreachable: {exc.__class__.__name__}") from exc

    async def trigger_intent(self, sender: str, intent: str, entities: dict[str, Any]) -> list[str]:
        """Inject an external intent into the resident's conversation; returns what the bot said.

        Used by the worker to open a survey: the resident's next message is then read in
        that context (the survey form is active).
        """
        if not await self._action_server_up():
            raise AssistantUnavailable("action server unreachable")
        url = f"{self.rasa_url}/conversations/{quote(sender, safe='')}/trigger_intent"
        body = await self._post(url, {"name": intent, "entities": entities}, {"output_channel": "collector"})
        return [str(item["text"]) for item in body.get("messages") or [] if item.get("text")]
