"""Database tables of the ticket store.

Times are stored as naive UTC datetimes (SQLite keeps no zone); `bot.core.clock` converts
them to the project's local time for residents and ticket numbers.
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.core.kinds import Priority, TicketKind, TicketStatus  # noqa: F401 - columns hold their values


def _partial_index(name: str, columns: list[str], where: str, include: list[str] | None = None) -> Index:
    """An index of the rows `where` holds (SQLite and PostgreSQL), carrying `include` on PostgreSQL."""
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where),
                 postgresql_include=include or [])


class Base(DeclarativeBase):
    pass


PROJECT_CODE_LENGTH = 32


def project_column() -> Mapped[str]:
    """The project (小区) a row belongs to: a code of the company's project registry."""
    return mapped_column(String(PROJECT_CODE_LENGTH), nullable=False, index=True)


class Resident(Base):
    """一户一档: one record per household contact and project, keyed by WeChat openid when known.

    The owner of two flats in two projects has one openid and two records; `selected_at`
    says which one the resident chose last (a project's QR code, the room of a case)."""

    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = project_column()
    openid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    selected_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    room: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Customer classes (个人/企业/政府机关; 住宅/非住宅; 空关/装修/入住).
    customer_type: Mapped[str] = mapped_column(String(16), nullable=False, default="individual")
    property_use: Mapped[str] = mapped_column(String(16), nullable=False, default="residential")
    occupancy: Mapped[str] = mapped_column(String(16), nullable=False, default="occupied")
    # Special groups (空巢老人, 独居老人, 残疾人, 智力障碍人员) as a JSON list of tags.
    tags: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    # WeChat relationship: when the openid was bound to this household, follow state,
    # and the last inbound message (customer-service messages are allowed for 48 h after it).
    bound_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    tickets: Mapped[list["Ticket"]] = relationship("Ticket", back_populates="resident")

    __table_args__ = (UniqueConstraint("project", "openid", name="uq_residents_project_openid"),)


class ResidentEvent(Base):
    """The household file's own record (一户一档), apart from its cases: a phone call or a walk-in
    staff noted, a correction of the resident's details (who changed what). Append-only."""

    __tablename__ = "resident_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(Integer, ForeignKey("residents.id"), nullable=False, index=True)
    project: Mapped[str] = project_column()
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # phone / walk_in / visit / console
    action: Mapped[str] = mapped_column(String(32), nullable=False)  # contact / corrected
    content: Mapped[str] = mapped_column(Text, nullable=False, default="")


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Unique company-wide: the counters are shared by every project.
    number: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    project: Mapped[str] = project_column()
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    priority: Mapped[str | None] = mapped_column(String(16), nullable=True)
    room: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    # What the resident wants (诉求), for complaints.
    demand: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Preferred visit time as the resident said it, for repairs.
    visit_time: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    resident_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("residents.id"), nullable=True)
    # Who holds the case (首接负责制): display name and stable id (e.g. tg:12345, api:wang).
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assignee_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Group complaints (群诉): members point at the group case; topic is the problem category.
    parent_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("tickets.id"), nullable=True)
    topic: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    # Deadlines (naive UTC): the tier's deadline, the hard limit for complex complaints,
    # and the latest moment for the satisfaction callback once the work is done.
    due_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    final_due_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    callback_due_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Complaints: when the first investigation result must reach the resident (a staff reply).
    first_feedback_due_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    resident: Mapped["Resident | None"] = relationship("Resident", back_populates="tickets")
    events: Mapped[list["TicketEvent"]] = relationship(
        "TicketEvent", back_populates="ticket", order_by="TicketEvent.id", cascade="save-update, merge"
    )

    __table_args__ = (
        Index("ix_tickets_resident_status", "resident_id", "status"),
        Index("ix_tickets_kind_status", "kind", "status"),
        # The console's work queue: a project's open cases by deadline.
        Index("ix_tickets_project_status_due", "project", "status", "due_at", "id"),
        # The reports (migration 0012): the complaints with what their analysis reads, the
        # emergency repairs, the members of group complaints.
        _partial_index("ix_tickets_complaints", ["created_at"], "kind = 'complaint'",
                       ["project", "status", "resident_id", "priority", "topic", "room", "description", "demand", "id"]),
        _partial_index("ix_tickets_emergencies", ["created_at"], "kind = 'repair' AND priority = 'emergency'",
                       ["project", "status", "due_at", "id"]),
        _partial_index("ix_tickets_parent", ["parent_id"], "parent_id IS NOT NULL"),
    )


