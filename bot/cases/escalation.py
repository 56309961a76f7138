"""Which cases go to a person, and chasing the ones nobody has claimed.

Triggers (each a staff alert, which the staff bot posts as a card with 接单/回复/办结):
a resident asking for a person, an emergency repair, a major or urgent complaint, a group
complaint (群诉), any repair or complaint of a special-group resident, a dissatisfied
callback (bot.cases.surveys), a resident's request for a review (复议, bot.cases.reviews)
and an SLA breach (the worker). Major and group cases also go to
the project head. A card nobody claims is announced again and, past a limit, sent to the
project head; special-group residents get both sooner.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases import alerts, follow_ups
from bot.cases.follow_ups import FIRST_FEEDBACK
from bot.cases.opening import insert_case
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.lifecycle import OPEN_STATUSES
from bot.core.replies import format_local
from bot.core.rooms import parse_room
from bot.core.rules import ProjectRules
from bot.core.sla import deadline_missed, in_special_group
from bot.db import queue
from bot.db.models import Survey, Ticket, TicketEvent
from bot.db.records import SYSTEM, add_event

HUMAN_REQUEST = "human_request"
EMERGENCY_REPAIR = "emergency_repair"
MAJOR_COMPLAINT = "major_complaint"
URGENT_COMPLAINT = "urgent_complaint"
GROUP_COMPLAINT = "group_complaint"
SPECIAL_GROUP = "special_group"
UNCLAIMED = "unclaimed"
UNCLAIMED_HEAD = "unclaimed_head"
REPAIR_CHASED = "repair_chased"  # the resident complained that their repair is slow or was never done
REVIEW_REQUEST = "review_request"  # a resident asks for a finished case to be reviewed (复议)

# Who hears of an escalation besides the project's staff group: its head, and for major and
# group complaints also the company customer-service department (the residents are told so).
HEAD_REASONS = frozenset({UNCLAIMED_HEAD})
COMPANY_REASONS = frozenset({MAJOR_COMPLAINT, GROUP_COMPLAINT})
STAFF, HEAD, COMPANY = "staff", "head", "company"


def audience_for(reason: str) -> str:
    return COMPANY if reason in COMPANY_REASONS else HEAD if reason in HEAD_REASONS else STAFF

REASON_LABELS_ZH = {
    HUMAN_REQUEST: "居民请求人工",
    REVIEW_REQUEST: "居民申请复议",
    REPAIR_CHASED: "住户投诉维修拖延",
    EMERGENCY_REPAIR: "紧急报修",
    MAJOR_COMPLAINT: "重大投诉",
    URGENT_COMPLAINT: "紧急投诉",
    GROUP_COMPLAINT: "群诉",
    SPECIAL_GROUP: "特殊群体住户",
    UNCLAIMED: "仍无人接单",
    UNCLAIMED_HEAD: "超时无人接单",
    alerts.SLA_BREACH: "超出时限",
    alerts.DISSATISFIED: "回访不满意",
    alerts.CALLBACK_MISSED: "回访超时",
    alerts.UNREACHABLE: "无法联系居民",
    alerts.JOB_PARKED: "系统任务失败",
    alerts.SURVEY_UNCLEAR: "回访需人工确认",
}


def is_special_group(ticket: Ticket) -> bool:
    return ticket.resident is not None and in_special_group(ticket.resident.tags)


def unclaimed_delay(rules: ProjectRules, ticket: Ticket, minutes: int) -> timedelta:
    # The same priority factor as their deadlines (sla.special_group_factor).
    factor = rules.sla.special_group_factor if is_special_group(ticket) else 1.0
    return timedelta(minutes=minutes * factor)


def escalate(session: Session, rules: ProjectRules, ticket: Ticket, reason: str, detail: str,
             now: datetime) -> bool:
    """Put the case in front of staff (once per reason) and start chasing a claim."""
    created = alerts.raise_alert(session, reason=reason, ticket=ticket, key=f"{reason}:{ticket.id}", detail=detail,
                                 audience=audience_for(reason), now=now)
    if created and ticket.assignee_id is None:
        first = now + unclaimed_delay(rules, ticket, rules.escalation.unclaimed_reannounce_minutes)
        queue.enqueue(session, kind=queue.UNCLAIMED_CHECK, project=ticket.project, due_at=first,
                      key=f"unclaimed:{ticket.id}:1", now=now, ticket_id=ticket.id,
                      payload={"sequence": 1, "since": now.isoformat()},
                      max_attempts=rules.follow_up.job_max_attempts)
    return created


def on_case_opened(session: Session, rules: ProjectRules, ticket: Ticket, now: datetime) -> None:
    if ticket.resident is None:
        return  # a group case, escalated by whoever made it
    kind, priority = TicketKind(ticket.kind), ticket.priority
    summary = ticket.description[:60]
    if kind is TicketKind.REPAIR and priority == Priority.EMERGENCY.value:
        escalate(session, rules, ticket, EMERGENCY_REPAIR, f"emergency repair: {summary}", now)
    if kind is TicketKind.COMPLAINT:
        if priority == Priority.MAJOR.value:
            escalate(session, rules, ticket, MAJOR_COMPLAINT, f"major complaint: {summary}", now)
        elif priority == Priority.URGENT.value:
            escalate(session, rules, ticket, URGENT_COMPLAINT, f"urgent complaint: {summary}", now)
        group_complaints(session, rules, ticket, now)
    if kind in (TicketKind.REPAIR, TicketKind.COMPLAINT) and is_special_group(ticket):
        escalate(session, rules, ticket, SPECIAL_GROUP, f"special-group resident: {summary}", now)


def chase_unclaimed(session: Session, rules: ProjectRules, ticket: Ticket, *, sequence: int, since: datetime,
                    now: datetime) -> None:
    """An escalated case still nobody's: announce it again, and past the limit tell the project head."""
    if ticket.assignee_id is not None or TicketStatus(ticket.status) not in OPEN_STATUSES:
        return
    waited = int((now - since).total_seconds() // 60)
    head_after = unclaimed_delay(rules, ticket, rules.escalation.unclaimed_head_minutes)
    if now - since >= head_after:
        escalate(session, rules, ticket, UNCLAIMED_HEAD, f"{ticket.number} unclaimed for {waited} min", now)
        return
    alerts.raise_alert(session, reason=UNCLAIMED, ticket=ticket, key=f"{UNCLAIMED}:{ticket.id}:{sequence}", now=now,
                       detail=f"{ticket.number} still unclaimed after {waited} min")
    step = unclaimed_delay(rules, ticket, rules.escalation.unclaimed_reannounce_minutes)
    queue.enqueue(session, kind=queue.UNCLAIMED_CHECK, project=ticket.project,
                  due_at=min(now + step, since + head_after), key=f"unclaimed:{ticket.id}:{sequence + 1}", now=now,
                  ticket_id=ticket.id,
                  payload={"sequence": sequence + 1, "since": since.isoformat()},
                  max_attempts=rules.follow_up.job_max_attempts)


def check_deadline(session: Session, rules: ProjectRules, ticket: Ticket, *, deadline: str, due_at: datetime,
                   resolved_at: str | None, now: datetime) -> bool:
    """At a deadline (due / final / first feedback / callback): alert staff if the case has not
    met it. True when this check found the breach (a new alert; a repeated check finds none)."""
    local_due = format_local(due_at, rules)
    if deadline == "callback":
        sent = session.execute(select(Survey.id).where(
            Survey.ticket_id == ticket.id, Survey.campaign == f"resolved:{resolved_at}",
            Survey.sent_at.is_not(None))).first()
        if sent is None and deadline_missed(ticket, deadline):
            return alerts.raise_alert(session, reason=alerts.CALLBACK_MISSED, ticket=ticket,
                                      key=f"sla:{ticket.id}:callback:{resolved_at}", now=now,
                                      detail=f"no satisfaction callback for {ticket.number} by {local_due}; "
                                             "please call the resident")
        return False
    if deadline == FIRST_FEEDBACK:
        told = session.execute(select(TicketEvent.id).where(TicketEvent.ticket_id == ticket.id,
                                                            TicketEvent.action == "staff_reply")).first()
        if ticket.first_feedback_due_at == due_at and told is None and TicketStatus(ticket.status) in OPEN_STATUSES:
            return alerts.raise_alert(session, reason=alerts.SLA_BREACH, ticket=ticket, now=now,
                                      key=f"sla:{ticket.id}:first_feedback:{due_at.isoformat()}",
                                      detail=f"{ticket.number}: no first feedback to the resident by {local_due}")
        return False
    current = ticket.due_at if deadline == "due" else ticket.final_due_at
    if current != due_at or not deadline_missed(ticket, deadline):
        return False  # met, or the deadline moved (reopened) and has its own check
    what = {"due": "deadline", "final": "hard limit"}.get(deadline, deadline)
    return alerts.raise_alert(session, reason=alerts.SLA_BREACH, ticket=ticket,
                              key=f"sla:{ticket.id}:{deadline}:{due_at.isoformat()}", now=now,
                              detail=f"{ticket.number} ({ticket.kind}, {ticket.priority or '-'}) missed its {what} "
                                     f"{local_due}; status {ticket.status}")


# --- 群诉 -------------------------------------------------------------------------------


def complaint_topic(text: str, rules: ProjectRules) -> str | None:
    for topic, words in rules.escalation.complaint_topics:
        if any(word in text for word in words):
            return topic
    return None


def complaint_place(ticket: Ticket) -> str | None:
    """Where it happens, coarse enough that neighbours' complaints meet: the building, or the place named."""
    if not ticket.room:
        return None
    parsed = parse_room(ticket.room)
    if parsed is not None:
        return parsed.building
    return re.sub(r"[\s，。,.]+", "", ticket.room)[:32] or None


def open_group_case(session: Session, rules: ProjectRules, *, topic: str, place: str, members: Sequence[Ticket],
                    now: datetime) -> Ticket:
    """群诉: one major case for the project head, the members' complaints linked to it."""
    households = len({t.resident_id for t in members})
    description = (f"群诉：{place}的{topic}问题，{rules.escalation.group_complaint_window_hours} 小时内"
                   f"{households} 户投诉（{'、'.join(t.number for t in members)}）")
    group = insert_case(session, rules, kind=TicketKind.COMPLAINT, priority=Priority.MAJOR, resident=None,
                        description=description, channel=SYSTEM, room=place, now=now)
    follow_ups.schedule_deadline_checks(session, rules, group, now)
    follow_ups.schedule_progress_updates(session, rules, group, now)
    group.topic = topic
    for member in members:
        member.parent_id = group.id
        add_event(session, member, actor=SYSTEM, channel=SYSTEM, action="grouped", content=group.number,
                  result=f"part of group case {group.number}", now=now)
    return group


def group_complaints(session: Session, rules: ProjectRules, ticket: Ticket, now: datetime) -> Ticket | None:
    """Join the complaint to an open group case, or open one when enough have come in."""
    topic = complaint_topic(f"{ticket.description} {ticket.demand or ''}", rules)
    place = complaint_place(ticket)
    ticket.topic = topic
    if topic is None or place is None:
        return None
    since = now - timedelta(hours=rules.escalation.group_complaint_window_hours)
    candidates: Sequence[Ticket] = session.execute(
        # Neighbours are of one project: the same building name in two projects is two places.
        select(Ticket).where(Ticket.project == ticket.project, Ticket.kind == TicketKind.COMPLAINT.value,
                             Ticket.topic == topic,
                             Ticket.created_at >= since, Ticket.id != ticket.id,
                             Ticket.status != TicketStatus.CANCELLED.value)
    ).scalars().all()
    group = next((t for t in candidates if t.resident_id is None and t.room == place
                  and TicketStatus(t.status) in OPEN_STATUSES), None)
    if group is not None:
        ticket.parent_id = group.id
        add_event(session, group, actor=SYSTEM, channel=SYSTEM, action="grouped", content=ticket.number,
                  result=f"{len([t for t in candidates if t.parent_id == group.id]) + 1} complaints", now=now)
        return group
    members = [t for t in candidates if t.resident_id is not None and t.parent_id is None
               and complaint_place(t) == place] + [ticket]
    residents = {t.resident_id for t in members}
    if len(residents) < rules.escalation.group_complaint_count:
        return None
    group = open_group_case(session, rules, topic=topic, place=place, members=members, now=now)
    numbers = "、".join(t.number for t in members)
    escalate(session, rules, group, GROUP_COMPLAINT,
             f"group complaint: {len(residents)} households about {topic} at {place} within "
             f"{rules.escalation.group_complaint_window_hours} h ({numbers})", now)
    return group
