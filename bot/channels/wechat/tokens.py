"""The WeChat access token, shared by all gateway workers through the store.

WeChat invalidates the previous token whenever a new one is fetched, so workers must
never fetch in parallel: one takes a short lease (an atomic UPDATE), fetches, saves;
the others wait and read what it saved.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from bot.channels.wechat.models import AccessToken
from bot.db.store import TicketStore

# Refresh this long before WeChat's expiry (tokens live 7,200 s).
REFRESH_MARGIN = timedelta(minutes=5)
LEASE = timedelta(seconds=15)


def valid_token(store: TicketStore, app_id: str, now: datetime) -> str | None:
    with store.transaction() as session:
        row = session.execute(select(AccessToken).where(AccessToken.app_id == app_id)).scalar_one_or_none()
        if row and row.token and row.expires_at and row.expires_at - REFRESH_MARGIN > now:
            return row.token
    return None


def take_refresh_lease(store: TicketStore, app_id: str, now: datetime) -> bool:
    with store.transaction() as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(AccessToken).values(app_id=app_id, updated_at=now).on_conflict_do_nothing())
        # The lease is only for a missing or expiring token: a worker that found no token a
        # moment ago must not refresh one that another worker has saved since (WeChat would
        # invalidate it), so validity is checked again in the same atomic UPDATE.
        # Session.execute() is typed as returning Result; for this UPDATE it is a CursorResult.
        taken = cast("CursorResult[Any]", session.execute(
            update(AccessToken)
            .where(AccessToken.app_id == app_id,
                   or_(AccessToken.refreshing_until.is_(None), AccessToken.refreshing_until < now),
                   or_(AccessToken.token.is_(None), AccessToken.expires_at.is_(None),
                       AccessToken.expires_at <= now + REFRESH_MARGIN))
            .values(refreshing_until=now + LEASE)
            .execution_options(synchronize_session=False)
        ))
        return taken.rowcount == 1


def save_token(store: TicketStore, app_id: str, token: str | None, expires_at: datetime | None,
               now: datetime) -> None:
    with store.transaction() as session:
        values: dict[str, Any] = {"refreshing_until": None, "updated_at": now}
        if token is not None:
            values.update(token=token, expires_at=expires_at)
        session.execute(update(AccessToken).where(AccessToken.app_id == app_id).values(**values)
                        .execution_options(synchronize_session=False))


def invalidate_token(store: TicketStore, app_id: str, rejected: str, now: datetime) -> None:
    """Forget the token WeChat rejected, but only if nobody replaced it meanwhile."""
    with store.transaction() as session:
        session.execute(update(AccessToken)
                        .where(AccessToken.app_id == app_id, AccessToken.token == rejected)
                        .values(token=None, expires_at=None, updated_at=now)
                        .execution_options(synchronize_session=False))
