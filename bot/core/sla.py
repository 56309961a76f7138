"""Deadlines (`due_at`) from the project's SLA rules."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from bot.core.clock import to_local, to_utc_naive
from bot.core.kinds import Case, Priority, TicketKind, TicketStatus
from bot.core.lifecycle import NOT_STARTED, OPEN_STATUSES
from bot.core.rules import ProjectRules

SPECIAL_GROUP_TAGS = frozenset({"empty_nest_elderly", "living_alone_elderly", "disabled", "intellectual_disability"})


def _base_span(kind: TicketKind, priority: Priority | None, created_local: datetime,
               rules: ProjectRules) -> datetime | None:
    sla, calendar = rules.sla, rules.calendar
    if kind is TicketKind.REPAIR:
        if priority is Priority.EMERGENCY:
            return created_local + timedelta(minutes=sla.emergency_repair_onsite_minutes)
        return created_local + timedelta(hours=sla.general_repair_hours)
    if kind is TicketKind.COMPLAINT:
        if priority is Priority.MAJOR:
            return created_local + timedelta(hours=sla.major_complaint_hours)
        if priority is Priority.URGENT:
            return created_local + timedelta(hours=sla.urgent_complaint_hours)
        return calendar.add_working_days(created_local, sla.general_complaint_working_days)
    if kind is TicketKind.SUGGESTION:
        return calendar.add_working_days(created_local, sla.suggestion_reply_working_days)
    return None  # praise and answered enquiries carry no deadline


def compute_due_at(kind: TicketKind, priority: Priority | None, created_at: datetime,
                   rules: ProjectRules, resident_tags: Iterable[str] = ()) -> datetime | None:
    """Deadline as naive UTC. Special-group residents get a shorter deadline."""
    created_local = to_local(created_at, rules.timezone)
    due_local = _base_span(kind, priority, created_local, rules)
    if due_local is None:
        return None
    return to_utc_naive(_shorten_for(resident_tags, rules, created_local, due_local))


def in_special_group(resident_tags: Iterable[str] | None) -> bool:
    """空巢/独居老人, 残疾人, 智力障碍人员: their cases get priority everywhere."""
    return bool(SPECIAL_GROUP_TAGS.intersection(resident_tags or ()))


def _shorten_for(resident_tags: Iterable[str], rules: ProjectRules, start: datetime, end: datetime) -> datetime:
    if in_special_group(resident_tags) and rules.sla.special_group_factor < 1:
        return start + (end - start) * rules.sla.special_group_factor
    return end


def compute_first_feedback_due_at(kind: TicketKind, created_at: datetime, rules: ProjectRules) -> datetime | None:
    """Complaints: when the first investigation result is due back to the resident (0 hours: a
    project that does not use the first-feedback step)."""
    if kind is not TicketKind.COMPLAINT or rules.sla.complaint_first_feedback_hours <= 0:
        return None
    return created_at + timedelta(hours=rules.sla.complaint_first_feedback_hours)


def compute_final_due_at(kind: TicketKind, priority: Priority | None, created_at: datetime,
                         rules: ProjectRules) -> datetime | None:
    """The hard limit for complex general complaints (at most N working days); None otherwise."""
    if kind is not TicketKind.COMPLAINT or priority in (Priority.MAJOR, Priority.URGENT):
        return None
    created_local = to_local(created_at, rules.timezone)
    return to_utc_naive(rules.calendar.add_working_days(created_local, rules.sla.complaint_max_working_days))


def next_progress_update_at(created_at: datetime, previous: datetime | None, rules: ProjectRules) -> datetime:
    """When a long-running complaint's next progress update is due."""
    if previous is None:
        start, days = created_at, rules.sla.progress_update_after_working_days
    else:
        start, days = previous, rules.sla.progress_update_every_working_days
    return to_utc_naive(rules.calendar.add_working_days(to_local(start, rules.timezone), days))


def callback_due_at(resolved_at: datetime, rules: ProjectRules) -> datetime:
    """The latest moment the satisfaction callback may go out (within N hours of completion)."""
    return resolved_at + timedelta(hours=rules.sla.callback_within_hours)


def callback_send_at(resolved_at: datetime, rules: ProjectRules) -> datetime:
    """When to send the callback: the configured delay after completion, moved out of the night
    if that still keeps it inside the callback deadline."""
    follow = rules.follow_up
    send = resolved_at + timedelta(minutes=follow.callback_delay_minutes)
    return outside_quiet_hours(send, callback_due_at(resolved_at, rules), rules)


def outside_quiet_hours(moment: datetime, latest: datetime, rules: ProjectRules) -> datetime:
    """`moment`, or the end of the night it falls in when that is no later than `latest`."""
    follow = rules.follow_up
    local = to_local(moment, rules.timezone)
    if not follow.is_quiet(local.time()):
        return moment
    morning = local.replace(hour=follow.quiet_end.hour, minute=follow.quiet_end.minute, second=0, microsecond=0)
    if morning <= local:
        morning += timedelta(days=1)
    candidate = to_utc_naive(morning)
    # Better a message late in the evening than a missed callback deadline.
    return candidate if candidate <= latest else moment


def deadline_missed(ticket: Case, deadline: str) -> bool:
    """Whether the ticket's state at this moment fails the named deadline (due/final/callback)."""
    status = TicketStatus(ticket.status)
    if deadline == "callback":
        return status is TicketStatus.RESOLVED  # still waiting for its callback answer
    if deadline == "due" and ticket.priority == Priority.EMERGENCY.value:
        # The emergency deadline is about being on site: work started is in time.
        return status in NOT_STARTED
    return status in OPEN_STATUSES


def overdue_deadlines(ticket: Case, now: datetime) -> list[str]:
    """The deadlines this ticket has passed without meeting them, for staff views."""
    moments = {"due": ticket.due_at, "final": ticket.final_due_at, "callback": ticket.callback_due_at}
    return [name for name, moment in moments.items()
            if moment is not None and moment < now and deadline_missed(ticket, name)]
