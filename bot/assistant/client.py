"""Client of the Rasa assistant (REST channel); the sender is always the resident's openid.

Implements `bot.cases.ports.Assistant`.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.cases.ports import AssistantUnavailable
from bot.core import metrics as reasons
from bot.core.metrics import NO_METRICS, Metrics

__all__ = ["AssistantClient", "AssistantRefused", "AssistantUnavailable", "check_status", "sender_headers"]

log = logging.getLogger(__name__)

# Several Rasa processes sit behind HAProxy (bot.app.balancer), which keeps each resident on one of
# them by hashing this header: a short hash of the sender, never the openid itself.
SENDER_HEADER = "X-Wuye-Sender"


def sender_headers(sender: str) -> dict[str, str]:
    """The headers of every call to Rasa about `sender` (their turns, their tracker)."""
    return {SENDER_HEADER: hashlib.sha256(sender.encode("utf-8")).hexdigest()[:16]}


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
        answers = await self._post(f"{self.rasa_url}/webhooks/rest/webhook", payload, sender=sender)
        if not answers:
            await self._check_turn_taken(sender, str((metadata or {}).get("dedupe_key") or ""))
        return [str(item["text"]) for item in answers if item.get("text")]

    async def _check_turn_taken(self, sender: str, dedupe_key: str) -> None:
        """Rasa's REST channel answers 200 and an empty list when the turn failed inside Rasa (its
        Redis lock store or its tracker store unreachable: it logs the error and returns what the
        bot had said so far, nothing). So an empty answer stands only when Rasa's tracker holds the
        message's turn; without it the message never reached the assistant, and waits as it does
        while Rasa is down (tests/e2e/test_e2e_faults.py: Redis stopped)."""
        if not dedupe_key:
            return
        try:
            taken = await self.earlier_answer(sender, dedupe_key)
        except AssistantRefused:
            return  # no way to tell: the empty answer stands
        if taken is None:
            self.metrics.assistant_error(reasons.HTTP_5XX)  # it failed inside, though it said 200
            raise AssistantUnavailable("Rasa answered nothing and holds no turn of the message")

    async def _post(self, url: str, payload: dict[str, Any], params: dict[str, str] | None = None, *,
                    sender: str | None = None) -> Any:
        query = {**(params or {}), "token": self.auth_token}
        headers = sender_headers(sender) if sender is not None else None
        try:
            async with self.http.post(url, json=payload, params=query, headers=headers,
                                      timeout=self.timeout) as response:
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
        body = await self._post(url, {"name": intent, "entities": entities}, {"output_channel": "collector"},
                                sender=sender)
        return [str(item["text"]) for item in body.get("messages") or [] if item.get("text")]

    async def earlier_answer(self, sender: str, dedupe_key: str) -> list[str] | None:
        """What Rasa answered to the message sent with this `dedupe_key` in its metadata: the
        bot utterances that followed that user event in the sender's tracker, or None when the
        tracker has no such event (the message never had its turn)."""
        url = f"{self.rasa_url}/conversations/{quote(sender, safe='')}/tracker"
        # Every event, not only those after the last restart: the message may lie before one.
        query = {"include_events": "ALL", "token": self.auth_token}
        try:
            async with self.http.get(url, params=query, headers=sender_headers(sender),
                                     timeout=self.timeout) as response:
                if response.status >= 400:
                    self.metrics.assistant_error(_status_reason(response.status))
                check_status(response.status)
                tracker = await response.json(content_type=None)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            self.metrics.assistant_error(reasons.TIMEOUT if isinstance(exc, asyncio.TimeoutError)
                                         else reasons.UNREACHABLE)
            raise AssistantUnavailable(f"Rasa unreachable: {exc.__class__.__name__}") from exc
        return answers_after(tracker.get("events") or [], dedupe_key)


def answers_after(events: list[dict[str, Any]], dedupe_key: str) -> list[str] | None:
    """The bot texts between the user event carrying `dedupe_key` and the next user event;
    None when no user event carries it."""
    answers: list[str] | None = None
    for event in events:
        if event.get("event") == "user":
            if answers is not None:
                break
            if (event.get("metadata") or {}).get("dedupe_key") == dedupe_key:
                answers = []
        elif answers is not None and event.get("event") == "bot" and event.get("text"):
            answers.append(str(event["text"]))
    return answers
