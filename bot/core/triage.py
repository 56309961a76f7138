"""Urgency of a repair and tier of a complaint, from what the resident wrote."""
from __future__ import annotations

from bot.core.kinds import Priority
from bot.core.rules import TriageRules, UrgencyRules
from bot.core.urgency import assess


def _mentions(text: str, keywords: tuple[str, ...]) -> bool:
    return any(keyword and keyword in text for keyword in keywords)


def repair_priority(description: str, rules: UrgencyRules) -> Priority:
    """Emergency repairs: what the description reveals (bot.core.urgency), not a keyword."""
    return Priority.EMERGENCY if assess(description, rules).emergency else Priority.NORMAL


def complaint_tier(text: str, rules: TriageRules) -> Priority:
    """重大 (major) before 紧急 (urgent) before 一般 (general)."""
    if _mentions(text, rules.major_complaint_keywords):
        return Priority.MAJOR
    if _mentions(text, rules.urgent_complaint_keywords):
        return Priority.URGENT
    return Priority.GENERAL
