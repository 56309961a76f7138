"""Urgency of a repair and tier of a complaint, from what the resident wrote."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bot.core.chinese import to_simplified
from bot.core.kinds import Priority
from bot.core.rules import OurRepairComplaints, TriageRules, UrgencyRules
from bot.core.urgency import assess

_TIERS = {"major": Priority.MAJOR, "urgent": Priority.URGENT}
_RANK = {Priority.MAJOR: 2, Priority.URGENT: 1, Priority.GENERAL: 0}
# A signal does not count right after these (没有人受伤, 不是老人); a threat's "if" still does.
_NEGATIONS = ("没有", "没", "不是", "不", "无", "未")
_NEGATION_REACH = 3


def repair_priority(description: str, rules: UrgencyRules) -> Priority:
    """Emergency repairs: what the description reveals (bot.core.urgency), not a keyword."""
    return Priority.EMERGENCY if assess(description, rules).emergency else Priority.NORMAL


@dataclass(frozen=True)
class ComplaintWeight:
    tier: Priority
    reasons: tuple[str, ...] = ()  # each signal heard, with the words: 扬言向外投诉或曝光（“12345”）

    def explain(self) -> str:
        return "；".join(self.reasons)


@lru_cache(maxsize=512)
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def _heard(text: str, expression: str) -> str | None:
    for match in _pattern(expression).finditer(text):
        before = text[max(0, match.start() - _NEGATION_REACH):match.start()]
        if not any(word in before for word in _NEGATIONS):
            return match.group(0)
    return None


def weigh_complaint(text: str, rules: TriageRules) -> ComplaintWeight:
    """重大 (major) before 紧急 (urgent) before 一般 (general): the strongest signal heard."""
    text = to_simplified(text or "")
    tier, reasons = Priority.GENERAL, []
    for signal in rules.complaint_signals:
        words = next((w for w in (_heard(text, cue) for cue in signal.cues) if w), None)
        if words is None:
            continue
        reasons.append(f"{signal.label}（“{words}”）")
        signal_tier = _TIERS[signal.tier]
        if _RANK[signal_tier] > _RANK[tier]:
            tier = signal_tier
    return ComplaintWeight(tier, tuple(reasons))


def complaint_tier(text: str, rules: TriageRules) -> Priority:
    return weigh_complaint(text, rules).tier


@dataclass(frozen=True)
class AboutOurRepair:
    """A complaint about how we handle a repair, and whether the resident says it was never done."""

    words: str  # what showed it: 报修 … 两周没人来
    never_done: bool = False


def about_our_repair(text: str, rules: OurRepairComplaints) -> AboutOurRepair | None:
    """None unless the complaint names our repair work and says it is slow or undone."""
    text = to_simplified(text or "")
    about = next((w for w in (_heard(text, cue) for cue in rules.about) if w), None)
    slow = next((w for w in (_heard(text, cue) for cue in rules.slow + rules.never_done) if w), None)
    if about is None or slow is None:
        return None
    never = any(_pattern(cue).search(text) for cue in rules.never_done)
    return AboutOurRepair(f"{about}…{slow}", never_done=never)

