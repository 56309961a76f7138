"""The console's work queue: the open cases of the projects a staff member serves, most urgent
deadline first, filtered and searched, a page at a time (keyset pagination: as fast on page 500
as on page 1, and stable while new cases arrive)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from bot.core.lifecycle import OPEN_STATUS_VALUES
from bot.core.phones import normalise_phone
from bot.db.models import Resident, Ticket

# Cases without a deadline (suggestions, praise) sort after every dated one.
NO_DEADLINE = datetime(9999, 12, 31)
DUE_SOON = timedelta(hours=4)
PAGE_SIZE = 50


class QueueView(str, enum.Enum):
    OPEN = "open"  # every open case
    UNASSIGNED = "unassigned"  # nobody holds it
    MINE = "mine"
    DUE_SOON = "due_soon"  # within DUE_SOON
    OVERDUE = "overdue"


@dataclass(frozen=True)
class QueueQuery:
    projects: frozenset[str]
    view: QueueView = QueueView.OPEN
    holder_id: str = ""  # for MINE
    project: str | None = None
    kind: str | None = None
    priority: str | None = None
    status: str | None = None
    building: str | None = None  # 3栋: the room starts with it
    search: str | None = None  # a case number, a room, or a phone
    after: tuple[datetime, int] | None = None  # the last row of the previous page
    limit: int = PAGE_SIZE


@dataclass(frozen=True)
class QueuePage:
    tickets: Sequence[Ticket]
    next_after: tuple[datetime, int] | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _sort_key() -> ColumnElement[datetime]:
    return func.coalesce(Ticket.due_at, NO_DEADLINE)


def _filters(query: QueueQuery, now: datetime) -> list[ColumnElement[bool]]:
    projects = [query.project] if query.project else sorted(query.projects)
    where: list[ColumnElement[bool]] = [Ticket.project.in_(projects),
                           Ticket.status == query.status if query.status else Ticket.status.in_(OPEN_STATUS_VALUES)]
    if query.view is QueueView.UNASSIGNED:
        where.append(Ticket.assignee_id.is_(None))
    elif query.view is QueueView.MINE:
        where.append(Ticket.assignee_id == query.holder_id)
    elif query.view is QueueView.DUE_SOON:
        where.append(and_(Ticket.due_at >= now, Ticket.due_at < now + DUE_SOON))
    elif query.view is QueueView.OVERDUE:
        where.append(Ticket.due_at < now)
    if query.kind:
        where.append(Ticket.kind == query.kind)
    if query.priority:
        where.append(Ticket.priority == query.priority)
    if query.building:
        where.append(Ticket.room.startswith(query.building.strip()))
    if query.search and query.search.strip():
        text = query.search.strip()
        phone = normalise_phone(text)
        matches = [Ticket.number == text.upper(), Ticket.room.contains(text)]
        if phone:
            matches.append(Ticket.resident_id.in_(select(Resident.id).where(Resident.phone == phone)))
        where.append(or_(*matches))
    return where


def work_queue(session: Session, query: QueueQuery, now: datetime) -> QueuePage:
    where = _filters(query, now)
    stmt = select(Ticket).options(selectinload(Ticket.resident)).where(*where)
    if query.after is not None:
        due, ticket_id = query.after
        stmt = stmt.where(or_(_sort_key() > due, and_(_sort_key() == due, Ticket.id > ticket_id)))
    rows = session.execute(stmt.order_by(_sort_key(), Ticket.id).limit(query.limit + 1)).scalars().all()
    page, more = rows[:query.limit], len(rows) > query.limit
    last = page[-1] if page else None
    next_after = (last.due_at or NO_DEADLINE, last.id) if more and last is not None else None
    return QueuePage(page, next_after)


def queue_counts(session: Session, query: QueueQuery, now: datetime) -> dict[str, int]:
    """How many cases each view holds (the tabs), with the same filters."""
    counts = {}
    for view in QueueView:
        where = _filters(QueueQuery(**{**query.__dict__, "view": view, "after": None}), now)
        counts[view.value] = session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0
    return counts
