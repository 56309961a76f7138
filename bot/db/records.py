"""Rows every use case writes: the case record's events and the resident they concern.

Ticket events are the case's history (who did what, when, through which channel); they
are append-only, enforced here for every session.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.db.models import Resident, Ticket, TicketEvent

Row = TypeVar("Row")

# Who acted, when it was not a staff member (`staff:<name>`).
RESIDENT = "resident"
ASSISTANT = "assistant"
SYSTEM = "system"


@sa_event.listens_for(Session, "before_flush")
def _events_are_append_only(session: Session, _context, _instances) -> None:  # type: ignore[no-untyped-def]
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, TicketEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError("ticket events are append-only; add a new event instead")


def current_contact(session: Session, openid: str) -> Resident | None:
    """The resident's record in the project they chose last (a QR code, a case's room), else
    their most recent one: the owner of flats in two projects has a record in each."""
    return session.execute(
        select(Resident).where(Resident.openid == openid)
        .order_by(Resident.selected_at.desc().nulls_last(), Resident.bound_at.desc().nulls_last(), Resident.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def find_or_create_resident(session: Session, openid: str, *, project: str, room: str | None = None,
                            now: datetime | None = None) -> Resident:
    """The resident's record in `project`, created on first contact there."""
    now = now or utcnow()
    resident = session.execute(
        select(Resident).where(Resident.openid == openid, Resident.project == project)
    ).scalar_one_or_none()
    if resident is None:
        resident = Resident(project=project, openid=openid, room=room, tags=[], created_at=now, updated_at=now,
                            customer_type="individual", property_use="residential", occupancy="occupied")
        session.add(resident)
        session.flush()
    elif room and not resident.room:
        resident.room = room
        resident.updated_at = now
    return resident


def add_event(session: Session, ticket: Ticket, *, actor: str, channel: str, action: str,
              content: str = "", result: str = "", from_status: str | None = None,
              to_status: str | None = None, now: datetime | None = None) -> TicketEvent:
    record = TicketEvent(ticket=ticket, at=now or utcnow(), actor=actor, channel=channel, action=action,
                         from_status=from_status, to_status=to_status, content=content, result=result)
    session.add(record)
    return record


def require(session: Session, model: type[Row], key: Any) -> Row:
    """The row with this primary key; a row that must exist and does not is a LookupError."""
    row = session.get(model, key)
    if row is None:
        raise LookupError(f"{model.__name__} {key!r} not found")
    return row
