"""Notices to residents (停水停电, 施工, 公示, 温馨提示, 入住回访, 节日问候) and their deliveries,
one row per resident (unique per notice and resident: nobody gets a notice twice).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("title", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=True),
        sa.Column("ends_at", sa.DateTime(), nullable=True),
        sa.Column("send_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dedupe_key", sa.String(160), nullable=True, unique=True),
    )
    op.create_index("ix_notices_project", "notices", ["project"])
    op.create_index("ix_notices_project_status", "notices", ["project", "status"])
    op.create_table(
        "notice_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notice_id", sa.Integer(), sa.ForeignKey("notices.id"), nullable=False),
        sa.Column("resident_id", sa.Integer(), sa.ForeignKey("residents.id"), nullable=False),
        sa.Column("project", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("via", sa.String(16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("notice_id", "resident_id", name="uq_notice_deliveries_notice_resident"),
    )
    op.create_index("ix_notice_deliveries_resident_id", "notice_deliveries", ["resident_id"])
    op.create_index("ix_notice_deliveries_project", "notice_deliveries", ["project"])
    op.create_index("ix_notice_deliveries_notice_status", "notice_deliveries", ["notice_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_notice_deliveries_notice_status", table_name="notice_deliveries")
    op.drop_index("ix_notice_deliveries_project", table_name="notice_deliveries")
    op.drop_index("ix_notice_deliveries_resident_id", table_name="notice_deliveries")
    op.drop_table("notice_deliveries")
    op.drop_index("ix_notices_project_status", table_name="notices")
    op.drop_index("ix_notices_project", table_name="notices")
    op.drop_table("notices")
