"""Leases on inbound WeChat messages, so that several gateway replicas answer each message
exactly once: the replica working on a message (`owner`) holds it until `lease_until`; how
often one took a message over from another that had stopped (`takeovers`).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("takeovers", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_inbound_messages_lease_until", "inbound_messages", ["lease_until"])


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_lease_until", table_name="inbound_messages")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("takeovers")
        batch.drop_column("lease_until")
        batch.drop_column("owner")
