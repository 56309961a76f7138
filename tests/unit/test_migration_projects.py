"""Migration 0008 (projects, staff, audit) on a store full of single-project data: up and down,
on SQLite and PostgreSQL. Nothing is lost; everything lands in the configured project."""
from __future__ import annotations

from typing import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from bot.app import migrate
from tests.fixtures import _create_postgres_database, _drop_postgres_database

PROJECT_TABLES = ("residents", "tickets", "jobs", "surveys", "staff_alerts", "staff_outbox")
T = "2026-11-30 08:00:00"

ROWS_AT_0007 = [
    "INSERT INTO residents (id, openid, name, phone, room, customer_type, property_use, occupancy, tags, created_at,"
    f" updated_at, subscribed) VALUES (1, 'oOwner', '张三', '13800001111', '3栋2单元501', 'individual', 'residential',"
    f" 'occupied', '[\"living_alone_elderly\"]', '{T}', '{T}', true)",
    "INSERT INTO residents (id, openid, name, phone, room, customer_type, property_use, occupancy, tags, created_at,"
    f" updated_at, subscribed) VALUES (2, NULL, '李四', '13900002222', '5栋1单元101', 'individual', 'residential',"
    f" 'occupied', '[]', '{T}', '{T}', false)",
    "INSERT INTO tickets (id, number, kind, status, description, channel, resident_id, created_at, updated_at)"
    f" VALUES (1, 'BX20261130-0001', 'repair', 'new', '厨房水龙头漏水', 'wechat', 1, '{T}', '{T}')",
    "INSERT INTO ticket_events (id, ticket_id, at, actor, channel, action, content, result)"
    f" VALUES (1, 1, '{T}', 'resident', 'wechat', 'created', '厨房水龙头漏水', '')",
    "INSERT INTO jobs (id, kind, ticket_id, payload, due_at, status, attempts, max_attempts, idempotency_key,"
    f" created_at, updated_at) VALUES (1, 'sla_check', 1, '{{}}', '{T}', 'pending', 0, 6, 'sla:1:due', '{T}', '{T}')",
    "INSERT INTO surveys (id, kind, ticket_id, resident_id, dimensions, status, created_at)"
    f" VALUES (1, 'callback', 1, 1, '[]', 'scheduled', '{T}')",
    "INSERT INTO staff_alerts (id, ticket_id, reason, detail, dedupe_key, audience, created_at)"
    f" VALUES (1, 1, 'emergency_repair', 'leak', 'emergency_repair:1', 'staff', '{T}')",
    "INSERT INTO staff_outbox (id, ticket_id, audience, text, created_at, attempts)"
    f" VALUES (1, 1, 'staff', '居民：还在漏', '{T}', 0)",
]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    admin = request.getfixturevalue("postgres_server")
    name, url = _create_postgres_database(admin)
    try:
        yield url
    finally:
        _drop_postgres_database(admin, name)


def _run(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def _rows(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    return _rows(url, "SELECT version_num FROM alembic_version")[0][0]


def test_single_project_data_lands_in_the_configured_project_and_comes_back_down(empty_url):
    migrate.upgrade(empty_url, "0007")
    _run(empty_url, *ROWS_AT_0007)
    migrate.upgrade(empty_url, "0008", project="lanting")
    assert _revision(empty_url) == "0008"
    for table in PROJECT_TABLES:
        assert _rows(empty_url, f"SELECT DISTINCT project FROM {table}") == [("lanting",)], table
    # Nothing else changed.
    assert _rows(empty_url, "SELECT id, openid, name, phone, room FROM residents ORDER BY id") == [
        (1, "oOwner", "张三", "13800001111", "3栋2单元501"), (2, None, "李四", "13900002222", "5栋1单元101")]
    assert _rows(empty_url, "SELECT number, description FROM tickets") == [("BX20261130-0001", "厨房水龙头漏水")]
    assert _rows(empty_url, "SELECT COUNT(*) FROM ticket_events")[0][0] == 1
    # New rows must name their project: the column has no default left.
    with pytest.raises(IntegrityError):
        _run(empty_url, "INSERT INTO staff_outbox (ticket_id, audience, text, created_at, attempts)"
                        f" VALUES (1, 'staff', 'x', '{T}', 0)")
    # One openid, one record per project: the owner of a flat in a second project.
    # (Explicit ids: PostgreSQL's sequence did not see the rows inserted with theirs.)
    insert_second = ("INSERT INTO residents (id, project, openid, customer_type, property_use, occupancy, tags,"
                     f" created_at, updated_at, subscribed) VALUES ({{}}, '{{}}', 'oOwner', 'individual', 'residential',"
                     f" 'occupied', '[]', '{T}', '{T}', true)")
    _run(empty_url, insert_second.format(3, "binjiang"))
    with pytest.raises(IntegrityError):
        _run(empty_url, insert_second.format(4, "lanting"))
    for table in ("staff_members", "staff_tokens", "audit_log"):
        assert table in inspect(create_engine(empty_url)).get_table_names()

    # Down while two projects hold data would merge them: refused, nothing changed.
    with pytest.raises(RuntimeError, match="2 projects"):
        migrate.downgrade(empty_url, "0007")
    assert _revision(empty_url) == "0008"
    assert _rows(empty_url, "SELECT COUNT(*) FROM residents")[0][0] == 3

    _run(empty_url, "DELETE FROM residents WHERE project = 'binjiang'")
    migrate.downgrade(empty_url, "0007")
    assert _revision(empty_url) == "0007"
    columns = {c["name"] for c in inspect(create_engine(empty_url)).get_columns("tickets")}
    assert "project" not in columns
    assert _rows(empty_url, "SELECT id, openid, room FROM residents ORDER BY id") == [
        (1, "oOwner", "3栋2单元501"), (2, None, "5栋1单元101")]
    assert _rows(empty_url, "SELECT number FROM tickets") == [("BX20261130-0001",)]
    # The old rule is back: one record per openid.
    with pytest.raises(IntegrityError):
        _run(empty_url, "INSERT INTO residents (id, openid, customer_type, property_use, occupancy, tags, created_at,"
                        f" updated_at, subscribed) VALUES (5, 'oOwner', 'individual', 'residential', 'occupied', '[]',"
                        f" '{T}', '{T}', true)")
    migrate.upgrade(empty_url, "0008", project="lanting")  # and up again
    assert _revision(empty_url) == "0008"


def test_the_migration_project_may_come_from_the_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    migrate.upgrade(url, "0007")
    _run(url, *ROWS_AT_0007[:3])
    monkeypatch.setenv("MIGRATION_PROJECT", "from_env")
    migrate.upgrade(url, project="ignored")
    assert _rows(url, "SELECT DISTINCT project FROM tickets") == [("from_env",)]


def test_console_sign_in_columns_come_and_go_without_touching_staff(empty_url):
    migrate.upgrade(empty_url, "0008", project="lanting")
    _run(empty_url, "INSERT INTO staff_members (id, name, phone, employee_number, roles, projects, created_at,"
                    f" updated_at) VALUES (1, '王芳', '', 'E1', '[\"agent\"]', '[\"lanting\"]', '{T}', '{T}')")
    migrate.upgrade(empty_url, project="lanting")
    assert _rows(empty_url, "SELECT name, failed_logins, password_hash FROM staff_members") == [("王芳", 0, None)]
    migrate.downgrade(empty_url, "0008")
    assert _rows(empty_url, "SELECT name, employee_number FROM staff_members") == [("王芳", "E1")]
    assert "console_sessions" not in inspect(create_engine(empty_url)).get_table_names()
