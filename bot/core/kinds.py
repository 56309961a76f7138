"""What a case is: its kind, its status and its priority (stored as their string values)."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol


class TicketKind(str, enum.Enum):
    REPAIR = "repair"  # 报修
    COMPLAINT = "complaint"  # 投诉
    ENQUIRY = "enquiry"  # 咨询
    SUGGESTION = "suggestion"  # 建议
    PRAISE = "praise"  # 表扬


class TicketStatus(str, enum.Enum):
    NEW = "new"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    CANCELLED = "cancelled"


class Priority(str, enum.Enum):
    # Repairs
    EMERGENCY = "emergency"
    NORMAL = "normal"
    # Complaints (重大 / 紧急 / 一般)
    MAJOR = "major"
    URGENT = "urgent"
    GENERAL = "general"


class Case(Protocol):
    """What the core reads of a case (the stored ticket satisfies it): the facts that
    deadlines and resident-facing wording depend on."""

    @property
    def number(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def priority(self) -> str | None: ...
    @property
    def description(self) -> str: ...
    @property
    def room(self) -> str | None: ...
    @property
    def visit_time(self) -> str | None: ...
    @property
    def due_at(self) -> datetime | None: ...
    @property
    def final_due_at(self) -> datetime | None: ...
    @property
    def callback_due_at(self) -> datetime | None: ...
