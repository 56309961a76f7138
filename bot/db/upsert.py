"""Insert-once for rows with a unique key, on SQLite and PostgreSQL alike."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session


def insert_once(session: Session, model: type, key_column: str, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when this call created the row."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Session.execute() is typed as returning Result; for this DML statement it is a CursorResult.
    result = cast("CursorResult[Any]", session.execute(
        insert(model).values(**values).on_conflict_do_nothing(index_elements=[key_column])))
    return result.rowcount == 1
