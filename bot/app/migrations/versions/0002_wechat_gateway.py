"""WeChat gateway: inbound log, outbound pushes, shared access token, resident follow state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.add_column(sa.Column("bound_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("subscribed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("unsubscribed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("last_message_at", sa.DateTime(), nullable=True))
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedupe_key", sa.String(160), nullable=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("msg_type", sa.String(32), nullable=False),
        sa.Column("event", sa.String(32), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("delivery", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("processed_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_inbound_messages_openid", "inbound_messages", ["openid"])
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("inbound_id", sa.Integer(), sa.ForeignKey("inbound_messages.id"), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_outbound_messages_openid", "outbound_messages", ["openid"])
    op.create_table(
        "wechat_access_tokens",
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(512), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("refreshing_until", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("wechat_access_tokens")
    op.drop_index("ix_outbound_messages_openid", table_name="outbound_messages")
    op.drop_table("outbound_messages")
    op.drop_index("ix_inbound_messages_openid", table_name="inbound_messages")
    op.drop_table("inbound_messages")
    with op.batch_alter_table("residents") as batch:
        batch.drop_column("last_message_at")
        batch.drop_column("unsubscribed_at")
        batch.drop_column("subscribed")
        batch.drop_column("bound_at")
