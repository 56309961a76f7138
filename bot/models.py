"""Database tables of the ticket store.

Times are stored as naive UTC datetimes (SQLite keeps no zone); `bot.clock` converts
them to the project's local time for residents and ticket numbers.
"""
from __future__ import annotations

import enum

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()


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


class Resident(Base):
    """一户一档: one record per household contact, keyed by WeChat openid when known."""

    __tablename__ = "residents"

    id = Column(Integer, primary_key=True)
    openid = Column(String(64), unique=True, nullable=True)
    name = Column(String(64), nullable=True)
    phone = Column(String(32), nullable=True)
    room = Column(String(64), nullable=True)
    # Customer classes (个人/企业/政府机关; 住宅/非住宅; 空关/装修/入住).
    customer_type = Column(String(16), nullable=False, default="individual")
    property_use = Column(String(16), nullable=False, default="residential")
    occupancy = Column(String(16), nullable=False, default="occupied")
    # Special groups (空巢老人, 独居老人, 残疾人, 智力障碍人员) as a JSON list of tags.
    tags = Column(JSON, nullable=False, default=list)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)

    tickets = relationship("Ticket", back_populates="resident")


class Ticket(Base):
    __tablename__ = "tickets"

    id = Column(Integer, primary_key=True)
    number = Column(String(32), nullable=False, unique=True)
    kind = Column(String(16), nullable=False)
    status = Column(String(16), nullable=False)
    priority = Column(String(16), nullable=True)
    room = Column(String(64), nullable=True)
    description = Column(Text, nullable=False)
    # What the resident wants (诉求), for complaints.
    demand = Column(Text, nullable=True)
    # Preferred visit time as the resident said it, for repairs.
    visit_time = Column(String(64), nullable=True)
    channel = Column(String(16), nullable=False)
    resident_id = Column(Integer, ForeignKey("residents.id"), nullable=True)
    assignee = Column(String(64), nullable=True)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    due_at = Column(DateTime, nullable=True)
    resolved_at = Column(DateTime, nullable=True)
    closed_at = Column(DateTime, nullable=True)

    resident = relationship("Resident", back_populates="tickets")
    events = relationship(
        "TicketEvent", back_populates="ticket", order_by="TicketEvent.id", cascade="save-update, merge"
    )

    __table_args__ = (
        Index("ix_tickets_resident_status", "resident_id", "status"),
        Index("ix_tickets_kind_status", "kind", "status"),
    )


class TicketEvent(Base):
    """Append-only communication record: time, actor, channel, content, result."""

    __tablename__ = "ticket_events"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False, index=True)
    at = Column(DateTime, nullable=False)
    actor = Column(String(64), nullable=False)
    channel = Column(String(16), nullable=False)
    action = Column(String(32), nullable=False)
    from_status = Column(String(16), nullable=True)
    to_status = Column(String(16), nullable=True)
    content = Column(Text, nullable=False, default="")
    result = Column(Text, nullable=False, default="")

    ticket = relationship("Ticket", back_populates="events")


class TicketCounter(Base):
    """Last sequence number handed out per ticket prefix and local day."""

    __tablename__ = "ticket_counters"

    prefix = Column(String(4), primary_key=True)
    day = Column(Date, primary_key=True)
    last_value = Column(Integer, nullable=False, default=0)
