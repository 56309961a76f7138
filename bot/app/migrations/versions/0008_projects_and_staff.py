"""Projects, staff members and the audit trail.

Every resident, ticket, job, survey, staff alert and staff message belongs to a project
(小区); what exists already lands in one project, named by configuration (`bot.app.migrate`
passes the registry's default project; MIGRATION_PROJECT overrides it). A resident's openid
is unique per project (the owner of flats in two projects keeps one openid). Staff are
people with roles, projects, channel identities and hashed API tokens; `audit_log` records
who read or changed what.

Downgrading refuses while rows of more than one project exist: it would merge them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
import os

import sqlalchemy as sa
from alembic import context, op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PROJECT_TABLES = ("residents", "tickets", "jobs", "surveys", "staff_alerts", "staff_outbox")
# SQLite kept the 0001 constraint unnamed; batch mode names it by this convention to drop it.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _migration_project() -> str:
    project = (os.environ.get("MIGRATION_PROJECT") or context.config.attributes.get("project") or "default").strip()
    if not project or len(project) > 32:
        raise RuntimeError(f"migration 0008: bad project code {project!r} (1-32 characters)")
    return project


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    project = _migration_project()
    for table in PROJECT_TABLES:
        # The server default fills the rows that exist; new rows always name their project.
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("project", sa.String(32), nullable=False, server_default=project))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("project", server_default=None, existing_type=sa.String(32), existing_nullable=False)
            batch.create_index(f"ix_{table}_project", ["project"])
    if _is_sqlite():
        with op.batch_alter_table("residents", naming_convention=SQLITE_NAMES) as batch:
            batch.drop_constraint("uq_residents_openid", type_="unique")
    else:
        op.drop_constraint("residents_openid_key", "residents", type_="unique")
    with op.batch_alter_table("residents") as batch:
        batch.add_column(sa.Column("selected_at", sa.DateTime(), nullable=True))
        batch.create_unique_constraint("uq_residents_project_openid", ["project", "openid"])
        batch.create_index("ix_residents_openid", ["openid"])

    op.create_table(
        "staff_members",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("employee_number", sa.String(32), nullable=False, unique=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("projects", sa.JSON(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=True, unique=True),
        sa.Column("wecom_user_id", sa.String(64), nullable=True, unique=True),
        sa.Column("console_login", sa.String(64), nullable=True, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "staff_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff_members.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_staff_tokens_staff_id", "staff_tokens", ["staff_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff_members.id"), nullable=True),
        sa.Column("staff_name", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("interface", sa.String(16), nullable=False),
        sa.Column("project", sa.String(32), nullable=True),
        sa.Column("ticket_number", sa.String(32), nullable=True),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("personal_data", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    for column in ("at", "staff_id", "project", "ticket_number", "resident_id"):
        op.create_index(f"ix_audit_log_{column}", "audit_log", [column])


def downgrade() -> None:
    bind = op.get_bind()
    projects: set[str] = set()
    for table in PROJECT_TABLES:
        projects |= {row[0] for row in bind.execute(sa.text(f"SELECT DISTINCT project FROM {table}"))}
    if len(projects) > 1:
        raise RuntimeError(f"cannot downgrade below 0008: the store holds {len(projects)} projects "
                           f"({', '.join(sorted(projects))}); one schema without projects would merge them")
    doubled = bind.execute(sa.text(
        "SELECT COUNT(*) FROM (SELECT openid FROM residents WHERE openid IS NOT NULL "
        "GROUP BY openid HAVING COUNT(*) > 1) AS doubled")).scalar_one()
    if doubled:
        raise RuntimeError(f"cannot downgrade below 0008: {doubled} openid(s) have more than one record")
    for column in ("resident_id", "ticket_number", "project", "staff_id", "at"):
        op.drop_index(f"ix_audit_log_{column}", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_staff_tokens_staff_id", table_name="staff_tokens")
    op.drop_table("staff_tokens")
    op.drop_table("staff_members")
    with op.batch_alter_table("residents") as batch:
        batch.drop_index("ix_residents_openid")
        batch.drop_constraint("uq_residents_project_openid", type_="unique")
        batch.drop_column("selected_at")
    if _is_sqlite():
        with op.batch_alter_table("residents", naming_convention=SQLITE_NAMES) as batch:
            batch.create_unique_constraint("uq_residents_openid", ["openid"])
    else:
        op.create_unique_constraint("residents_openid_key", "residents", ["openid"])
    for table in PROJECT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_project")
            batch.drop_column("project")
