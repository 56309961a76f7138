"""Database tables of the ticket store.

Times are stored as naive UTC datetimes (SQLite keeps no zone); `bot.core.clock` converts
them to the project's local time for residents and ticket numbers.
"""
from __future__ import annotations

import enum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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

from bot.core.kinds import Priority, TicketKind, TicketStatus  # noqa: F401 - columns hold their values

Base = declarative_base()


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
    # WeChat relationship: when the openid was bound to this household, follow state,
    # and the last inbound message (customer-service messages are allowed for 48 h after it).
    bound_at = Column(DateTime, nullable=True)
    subscribed = Column(Boolean, nullable=False, default=False)
    unsubscribed_at = Column(DateTime, nullable=True)
    last_message_at = Column(DateTime, nullable=True)

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
    # Who holds the case (首接负责制): display name and stable id (e.g. tg:12345, api:wang).
    assignee = Column(String(64), nullable=True)
    assignee_id = Column(String(64), nullable=True)
    claimed_at = Column(DateTime, nullable=True)
    # Group complaints (群诉): members point at the group case; topic is the problem category.
    parent_id = Column(Integer, ForeignKey("tickets.id"), nullable=True)
    topic = Column(String(32), nullable=True)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    # Deadlines (naive UTC): the tier's deadline, the hard limit for complex complaints,
    # and the latest moment for the satisfaction callback once the work is done.
    due_at = Column(DateTime, nullable=True)
    final_due_at = Column(DateTime, nullable=True)
    callback_due_at = Column(DateTime, nullable=True)
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


class InboundStatus(str, enum.Enum):
    RECEIVED = "received"  # stored, not yet processed
    ANSWERED = "answered"  # processed; the answer went out (passively or pushed)
    WAITING = "waiting"  # the assistant was unreachable; retried in the background
    FAILED = "failed"  # gave up (too old to answer within WeChat's window)
    IGNORED = "ignored"  # nothing to answer (unsubscribe, ...)


class InboundMessage(Base):
    """Every message and event WeChat delivered, stored before it is processed."""

    __tablename__ = "inbound_messages"

    id = Column(Integer, primary_key=True)
    # MsgId for messages; FromUserName+CreateTime+Event for events (they have no MsgId).
    dedupe_key = Column(String(160), nullable=False, unique=True)
    openid = Column(String(64), nullable=False, index=True)
    msg_type = Column(String(32), nullable=False)
    event = Column(String(32), nullable=True)
    content = Column(Text, nullable=False, default="")
    media = Column(JSON, nullable=True)
    received_at = Column(DateTime, nullable=False)
    status = Column(String(16), nullable=False)
    reply = Column(Text, nullable=True)
    delivery = Column(String(16), nullable=True)  # passive / custom / none
    attempts = Column(Integer, nullable=False, default=0)
    processed_at = Column(DateTime, nullable=True)
    error = Column(Text, nullable=True)


class OutboundMessage(Base):
    """Customer-service messages pushed to residents (客服消息): the record of each contact."""

    __tablename__ = "outbound_messages"

    id = Column(Integer, primary_key=True)
    openid = Column(String(64), nullable=False, index=True)
    inbound_id = Column(Integer, ForeignKey("inbound_messages.id"), nullable=True)
    content = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False)
    status = Column(String(16), nullable=False)  # sent / failed
    error = Column(Text, nullable=True)
    # Scheduled notices: which case, how (custom / template), and a key that makes a
    # retried job skip a message that already went out.
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=True)
    via = Column(String(16), nullable=True)
    idempotency_key = Column(String(160), nullable=True, unique=True)


class AccessToken(Base):
    """WeChat API access token shared by every gateway worker (one row per app)."""

    __tablename__ = "wechat_access_tokens"

    app_id = Column(String(64), primary_key=True)
    token = Column(String(512), nullable=True)
    expires_at = Column(DateTime, nullable=True)
    # A worker that is fetching a new token holds this lease; the others wait for it.
    refreshing_until = Column(DateTime, nullable=True)
    updated_at = Column(DateTime, nullable=False)


class JobStatus(str, enum.Enum):
    PENDING = "pending"  # waiting for its due time (or for a retry)
    RUNNING = "running"  # claimed by a worker until `locked_until`
    DONE = "done"
    PARKED = "parked"  # gave up after max attempts; staff see it and may retry
    CANCELLED = "cancelled"


