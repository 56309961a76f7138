"""Signing in to the staff console: passwords (scrypt, memory-hard), lock-out after repeated
failures, and server-side sessions whose cookie carries only a random id (its SHA-256 is stored).

Every session has its own CSRF token; a form without it is refused by the console."""
from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.db.models import ConsoleSession, StaffMember

log = logging.getLogger(__name__)

# scrypt with N=2**15, r=8: 32 MiB and ~0.1 s per try — memory-hard, slow for a guesser.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_LENGTH = 10
MAX_FAILURES = 5  # then the account waits LOCK_MINUTES
LOCK_MINUTES = 15
SESSION_HOURS = 12  # one shift
IDLE_MINUTES = 120  # a session nobody used for this long has expired


class PasswordError(ValueError):
    """A password that may not be set (too short, or the account's own login)."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str | None) -> bool:
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                               maxmem=SCRYPT_MAXMEM)
    return hmac.compare_digest(candidate.hex(), digest)


def set_password(session: Session, member: StaffMember, password: str, now: datetime | None = None) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if member.console_login and password.lower() == member.console_login.lower():
        raise PasswordError("the password may not be the login itself")
    member.password_hash = hash_password(password)
    member.failed_logins, member.locked_until = 0, None
    member.updated_at = now or utcnow()


class SignIn(str, enum.Enum):
    OK = "ok"
    WRONG = "wrong"  # unknown login, wrong password or a disabled account: one answer for all
    LOCKED = "locked"


@dataclass(frozen=True)
class Attempt:
    outcome: SignIn
    member: StaffMember | None = None
    session_id: str | None = None  # the cookie's value (shown once; only its hash is stored)
    csrf: str | None = None
    locked_until: datetime | None = None


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def sign_in(session: Session, login: str, password: str, now: datetime | None = None) -> Attempt:
    """Check the password; MAX_FAILURES wrong ones in a row lock the account for LOCK_MINUTES
    (a locked account is refused even with the right password)."""
    now = now or utcnow()
    member = session.execute(select(StaffMember).where(StaffMember.console_login == login.strip())
                             ).scalar_one_or_none() if login.strip() else None
    if member is None:
        password_matches(password, hash_password("not a password"))  # the same time as a real check
        return Attempt(SignIn.WRONG)
    if member.locked_until is not None and member.locked_until > now:
        return Attempt(SignIn.LOCKED, member, locked_until=member.locked_until)
    if member.disabled_at is not None or not password_matches(password, member.password_hash):
        member.failed_logins = (member.failed_logins or 0) + 1
        if member.failed_logins >= MAX_FAILURES:
            member.locked_until = now + timedelta(minutes=LOCK_MINUTES)
            member.failed_logins = 0
            log.warning("console: staff %s locked for %d min after %d failed sign-ins", member.id, LOCK_MINUTES,
                        MAX_FAILURES)
            return Attempt(SignIn.LOCKED, member, locked_until=member.locked_until)
        return Attempt(SignIn.WRONG, member)
    member.failed_logins, member.locked_until = 0, None
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    session.add(ConsoleSession(id_hash=_digest(session_id), staff_id=member.id, csrf=csrf, created_at=now,
                               last_seen_at=now, expires_at=now + timedelta(hours=SESSION_HOURS)))
    return Attempt(SignIn.OK, member, session_id, csrf)


def live_session(session: Session, session_id: str, now: datetime | None = None) -> ConsoleSession | None:
    """The session this cookie opens, if it has not expired, idled out or been signed out, and
    its staff member is still enabled; its idle clock restarts."""
    if not session_id:
        return None
    now = now or utcnow()
    found = session.get(ConsoleSession, _digest(session_id))
    if found is None or found.revoked_at is not None or found.expires_at <= now \
            or found.last_seen_at + timedelta(minutes=IDLE_MINUTES) <= now or found.staff.disabled_at is not None:
        return None
    found.last_seen_at = now
    return found


def sign_out(session: Session, session_id: str, now: datetime | None = None) -> None:
    found = session.get(ConsoleSession, _digest(session_id)) if session_id else None
    if found is not None and found.revoked_at is None:
        found.revoked_at = now or utcnow()


def sign_out_everywhere(session: Session, staff_id: int, now: datetime | None = None) -> None:
    """Disabling a person ends their sessions too."""
    session.execute(update(ConsoleSession).where(ConsoleSession.staff_id == staff_id,
                                                 ConsoleSession.revoked_at.is_(None))
                    .values(revoked_at=now or utcnow()))
