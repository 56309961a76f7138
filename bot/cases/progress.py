"""查询进度: the resident's open cases and those finished lately, each with who holds it.

Who holds a case is told by their role ("维修师傅", "客服人员"), not their name, unless the
project says otherwise (`self_service.progress_shows_holder_name`). The holder is the staff
member behind `ticket.assignee_id` ("staff:<id>").
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from bot.core.access import ROLE_LABELS, Role
from bot.core.kinds import TicketKind, TicketStatus
from bot.core.lifecycle import OPEN_STATUS_VALUES
from bot.core.rules import ProjectRules
from bot.db.models import Resident, StaffMember, Ticket

FINISHED_STATUS_VALUES: tuple[str, ...] = (TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value,
                                           TicketStatus.CANCELLED.value)
STAFF_PREFIX = "staff:"


@dataclass(frozen=True)
class Holder:
    """Who holds a case: their role as the resident hears of it (None: not known), and their name."""

    role: Role | None
    name: str


@dataclass(frozen=True)
class ListedProgress:
    ticket: Ticket
    holder: Holder | None  # None: nobody holds it
    finished_at: datetime | None = None  # for a finished case: when it was finished


@dataclass(frozen=True)
class Progress:
    open: Sequence[ListedProgress]
    recent: Sequence[ListedProgress]  # finished within `days`, the latest first
    days: int

    @property
    def total(self) -> int:
        return len(self.open) + len(self.recent)


def _finished_at() -> ColumnElement[datetime]:
    # Closed: when it was closed; done and awaiting the callback: when it was done; cancelled: its last change.
    return func.coalesce(Ticket.closed_at, Ticket.resolved_at, Ticket.updated_at)


def _staff_id(assignee_id: str | None) -> int | None:
    if not assignee_id or not assignee_id.startswith(STAFF_PREFIX):
        return None
    number = assignee_id[len(STAFF_PREFIX):]
    return int(number) if number.isdigit() else None


# Which of a holder's roles the resident hears of: the trade for a repair, else the first of these.
_ROLE_ORDER: tuple[Role, ...] = tuple(ROLE_LABELS)


def holder_role(roles: Iterable[str], kind: str) -> Role | None:
    known = {role.value: role for role in Role}
    held = [known[value] for value in roles if value in known]
    if kind == TicketKind.REPAIR.value and Role.TECHNICIAN in held:
        return Role.TECHNICIAN
    return next((role for role in _ROLE_ORDER if role in held), None)


def _holders(session: Session, tickets: Iterable[Ticket]) -> dict[int, Holder]:
    """Ticket id → its holder, for the tickets someone holds (one query for their staff members)."""
    held = [t for t in tickets if t.assignee_id]
    ids = {i for i in (_staff_id(t.assignee_id) for t in held) if i is not None}
    members = {m.id: m for m in session.scalars(select(StaffMember).where(StaffMember.id.in_(ids)))} if ids else {}
    result: dict[int, Holder] = {}
    for ticket in held:
        member = members.get(_staff_id(ticket.assignee_id) or -1)
        role = holder_role(member.roles or [], ticket.kind) if member is not None else None
        result[ticket.id] = Holder(role=role, name=(ticket.assignee or (member.name if member else "")).strip())
    return result


def resident_progress(session: Session, rules: ProjectRules, openid: str, now: datetime) -> Progress:
    """The resident's open cases (newest first) and those finished within
    `self_service.progress_recent_days` (latest finished first)."""
    days = rules.self_service.progress_recent_days
    mine = select(Ticket).join(Resident).where(Resident.openid == openid)
    open_cases = session.execute(mine.where(Ticket.status.in_(OPEN_STATUS_VALUES))
                                 .order_by(Ticket.created_at.desc(), Ticket.id.desc())).scalars().all()
    finished_at = _finished_at()
    recent = session.execute(
        mine.add_columns(finished_at).where(Ticket.status.in_(FINISHED_STATUS_VALUES),
                                            finished_at >= now - timedelta(days=days))
        .order_by(finished_at.desc(), Ticket.id.desc())
    ).all() if days > 0 else []
    holders = _holders(session, [*open_cases, *(row[0] for row in recent)])
    return Progress(open=[ListedProgress(t, holders.get(t.id)) for t in open_cases],
                    recent=[ListedProgress(t, holders.get(t.id), at) for t, at in recent],
                    days=days)
