"""Complaints' first-feedback deadline (the initial investigation reported back to the resident),
and the household file's own record (calls, walk-ins, corrections: resident_events).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("first_feedback_due_at", sa.DateTime(), nullable=True))
    op.create_table(
        "resident_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("resident_id", sa.Integer(), sa.ForeignKey("residents.id"), nullable=False),
        sa.Column("project", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
    )
    op.create_index("ix_resident_events_resident_id", "resident_events", ["resident_id"])
    op.create_index("ix_resident_events_project", "resident_events", ["project"])


def downgrade() -> None:
    op.drop_index("ix_resident_events_project", table_name="resident_events")
    op.drop_index("ix_resident_events_resident_id", table_name="resident_events")
    op.drop_table("resident_events")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("first_feedback_due_at")
