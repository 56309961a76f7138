"""Deadlines (`due_at`) from the project's SLA rules."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from bot.clock import to_local, to_utc_naive
from bot.models import Priority, TicketKind
from bot.rules import ProjectRules, SlaRules

SPECIAL_GROUP_TAGS = frozenset({"empty_nest_elderly", "living_alone_elderly", "disabled", "intellectual_disability"})


def is_working_day(day: datetime, sla: SlaRules) -> bool:
    return day.isoweekday() in sla.working_days and day.date() not in sla.holidays


def add_working_days(start_local: datetime, days: int, sla: SlaRules) -> datetime:
    """Same local time of day, `days` working days later (weekends and holidays skipped)."""
    moment = start_local
    remaining = days
    # A year of non-working days is far beyond any real calendar: stop there.
    for _ in range(days + 366):
        if remaining <= 0:
            break
        moment = moment + timedelta(days=1)
        if is_working_day(moment, sla):
            remaining -= 1
    return moment


def _base_span(kind: TicketKind, priority: Priority | None, created_local: datetime,
               sla: SlaRules) -> datetime | None:
    if kind is TicketKind.REPAIR:
        if priority is Priority.EMERGENCY:
            return created_local + timedelta(minutes=sla.emergency_repair_onsite_minutes)
        return created_local + timedelta(hours=sla.general_repair_hours)
    if kind is TicketKind.COMPLAINT:
        if priority is Priority.MAJOR:
            return created_local + timedelta(hours=sla.major_complaint_hours)
        if priority is Priority.URGENT:
            return created_local + timedelta(hours=sla.urgent_complaint_hours)
        return add_working_days(created_local, sla.general_complaint_working_days, sla)
    if kind is TicketKind.SUGGESTION:
        return add_working_days(created_local, sla.suggestion_reply_working_days, sla)
    return None  # praise and answered enquiries carry no deadline


def compute_due_at(kind: TicketKind, priority: Priority | None, created_at: datetime,
                   rules: ProjectRules, resident_tags: Iterable[str] = ()) -> datetime | None:
    """Deadline as naive UTC. Special-group residents get a shorter deadline."""
    created_local = to_local(created_at, rules.timezone)
    due_local = _base_span(kind, priority, created_local, rules.sla)
    if due_local is None:
        return None
    if SPECIAL_GROUP_TAGS.intersection(resident_tags) and rules.sla.special_group_factor < 1:
        span = (due_local - created_local) * rules.sla.special_group_factor
        due_local = created_local + span
    return to_utc_naive(due_local)
