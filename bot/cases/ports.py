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

    async def earlier_answer(self, sender: str, dedupe_key: str) -> list[str] | None:
        """What the assistant answered to the message asked with this `dedupe_key` in its
        metadata, read from its memory of the conversation; None when that message never
        had its turn (raises AssistantUnavailable). Asked before a message that another
        gateway replica may already have put to the assistant is asked again."""
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
    project: str = ""  # whose template ids carry it (the default project's when empty)


class ResidentChannel(Protocol):
    """A way to reach residents (the WeChat official account today)."""

    async def deliver(self, notice: Notice, now: datetime) -> str:
        """Send the notice at most once per key; returns how it went out. Raises NotDeliverable."""
        ...

    async def purge_raw_logs(self, before: datetime) -> dict[str, int]:
        """Delete the channel's raw message logs older than `before` (retention); how many, by log."""
        ...

    async def raw_logs_of(self, openid: str) -> dict[str, list[dict[str, Any]]]:
        """Everything the channel logged from and to this resident (a rights export), by log."""
        ...

    async def erase_raw_logs_of(self, openid: str) -> dict[str, int]:
        """Delete everything the channel logged from and to this resident; how many, by log."""
        ...


class ConversationMemory(Protocol):
    """What the assistant remembers of each resident's conversation (Rasa's tracker store):
    pruned for retention, exported and erased for a resident's rights."""

    async def prune(self, before: datetime) -> int:
        """Forget conversation events older than `before`; how many were removed."""
        ...

    async def export(self, sender: str) -> list[dict[str, Any]]:
        """Every event held for this sender, oldest first."""
        ...

    async def erase(self, sender: str) -> int:
        """Forget this sender's whole conversation; how many events were removed."""
        ...