class Job(Base):
    """A scheduled piece of work: durable, claimed by one worker at a time, retried with backoff."""

    __tablename__ = "jobs"

    id = Column(Integer, primary_key=True)
    kind = Column(String(32), nullable=False)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=True, index=True)
    survey_id = Column(Integer, ForeignKey("surveys.id"), nullable=True)
    payload = Column(JSON, nullable=False, default=dict)
    due_at = Column(DateTime, nullable=False)
    status = Column(String(16), nullable=False)
    attempts = Column(Integer, nullable=False, default=0)
    max_attempts = Column(Integer, nullable=False)
    last_error = Column(Text, nullable=True)
    # One job per purpose: scheduling the same thing twice is a no-op.
    idempotency_key = Column(String(160), nullable=False, unique=True)
    locked_by = Column(String(64), nullable=True)
    # A worker that dies mid-job leaves this in the past; the job is then claimed again.
    locked_until = Column(DateTime, nullable=True)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    finished_at = Column(DateTime, nullable=True)

    __table_args__ = (Index("ix_jobs_status_due", "status", "due_at"),)


class SurveyStatus(str, enum.Enum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    REMINDED = "reminded"
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"


class Survey(Base):
    """A satisfaction survey: the callback after one case, or one resident's annual survey."""

    __tablename__ = "surveys"

    id = Column(Integer, primary_key=True)
    kind = Column(String(16), nullable=False)  # callback / annual
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=True, index=True)
    resident_id = Column(Integer, ForeignKey("residents.id"), nullable=False, index=True)
    campaign = Column(String(64), nullable=True)
    dimensions = Column(JSON, nullable=False, default=list)
    status = Column(String(16), nullable=False)
    created_at = Column(DateTime, nullable=False)
    sent_at = Column(DateTime, nullable=True)
    reminded_at = Column(DateTime, nullable=True)
    answered_at = Column(DateTime, nullable=True)
    # satisfied / neutral / dissatisfied / unclear
    verdict = Column(String(16), nullable=True)
    overall_score = Column(Integer, nullable=True)
    comment = Column(Text, nullable=True)

    scores = relationship("SurveyScore", order_by="SurveyScore.id", cascade="save-update, merge")
    ticket = relationship("Ticket")
    resident = relationship("Resident")


class SurveyScore(Base):
    __tablename__ = "survey_scores"

    id = Column(Integer, primary_key=True)
    survey_id = Column(Integer, ForeignKey("surveys.id"), nullable=False, index=True)
    dimension = Column(String(32), nullable=False)
    score = Column(Integer, nullable=False)


class StaffAlert(Base):
    """Something staff must look at now (SLA breach, dissatisfied resident, parked job...).

    The staff bot posts these; without it they wait in the staff API's queue.
    """

    __tablename__ = "staff_alerts"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=True, index=True)
    reason = Column(String(32), nullable=False)
    detail = Column(Text, nullable=False, default="")
    dedupe_key = Column(String(160), nullable=False, unique=True)
    # "staff" (the staff group) or "head" (also the project head: major and group cases).
    audience = Column(String(16), nullable=False, default="staff")
    created_at = Column(DateTime, nullable=False)
    notified_at = Column(DateTime, nullable=True)
    acknowledged_at = Column(DateTime, nullable=True)
    acknowledged_by = Column(String(64), nullable=True)

    ticket = relationship("Ticket")


class HumanSession(Base):
    """A resident talking to a staff member: their messages go to that person, not to the assistant."""

    __tablename__ = "human_sessions"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False)
    openid = Column(String(64), nullable=False, index=True)
    staff_id = Column(String(64), nullable=False)
    staff_name = Column(String(64), nullable=False)
    started_at = Column(DateTime, nullable=False)
    ended_at = Column(DateTime, nullable=True)
    ended_by = Column(String(64), nullable=True)

    ticket = relationship("Ticket")


class StaffOutbox(Base):
    """Messages for staff (relayed resident messages, notices), sent by the staff bot."""

    __tablename__ = "staff_outbox"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=True)
    audience = Column(String(80), nullable=False)  # staff / head / staff:<id>
    text = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False)
    sent_at = Column(DateTime, nullable=True, index=True)
    attempts = Column(Integer, nullable=False, default=0)
    error = Column(Text, nullable=True)

    ticket = relationship("Ticket")


class TelegramLink(Base):
    """Which case a Telegram message is about, so replies to it reach the right resident."""

    __tablename__ = "telegram_links"

    chat_id = Column(BigInteger, primary_key=True)
    message_id = Column(BigInteger, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id"), nullable=False)
    purpose = Column(String(16), nullable=False)  # card / relay / ask_reply / ask_resolve
    staff_id = Column(String(64), nullable=True)
    created_at = Column(DateTime, nullable=False)

    ticket = relationship("Ticket")
