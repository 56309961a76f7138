"""The interfaces through which the use cases reach the outside world.

The use cases never import a channel or the assistant's client: the application wires a
concrete implementation (WeChat, the Rasa client, a test double) into these shapes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class AssistantUnavailable(Exception):
    """The assistant (Rasa or its action server) cannot take the message now; try again later."""


class Assistant(Protocol):
    """The conversational assistant, addressed by the resident's id on their channel."""

    async def ask(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[str]:
        """What the assistant answers to one message (raises AssistantUnavailable)."""
        ...

    async def trigger_intent(self, sender: str, intent: str, entities: dict[str, Any]) -> list[str]:
        """Inject an event into the resident's conversation; returns what the assistant said."""
        ...


class NotDeliverable(Exception):
    """The channel has no way to reach this resident with this notice now (staff phone instead)."""


@dataclass(frozen=True)
class Notice:
    """Something the system tells a resident unprompted (callback question, update, staff words)."""

    openid: str
    text: str
    key: str  # idempotency key: one notice, at most one successful delivery
    template: str  # which configured template carries it when free text cannot be sent
    values: dict[str, str] = field(default_factory=dict)  # what the template's fields may use
    ticket_id: int | None = None


class ResidentChannel(Protocol):
    """A way to reach residents (the WeChat official account today)."""

    async def deliver(self, notice: Notice, now: datetime) -> str:
        """Send the notice at most once per key; returns how it went out. Raises NotDeliverable."""
        ...

    async def purge_raw_logs(self, before: datetime) -> dict[str, int]:
        """Delete the channel's raw message logs older than `before` (retention); how many, by log."""
        ...
