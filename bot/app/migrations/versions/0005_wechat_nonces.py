"""WeChat replay guard: the nonces of recent pushes, shared by every gateway replica.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wechat_nonces",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_wechat_nonces_seen_at", "wechat_nonces", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_wechat_nonces_seen_at", table_name="wechat_nonces")
    op.drop_table("wechat_nonces")
