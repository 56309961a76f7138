"""Indexes for the managers' reports (bot.cases.kpis, bot.cases.complaint_analysis): small partial
indexes holding just the rows the figures read, so the company-wide quarterly report over a
million cases reads them instead of the whole tables.

- ticket_events: the reopened and escalated events (ix_ticket_events_flags), the 接单 events
  (ix_ticket_events_claimed: a case's first claim), the tier reasons (ix_ticket_events_tier: the
  complaint analysis's causes);
- surveys: the callbacks in ticket order with when they went out (ix_surveys_callback);
- tickets: the complaints with what the analysis groups them by (ix_tickets_complaints), the
  emergency repairs (ix_tickets_emergencies), the members of group complaints (ix_tickets_parent).

On PostgreSQL the indexes carry the columns the queries read (INCLUDE), so that they are answered
from the index alone; SQLite gets the same partial indexes without them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# (name, table, key columns, INCLUDE columns (PostgreSQL), partial-index predicate)
INDEXES = [
    ("ix_ticket_events_flags", "ticket_events", ["ticket_id"], ["action", "to_status"],
     "action = 'escalated' OR (action = 'status' AND to_status = 'reopened')"),
    ("ix_ticket_events_claimed", "ticket_events", ["ticket_id", "at"], [], "action = 'claimed'"),
    ("ix_ticket_events_tier", "ticket_events", ["ticket_id"], ["content"], "action = 'tier_reason'"),
    ("ix_surveys_callback", "surveys", ["ticket_id"], ["sent_at", "answered_at"], "kind = 'callback'"),
    ("ix_tickets_complaints", "tickets", ["created_at"],
     ["project", "status", "resident_id", "priority", "topic", "room", "description", "demand", "id"],
     "kind = 'complaint'"),
    ("ix_tickets_emergencies", "tickets", ["created_at"], ["project", "status", "due_at", "id"],
     "kind = 'repair' AND priority = 'emergency'"),
    ("ix_tickets_parent", "tickets", ["parent_id"], [], "parent_id IS NOT NULL"),
]


def upgrade() -> None:
    for name, table, columns, include, where in INDEXES:
        op.create_index(name, table, columns, postgresql_where=sa.text(where), sqlite_where=sa.text(where),
                        postgresql_include=include)


def downgrade() -> None:
    for name, table, _columns, _include, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
