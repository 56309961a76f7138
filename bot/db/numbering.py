"""Human-readable ticket numbers: <prefix><local date>-<sequence>, e.g. BX20261125-0007."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.core.kinds import TicketKind
from bot.db.models import TicketCounter

PREFIXES: dict[TicketKind, str] = {
    TicketKind.REPAIR: "BX",  # 报修
    TicketKind.COMPLAINT: "TS",  # 投诉
    TicketKind.ENQUIRY: "ZX",  # 咨询
    TicketKind.SUGGESTION: "JY",  # 建议
    TicketKind.PRAISE: "BY",  # 表扬
}


def _insert_counter_if_missing(session: Session, prefix: str, day: date) -> None:
    dialect = session.get_bind().dialect.name
    values = {"prefix": prefix, "day": day, "last_value": 0}
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(TicketCounter).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(TicketCounter).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database dialect: {dialect}")
    session.execute(stmt)


def next_ticket_number(session: Session, kind: TicketKind, local_day: date) -> str:
    """Reserve the next number inside the caller's transaction.

    The UPDATE takes a row lock (PostgreSQL) or the write lock (SQLite, BEGIN IMMEDIATE),
    so concurrent writers are serialised on the counter row and never get the same value;
    a rolled-back transaction gives its number back.
    """
    prefix = PREFIXES[kind]
    _insert_counter_if_missing(session, prefix, local_day)
    session.execute(
        update(TicketCounter)
        .where(TicketCounter.prefix == prefix, TicketCounter.day == local_day)
        .values(last_value=TicketCounter.last_value + 1)
        .execution_options(synchronize_session=False)
    )
    value = session.execute(
        select(TicketCounter.last_value).where(TicketCounter.prefix == prefix, TicketCounter.day == local_day)
    ).scalar_one()
    return f"{prefix}{local_day:%Y%m%d}-{value:04d}"