class TicketEvent(Base):
    """Append-only communication record: time, actor, channel, content, result."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("tickets.id"), nullable=False, index=True)
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    content: Mapped[str] = mapped_column(Text, nullable=False, default="")
    result: Mapped[str] = mapped_column(Text, nullable=False, default="")

    ticket: Mapped["Ticket"] = relationship("Ticket", back_populates="events")

    __table_args__ = (
        # The reports (migration 0012): the few events the figures read.
        _partial_index("ix_ticket_events_flags", ["ticket_id"],
                       "action = 'escalated' OR (action = 'status' AND to_status = 'reopened')", ["action", "to_status"]),
        _partial_index("ix_ticket_events_claimed", ["ticket_id", "at"], "action = 'claimed'"),
        _partial_index("ix_ticket_events_tier", ["ticket_id"], "action = 'tier_reason'", ["content"]),
    )


class TicketCounter(Base):
    """Last sequence number handed out per ticket prefix and local day."""

    __tablename__ = "ticket_counters"

    prefix: Mapped[str] = mapped_column(String(4), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class JobStatus(str, enum.Enum):
    PENDING = "pending"  # waiting for its due time (or for a retry)
    RUNNING = "running"  # claimed by a worker until `locked_until`
    DONE = "done"
    PARKED = "parked"  # gave up after max attempts; staff see it and may retry
    CANCELLED = "cancelled"


class Job(Base):
    """A scheduled piece of work: durable, claimed by one worker at a time, retried with backoff."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = project_column()
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    ticket_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("tickets.id"), nullable=True, index=True)
    survey_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("surveys.id"), nullable=True)
    payload: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)
    due_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # One job per purpose: scheduling the same thing twice is a no-op.
    idempotency_key: Mapped[str] = mapped_column(String(160), nullable=False, unique=True)
    locked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A worker that dies mid-job leaves this in the past; the job is then claimed again.
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

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

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = project_column()
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # callback / annual
    ticket_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("tickets.id"), nullable=True, index=True)
    resident_id: Mapped[int] = mapped_column(Integer, ForeignKey("residents.id"), nullable=False, index=True)
    campaign: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dimensions: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # satisfied / neutral / dissatisfied / unclear
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    overall_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)

    scores: Mapped[list["SurveyScore"]] = relationship("SurveyScore", order_by="SurveyScore.id",
                                                       cascade="save-update, merge")
    ticket: Mapped["Ticket | None"] = relationship("Ticket")
    resident: Mapped["Resident"] = relationship("Resident")

    # The reports (migration 0012): the callbacks in ticket order, with when they went out.
    __table_args__ = (_partial_index("ix_surveys_callback", ["ticket_id"], "kind = 'callback'",
                                     ["sent_at", "answered_at"]),)


class SurveyScore(Base):
    __tablename__ = "survey_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[int] = mapped_column(Integer, ForeignKey("surveys.id"), nullable=False, index=True)
    dimension: Mapped[str] = mapped_column(String(32), nullable=False)
    score: Mapped[int] = mapped_column(Integer, nullable=False)


class StaffAlert(Base):
    """Something staff must look at now (SLA breach, dissatisfied resident, parked job...).

    The staff bot posts these; without it they wait in the staff API's queue.
    """

    __tablename__ = "staff_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = project_column()
    ticket_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("tickets.id"), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")
    dedupe_key: Mapped[str] = mapped_column(String(160), nullable=False, unique=True)
    # "staff" (the project's staff group), "head" (also the project head) or "company" (also
    # the company customer-service department: major and group complaints).
    audience: Mapped[str] = mapped_column(String(16), nullable=False, default="staff")
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    ticket: Mapped["Ticket | None"] = relationship("Ticket")


class HumanSession(Base):
    """A resident talking to a staff member: their messages go to that person, not to the assistant."""

    __tablename__ = "human_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("tickets.id"), nullable=False)
    openid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    staff_id: Mapped[str] = mapped_column(String(64), nullable=False)
    staff_name: Mapped[str] = mapped_column(String(64), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    ticket: Mapped["Ticket"] = relationship("Ticket")


class StaffOutbox(Base):
    """Messages for staff (relayed resident messages, notices), sent by the staff bot."""

    __tablename__ = "staff_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = project_column()
    ticket_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("tickets.id"), nullable=True)
    audience: Mapped[str] = mapped_column(String(80), nullable=False)  # staff / head / staff:<id>
    text: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    ticket: Mapped["Ticket | None"] = relationship("Ticket")


