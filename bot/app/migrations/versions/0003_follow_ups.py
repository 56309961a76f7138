"""Follow-ups: job queue, surveys and their scores, staff alerts, ticket deadlines.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("final_due_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("callback_due_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("ticket_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("via", sa.String(16), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(160), nullable=True))
        batch.create_foreign_key("fk_outbound_ticket", "tickets", ["ticket_id"], ["id"])
        batch.create_unique_constraint("uq_outbound_idempotency_key", ["idempotency_key"])
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=True),
        sa.Column("resident_id", sa.Integer(), sa.ForeignKey("residents.id"), nullable=False),
        sa.Column("campaign", sa.String(64), nullable=True),
        sa.Column("dimensions", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("reminded_at", sa.DateTime(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("overall_score", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
    )
    op.create_index("ix_surveys_ticket_id", "surveys", ["ticket_id"])
    op.create_index("ix_surveys_resident_id", "surveys", ["resident_id"])
    op.create_table(
        "survey_scores",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("survey_id", sa.Integer(), sa.ForeignKey("surveys.id"), nullable=False),
        sa.Column("dimension", sa.String(32), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
    )
    op.create_index("ix_survey_scores_survey_id", "survey_scores", ["survey_id"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=True),
        sa.Column("survey_id", sa.Integer(), sa.ForeignKey("surveys.id"), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(160), nullable=False),
        sa.Column("locked_by", sa.String(64), nullable=True),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_jobs_status_due", "jobs", ["status", "due_at"])
    op.create_index("ix_jobs_ticket_id", "jobs", ["ticket_id"])
    op.create_table(
        "staff_alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(160), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("notified_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_staff_alerts_ticket_id", "staff_alerts", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("staff_alerts")
    op.drop_table("jobs")
    op.drop_table("survey_scores")
    op.drop_table("surveys")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_constraint("uq_outbound_idempotency_key", type_="unique")
        batch.drop_constraint("fk_outbound_ticket", type_="foreignkey")
        batch.drop_column("idempotency_key")
        batch.drop_column("via")
        batch.drop_column("ticket_id")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("callback_due_at")
        batch.drop_column("final_due_at")
