"""The staff directory: who works here, their roles and projects, channel identities and API tokens.

A token is shown once, when issued; the store keeps its SHA-256 only, so a copy of the
database signs nobody in. Disabling a member revokes every token of theirs.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any, Collection, Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.core.access import ALL_PROJECTS, ROLE_LABELS, Principal, Role
from bot.core.clock import utcnow
from bot.core.privacy import mask_phone
from bot.db.models import StaffMember, StaffToken

MIN_TOKEN_LENGTH = 16
DEMO_EMPLOYEE_NUMBER = "demo"
DEMO_NAME = "演示员工"

# Column lengths of staff_members / staff_tokens.
_NAME_LENGTH = 64
_NUMBER_LENGTH = 32
_PHONE_LENGTH = 32
_CHANNEL_ID_LENGTH = 64
_LABEL_LENGTH = 64


class StaffError(ValueError):
    """A directory change that cannot be made; nothing was changed."""


def _text(value: str | None, what: str, limit: int, *, required: bool = False) -> str:
    """`value` stripped; "" when absent (and not required)."""
    cleaned = (value or "").strip()
    if required and not cleaned:
        raise StaffError(f"{what} must not be empty")
    if len(cleaned) > limit:
        raise StaffError(f"{what} {cleaned!r} is longer than {limit} characters")
    return cleaned


def _roles(roles: Iterable[str]) -> list[str]:
    known = {role.value for role in Role}
    chosen: list[str] = []
    for raw in roles:
        role = raw.strip()
        if role not in known:
            raise StaffError(f"unknown role {raw!r} (known: {', '.join(role.value for role in Role)})")
        if role not in chosen:
            chosen.append(role)
    if not chosen:
        raise StaffError("a staff member needs at least one role")
    return chosen


def _projects(projects: Iterable[str], known_projects: Collection[str]) -> list[str]:
    chosen: list[str] = []
    for raw in projects:
        project = raw.strip()
        if project != ALL_PROJECTS and project not in known_projects:
            raise StaffError(f"unknown project {raw!r} (known: {', '.join(sorted(known_projects)) or 'none'}; "
                             f"or {ALL_PROJECTS} for every project)")
        if project not in chosen:
            chosen.append(project)
    if not chosen:
        raise StaffError("a staff member needs at least one project (or * for every project)")
    return [ALL_PROJECTS] if ALL_PROJECTS in chosen else chosen


def _check_unique(session: Session, column: Any, value: object, what: str) -> None:
    if value is not None and session.scalar(select(StaffMember.id).where(column == value)) is not None:
        raise StaffError(f"{what} {value!r} already belongs to another staff member")


def add_staff(session: Session, *, name: str, employee_number: str, roles: Iterable[str], projects: Iterable[str],
              known_projects: Collection[str], phone: str = "", telegram_user_id: int | None = None,
              wecom_user_id: str | None = None, console_login: str | None = None,
              now: datetime | None = None) -> StaffMember:
    now = now or utcnow()
    member = StaffMember(
        name=_text(name, "name", _NAME_LENGTH, required=True),
        employee_number=_text(employee_number, "employee number", _NUMBER_LENGTH, required=True),
        phone=_text(phone, "phone", _PHONE_LENGTH),
        roles=_roles(roles),
        projects=_projects(projects, known_projects),
        telegram_user_id=telegram_user_id,
        # Absent channel identities are NULL: the unique constraints allow many of those.
        wecom_user_id=_text(wecom_user_id, "WeCom user id", _CHANNEL_ID_LENGTH) or None,
        console_login=_text(console_login, "console login", _CHANNEL_ID_LENGTH) or None,
        created_at=now,
        updated_at=now,
    )
    if telegram_user_id is not None and telegram_user_id <= 0:
        raise StaffError(f"Telegram user id {telegram_user_id} is not a user id (a positive number)")
    _check_unique(session, StaffMember.employee_number, member.employee_number, "employee number")
    _check_unique(session, StaffMember.telegram_user_id, member.telegram_user_id, "Telegram user id")
    _check_unique(session, StaffMember.wecom_user_id, member.wecom_user_id, "WeCom user id")
    _check_unique(session, StaffMember.console_login, member.console_login, "console login")
    session.add(member)
    session.flush()  # the id, for tokens and audit rows
    return member


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(session: Session, member: StaffMember, *, label: str = "", now: datetime | None = None,
                token: str | None = None) -> str:
    """A new API token for `member`, returned in clear this once; only its hash is stored.

    `token` registers a given token instead (development: the STAFF_API_TOKEN a newcomer set)."""
    if member.disabled_at is not None:
        raise StaffError(f"staff member {member.employee_number} is disabled: no token is issued")
    if token is None:
        token = secrets.token_urlsafe(32)
    elif len(token) < MIN_TOKEN_LENGTH:
        raise StaffError(f"a token needs at least {MIN_TOKEN_LENGTH} characters")
    digest = hash_token(token)
    if session.scalar(select(StaffToken.id).where(StaffToken.token_hash == digest)) is not None:
        raise StaffError("this token is already registered")
    session.add(StaffToken(staff_id=member.id, token_hash=digest, label=_text(label, "label", _LABEL_LENGTH),
                           created_at=now or utcnow()))
    session.flush()
    return token


def authenticate_token(session: Session, token: str, now: datetime | None = None) -> StaffMember | None:
    """The enabled member a live token belongs to, else None. The token is never logged."""
    if not token:
        return None
    found = session.scalar(select(StaffToken).where(StaffToken.token_hash == hash_token(token)))
    if found is None or found.revoked_at is not None or found.staff.disabled_at is not None:
        return None
    found.last_used_at = now or utcnow()
    return found.staff


def find_staff(session: Session, employee_number: str) -> StaffMember | None:
    return session.scalar(select(StaffMember).where(StaffMember.employee_number == employee_number.strip()))


def by_telegram_user(session: Session, user_id: int) -> StaffMember | None:
    return session.scalar(select(StaffMember).where(StaffMember.telegram_user_id == user_id,
                                                    StaffMember.disabled_at.is_(None)))


def list_staff(session: Session, *, include_disabled: bool = True) -> list[StaffMember]:
    query = select(StaffMember).order_by(StaffMember.employee_number)
    if not include_disabled:
        query = query.where(StaffMember.disabled_at.is_(None))
    return list(session.scalars(query))


def disable_staff(session: Session, employee_number: str, now: datetime | None = None) -> StaffMember:
    """Disable a member and revoke their tokens; disabling twice keeps the first time."""
    member = find_staff(session, employee_number)
    if member is None:
        raise StaffError(f"no staff member with employee number {employee_number!r}")
    now = now or utcnow()
    if member.disabled_at is None:
        member.disabled_at = member.updated_at = now
    session.execute(update(StaffToken).where(StaffToken.staff_id == member.id, StaffToken.revoked_at.is_(None))
                    .values(revoked_at=now))
    return member


def _known_roles(values: Iterable[str]) -> frozenset[Role]:
    # A role dropped from the code since the row was written grants nothing.
    known = {role.value: role for role in Role}
    return frozenset(known[value] for value in values if value in known)


def principal_of(member: StaffMember) -> Principal:
    """The member as the access rules see them; a disabled member holds no role."""
    roles = frozenset() if member.disabled_at is not None else _known_roles(member.roles or [])
    return Principal(staff_id=member.id, name=member.name, roles=roles, projects=frozenset(member.projects or []))


def ensure_demo_staff(session: Session, *, known_projects: Collection[str], token: str | None,
                      now: datetime | None = None) -> tuple[StaffMember, str | None]:
    """Development only (the caller checks): 演示员工 with every role in every project, and
    `token` registered for them unless it is registered already. Returns the token only when
    it was registered by this call."""
    now = now or utcnow()
    member = find_staff(session, DEMO_EMPLOYEE_NUMBER)
    every_role = [role.value for role in Role]
    if member is None:
        member = add_staff(session, name=DEMO_NAME, employee_number=DEMO_EMPLOYEE_NUMBER, roles=every_role,
                           projects=[ALL_PROJECTS], known_projects=known_projects, now=now)
    elif member.roles != every_role or member.projects != [ALL_PROJECTS]:
        # Roles added to the code since the demo member was created: the demo keeps every one.
        member.roles, member.projects, member.updated_at = every_role, [ALL_PROJECTS], now
    if token is None:
        return member, None
    if session.scalar(select(StaffToken.id).where(StaffToken.token_hash == hash_token(token))) is not None:
        return member, None
    return member, issue_token(session, member, label="development", now=now, token=token)


def staff_view(member: StaffMember) -> dict[str, Any]:
    roles = list(member.roles or [])
    return {
        "id": member.id,
        "employee_number": member.employee_number,
        "name": member.name,
        "phone": mask_phone(member.phone),
        "roles": roles,
        "role_labels": [ROLE_LABELS[role] for role in Role if role.value in roles],
        "projects": list(member.projects or []),
        "telegram_user_id": member.telegram_user_id,
        "wecom_user_id": member.wecom_user_id,
        "console_login": member.console_login,
        "disabled": member.disabled_at is not None,
    }