class BindingAttempt(Base):
    """A failed 房号+手机号 binding: counted per resident and per room to cap guessing."""

    __tablename__ = "binding_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    room: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # a BindOutcome: mismatch / unknown_room / too_many
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class PrivacyRequest(Base):
    """The audit trail of residents' rights (GB/T 35273, PIPL): every export and erasure —
    who ran it, when, for which resident, why, and what it touched."""

    __tablename__ = "privacy_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # export / erase
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)  # the staff member who ran it
    os_user: Mapped[str] = mapped_column(String(64), nullable=False)  # the account it ran under
    # Which resident: the case-file ids and the identifier as asked, masked (an erased
    # resident's openid must not survive here either).
    resident_ids: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)
    subject: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    outcome: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)  # what was exported / erased, counted


class StaffMember(Base):
    """A person of the company's staff: who they are, what they may do, where, and the
    identities they sign in with on each channel."""

    __tablename__ = "staff_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    phone: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    employee_number: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    roles: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)  # bot.core.access.Role values
    projects: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)  # codes, or ["*"]: every project
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    wecom_user_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    console_login: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The console's sign-in (bot.cases.sign_in): scrypt hash, failed tries in a row, lock-out.
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ConsoleSession(Base):
    """A signed-in console session: the cookie holds a random id, this row its SHA-256."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(Integer, ForeignKey("staff_members.id"), nullable=False, index=True)
    csrf: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    staff: Mapped["StaffMember"] = relationship("StaffMember")


class StaffToken(Base):
    """A staff member's API token, stored as its SHA-256 only: the token itself is shown once."""

    __tablename__ = "staff_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(Integer, ForeignKey("staff_members.id"), nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    label: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    staff: Mapped["StaffMember"] = relationship("StaffMember")


class AuditEntry(Base):
    """Append-only: who read or changed what, when, through which interface, and whether it was
    allowed. Written by the function that authorises (bot.cases.access), never elsewhere."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)
    staff_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_members.id"), nullable=True, index=True)
    staff_name: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)  # a bot.core.access.Permission value
    allowed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    interface: Mapped[str] = mapped_column(String(16), nullable=False)  # api / telegram / cli / console
    project: Mapped[str | None] = mapped_column(String(PROJECT_CODE_LENGTH), nullable=True, index=True)
    ticket_number: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    resident_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # Whether personal data was shown unmasked (a read of personal data).
    personal_data: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")


class ResidentNotice(Base):
    """A notice to residents (停水停电, 施工, 公示, 温馨提示) or a proactive-care message (入住回访,
    节日问候): what it says, to whom (buildings, rooms, or the whole project), when it is sent.
    Its deliveries are one row per resident (`NoticeDelivery`)."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = project_column()
    # outage / works / public / reminder / welcome_callback / holiday_greeting (bot.core.notices)
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    title: Mapped[str] = mapped_column(String(64), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # {"buildings": ["3栋"], "rooms": ["5栋1单元301"]}; both empty: the whole project.
    target: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)
    # The period the notice is about (the outage, the works, the 公示期); naive UTC.
    starts_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    send_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)  # staff actor, or "system"
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # draft / scheduled / sending / sent / cancelled
    # The notices the system writes itself (one welcome per household, one greeting per day):
    # created once under this key, whichever worker gets there first.
    dedupe_key: Mapped[str | None] = mapped_column(String(160), nullable=True, unique=True)

    __table_args__ = (Index("ix_notices_project_status", "project", "status"),)


class NoticeDelivery(Base):
    """One resident's copy of a notice: at most one per notice and resident, whatever reruns."""

    __tablename__ = "notice_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notice_id: Mapped[int] = mapped_column(Integer, ForeignKey("notices.id"), nullable=False)
    resident_id: Mapped[int] = mapped_column(Integer, ForeignKey("residents.id"), nullable=False, index=True)
    project: Mapped[str] = project_column()
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending / sent / failed / unreachable / cancelled
    via: Mapped[str | None] = mapped_column(String(16), nullable=True)  # custom / template
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("notice_id", "resident_id", name="uq_notice_deliveries_notice_resident"),
        Index("ix_notice_deliveries_notice_status", "notice_id", "status"),
    )
