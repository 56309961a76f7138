"""Engine and transactions for the ticket store (SQLite embedded, PostgreSQL in production)."""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine, ExceptionContext, make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling starts transactions lazily and lets two
    # writers race into SQLITE_BUSY. We issue BEGIN IMMEDIATE ourselves so a writer
    # takes the write lock up front and the others wait for it (busy timeout).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a killed process loses
        # nothing, a power cut may lose the last commits. Every commit's fsync held the write
        # lock long enough for a flood of (throttled) messages to slow every resident's writes.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# PostgreSQL quotes the data in its error texts: "DETAIL: Failing row contains (…)",
# "Key (dedupe_key)=(…) already exists", 'invalid input syntax for type integer: "…"'.
_QUOTED_VALUE = re.compile(r':\s*"[^"]*"')


def scrub_driver_message(message: str) -> str:
    """The driver's error text without the values it quotes: its first line, quoted values blanked."""
    first = message.strip().splitlines()[0] if message.strip() else message
    return _QUOTED_VALUE.sub(': "…"', first)


def _hide_driver_values(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> BaseException | None:
        original = context.original_exception
        text = str(original)
        clean = scrub_driver_message(text)
        if clean == text or not isinstance(context.sqlalchemy_exception, exc.DBAPIError):
            return None
        original.args = (clean,)  # the driver's exception is chained to ours: it is logged too
        return exc.DBAPIError.instance(context.statement, context.parameters, original,
                                       context.dialect.loaded_dbapi.Error, hide_parameters=True,
                                       connection_invalidated=context.is_disconnect, dialect=context.dialect)


def make_engine(url: str) -> Engine:
    """An engine whose errors never carry the statement's values (hide_parameters): they are
    residents' words, phone numbers and openids, and database errors get logged."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, future=True, hide_parameters=True,
                               connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, future=True, pool_pre_ping=True, hide_parameters=True)
    _hide_driver_values(engine)
    return engine


class TicketStore:
    """Owns the engine; hands out one transaction per unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, future=True, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success; roll back everything on any error (no half-written case)."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
