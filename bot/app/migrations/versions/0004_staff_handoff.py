"""Staff handoff: who holds a case, live sessions, group cases, staff outbox, Telegram links.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("assignee_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("topic", sa.String(32), nullable=True))
        batch.create_foreign_key("fk_tickets_parent", "tickets", ["parent_id"], ["id"])
    with op.batch_alter_table("staff_alerts") as batch:
        batch.add_column(sa.Column("audience", sa.String(16), nullable=False, server_default="staff"))
    op.create_table(
        "human_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("staff_id", sa.String(64), nullable=False),
        sa.Column("staff_name", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("ended_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_human_sessions_openid", "human_sessions", ["openid"])
    op.create_table(
        "staff_outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=True),
        sa.Column("audience", sa.String(80), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_staff_outbox_sent_at", "staff_outbox", ["sent_at"])
    op.create_table(
        "telegram_links",
        sa.Column("chat_id", sa.BigInteger(), primary_key=True),
        sa.Column("message_id", sa.BigInteger(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("staff_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("telegram_links")
    op.drop_table("staff_outbox")
    op.drop_table("human_sessions")
    with op.batch_alter_table("staff_alerts") as batch:
        batch.drop_column("audience")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_parent", type_="foreignkey")
        batch.drop_column("topic")
        batch.drop_column("parent_id")
        batch.drop_column("claimed_at")
        batch.drop_column("assignee_id")
