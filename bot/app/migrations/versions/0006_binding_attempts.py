"""Binding attempts: failed 房号+手机号 bindings, counted per resident and per room per day.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "binding_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("room", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_binding_attempts_openid", "binding_attempts", ["openid"])
    op.create_index("ix_binding_attempts_room", "binding_attempts", ["room"])


def downgrade() -> None:
    op.drop_index("ix_binding_attempts_room", table_name="binding_attempts")
    op.drop_index("ix_binding_attempts_openid", table_name="binding_attempts")
    op.drop_table("binding_attempts")
