from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy.engine import make_url

from bot.app import migrate
from bot.core.rules import ProjectRules, load_rules
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def shifted_clock() -> Iterator[None]:
    """`make clock-check` runs the suite with the system clock moved (WUYE_TEST_NOW, ISO time):
    no test may depend on today's date. Unset, the clock is the real one."""
    when = os.environ.get("WUYE_TEST_NOW")
    if not when:
        yield
        return
    import time_machine

    with time_machine.travel(when, tick=True):
        yield


TEST_PROJECTS_DIR = PROJECT_ROOT / "tests" / "projects"


@pytest.fixture(scope="session")
def two_projects():  # type: ignore[no-untyped-def]
    """The company of tests/projects: 示例小区 ("default", the defaults as they are) and 滨江花园
    ("binjiang": 12-hour repairs, 2-hour major complaints, 09:00-18:00, fee 3.50, own chats)."""
    from bot.core.company import load_company

    return load_company(PROJECT_ROOT / "project" / "default.yml", TEST_PROJECTS_DIR)


@pytest.fixture(scope="session")
def rules() -> ProjectRules:
    return load_rules(PROJECT_ROOT / "project" / "default.yml")


# What "no server here" looks like; anything else (a wrong password, a missing database,
# a refused login) is a broken setup and fails instead of skipping.
ABSENT = ("connection refused", "no route to host", "network is unreachable")


def server_absent(problem: str) -> bool:
    return any(sign in problem.lower() for sign in ABSENT)


def _postgres_reachable() -> str | None:
    import psycopg2

    url = make_url(POSTGRES_ADMIN_URL)
    try:
        psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, dbname=url.database,
                         password=url.password, connect_timeout=3).close()
        return None
    except psycopg2.OperationalError as exc:
        return str(exc).strip()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of the PostgreSQL test server.

    Skipped only on a developer machine where the connection is refused (no server);
    in CI (CI=true) a missing server is a failure, because the production path must be
    tested there.
    """
    problem = _postgres_reachable()
    if problem:
        message = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {problem}"
        # Only "nobody listens there" is a reason to skip; a server that answers wrongly
        # (authentication, a missing database) is a broken setup and fails.
        if os.environ.get("CI") or not server_absent(problem):
            pytest.fail(message + " (CI must test the PostgreSQL path)")
        pytest.skip(message)
    return POSTGRES_ADMIN_URL


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The URL of the Redis test server; skipped like `postgres_server` (refused, not in CI)."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        message = f"Redis not reachable at {REDIS_TEST_URL}: {exc}"
        if os.environ.get("CI") or not server_absent(str(exc)):
            pytest.fail(message + " (CI must test the Redis path)")
        pytest.skip(message)
    finally:
        client.close()
    return REDIS_TEST_URL


def _admin_connection(admin_url: str):  # type: ignore[no-untyped-def]
    import psycopg2

    url = make_url(admin_url)
    conn = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, dbname=url.database,
                            password=url.password)
    conn.autocommit = True
    return conn


def _create_postgres_database(admin_url: str, template: str | None = None) -> tuple[str, str]:
    name = f"wuye_test_{uuid.uuid4().hex[:10]}"
    url = make_url(admin_url)
    conn = _admin_connection(admin_url)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    conn.close()
    return name, str(url.set(database=name))


def _drop_postgres_database(admin_url: str, name: str) -> None:
    conn = _admin_connection(admin_url)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tickets.db'}"


# Each test gets a fresh, migrated database, copied from one migrated once per test session:
# running every migration again for each of hundreds of tests was a large part of the suite's
# time. The migrations themselves are tested on their own (tests/unit/test_store.py and others
# call migrate.upgrade/downgrade directly).

@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "tickets.db"
    migrate.upgrade(f"sqlite:///{path}")
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as connection:  # everything into the main file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _migrated_sqlite(template: Path, path: Path) -> str:
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_server: str) -> Iterator[str]:
    name, url = _create_postgres_database(postgres_server)
    try:
        migrate.upgrade(url)  # its engine is disposed after: no session is left on the template
        yield name
    finally:
        _drop_postgres_database(postgres_server, name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: SQLite file, then a throw-away PostgreSQL database."""
    if request.param == "sqlite":
        yield _migrated_sqlite(request.getfixturevalue("migrated_sqlite_template"), tmp_path / "tickets.db")
        return
    yield request.getfixturevalue("postgres_database_url")


@pytest.fixture
def postgres_database_url(postgres_server: str, migrated_postgres_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (also alone, for tests about PostgreSQL itself)."""
    name, url = _create_postgres_database(postgres_server, template=migrated_postgres_template)
    try:
        yield url
    finally:
        _drop_postgres_database(postgres_server, name)


@pytest.fixture
def store(database_url: str) -> Iterator[TicketStore]:
    ticket_store = TicketStore(database_url)
    yield ticket_store
    ticket_store.dispose()


@pytest.fixture
def sqlite_store(migrated_sqlite_template: Path, tmp_path: Path) -> Iterator[TicketStore]:
    ticket_store = TicketStore(_migrated_sqlite(migrated_sqlite_template, tmp_path / "tickets.db"))
    yield ticket_store
    ticket_store.dispose()


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The real action server and Rasa server (trained model), sharing one SQLite store.

    Started once per test session; tests keep apart by using their own sender ids. Rasa's
    HTTP API wants the session's token, as in production.
    """
    from bot.app.model_cache import ensure_model
    from bot.app.stack import start_action_server, start_rasa, wait_until_healthy, write_endpoints
    from tests.live import LiveStack, free_port

    workdir = tmp_path_factory.mktemp("live")
    database_url = f"sqlite:///{workdir / 'tickets.db'}"
    migrate.upgrade(database_url)
    model = ensure_model()
    rasa_token = f"e2e-rasa-{secrets.token_hex(8)}"
    # Two projects (tests/projects): "default" is the company defaults as they are, so every
    # e2e test written for one project holds; "binjiang" has its own numbers and facts.
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONUNBUFFERED="1", RASA_AUTH_TOKEN=rasa_token,
               PROJECTS_DIR=str(TEST_PROJECTS_DIR))
    action_port, rasa_port = free_port(), free_port()
    endpoints = write_endpoints(workdir / "endpoints.yml", action_port)
    actions = start_action_server(action_port, env, workdir / "log")
    rasa = start_rasa(model, rasa_port, endpoints, env, workdir / "log")
    store = TicketStore(database_url)
    try:
        wait_until_healthy(actions, timeout=120)
        wait_until_healthy(rasa, timeout=300)
        yield LiveStack(rasa_port, store, actions, action_port, rasa_token, rasa)
    finally:
        rasa.stop()
        actions.stop()
        store.dispose()


@pytest.fixture(scope="session")
def company(rules: ProjectRules):  # type: ignore[no-untyped-def]
    """The one-project registry of the `rules` fixture (its code, "default", is the default)."""
    from bot.core.company import Company

    return Company.of(rules)


from tests.browser import *  # noqa: E402,F401,F403
