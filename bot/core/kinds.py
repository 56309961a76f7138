"""What a case is: its kind, its status and its priority (stored as their string values)."""
from __future__ import annotations

import enum


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
