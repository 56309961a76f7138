"""Command line for the staff directory and the audit trail: `staff add|list|disable|token` and `audit`.

Managing staff needs a shell on the server (like `migrate`); reading the audit trail is itself
a request of a named staff member (--by), authorised and audited like any other.
"""
from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from datetime import date, datetime, time, timedelta
from typing import Any, Collection, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.cases.access import audit_entries, audit_view, authorize
from bot.cases.sign_in import PasswordError, set_password
from bot.cases.staff_directory import (
    StaffError,
    add_staff,
    disable_staff,
    find_staff,
    issue_token,
    list_staff,
    principal_of,
    staff_view,
)
from bot.core.access import ALL_PROJECTS, ROLE_LABELS, Permission, Principal, Role, visible_projects
from bot.core.clock import to_utc_naive
from bot.db.models import StaffMember
from bot.db.store import TicketStore


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number")
    return number


def add_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `staff` and `audit` to the main command line's subcommands."""
    staff = sub.add_parser("staff", help="the staff directory: members, roles, projects, API tokens")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    add = staff_sub.add_parser("add", help="add a staff member")
    add.add_argument("--name", required=True)
    add.add_argument("--employee-number", required=True, help="工号, unique")
    roles = ", ".join(f"{role.value} ({ROLE_LABELS[role]})" for role in Role)
    add.add_argument("--role", action="append", required=True, dest="roles", help=f"repeatable: {roles}")
    add.add_argument("--project", action="append", required=True, dest="projects",
                     help="repeatable: a project code, or * for every project")
    add.add_argument("--phone", default="")
    add.add_argument("--telegram-user-id", type=int)
    add.add_argument("--wecom-user-id")
    add.add_argument("--console-login")
    listing = staff_sub.add_parser("list", help="every staff member (phones masked)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--enabled-only", action="store_true", help="leave out disabled members")
    disable = staff_sub.add_parser("disable", help="disable a staff member and revoke their tokens")
    disable.add_argument("employee_number")
    token = staff_sub.add_parser("token", help="issue an API token (shown once)")
    token.add_argument("employee_number")
    token.add_argument("--label", default="", help="what the token is for, e.g. laptop")
    password = staff_sub.add_parser("password", help="set the web console password (read from stdin or asked)")
    password.add_argument("employee_number")
    password.add_argument("--login", help="the console login; default: the one on file, else the employee number")

    audit = sub.add_parser("audit", help="read the audit trail (needs read_audit; the read is audited)")
    audit.add_argument("--by", required=True, metavar="EMPLOYEE_NUMBER", help="who is reading (audited)")
    audit.add_argument("--staff", metavar="EMPLOYEE_NUMBER", help="only this staff member's requests")
    audit.add_argument("--project")
    audit.add_argument("--ticket", metavar="NUMBER")
    audit.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="from this local day on")
    audit.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="up to and including this local day")
    audit.add_argument("--refused-only", action="store_true")
    audit.add_argument("--limit", type=_positive, default=100)
    audit.add_argument("--json", action="store_true", help="one JSON object per line")


def run_staff(args: argparse.Namespace, store: TicketStore, project_codes: Collection[str]) -> int:
    issued: tuple[str, str] | None = None  # (employee number, token)
    try:
        with store.transaction() as session:
            if args.staff_command == "add":
                member = add_staff(session, name=args.name, employee_number=args.employee_number, roles=args.roles,
                                   projects=args.projects, known_projects=project_codes, phone=args.phone,
                                   telegram_user_id=args.telegram_user_id, wecom_user_id=args.wecom_user_id,
                                   console_login=args.console_login)
                print(f"added {_describe(staff_view(member))}")
            elif args.staff_command == "list":
                for view in map(staff_view, list_staff(session, include_disabled=not args.enabled_only)):
                    print(json.dumps(view, ensure_ascii=False) if args.json else _describe(view))
            elif args.staff_command == "disable":
                member = disable_staff(session, args.employee_number)
                print(f"disabled {member.employee_number}; every token of theirs is revoked")
            elif args.staff_command == "token":
                member = _member(session, args.employee_number)
                issued = member.employee_number, issue_token(session, member, label=args.label)
            elif args.staff_command == "password":
                member = _member(session, args.employee_number)
                member.console_login = (args.login or member.console_login or member.employee_number).strip()[:64]
                set_password(session, member, _read_password())
                print(f"console password set for {member.employee_number} (login: {member.console_login})")
    except (StaffError, PasswordError) as exc:
        print(f"not done: {exc}", file=sys.stderr)
        return 1
    if issued is not None:  # after the commit: a token printed is a token stored
        employee_number, token = issued
        print(token)
        print(f"API token for {employee_number}: shown only once, store it now (令牌只显示这一次，请立即保存)",
              file=sys.stderr)
    return 0


def _read_password() -> str:
    """From a pipe (scripts, tests) or asked twice at a terminal; never from the command line."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    import getpass
    first, second = getpass.getpass("新密码: "), getpass.getpass("再输入一次: ")
    if first != second:
        raise PasswordError("the two passwords differ")
    return first


def _member(session: Session, employee_number: str) -> StaffMember:
    member = find_staff(session, employee_number)
    if member is None:
        raise StaffError(f"no staff member with employee number {employee_number!r}")
    return member


def _describe(view: dict[str, Any]) -> str:
    state = " (disabled)" if view["disabled"] else ""
    return (f"{view['employee_number']} {view['name']}{state}: {'/'.join(view['role_labels'])}; "
            f"projects {', '.join(view['projects'])}")


def _local_midnight(day: date, timezone: ZoneInfo) -> datetime:
    return to_utc_naive(datetime.combine(day, time(0), tzinfo=timezone))


def run_audit(args: argparse.Namespace, store: TicketStore, project_codes: Collection[str],
              timezone: ZoneInfo) -> int:
    if args.project is not None and args.project not in project_codes:
        print(f"unknown project {args.project!r}", file=sys.stderr)
        return 1
    filters = " ".join(f"{name}={value}" for name, value in (
        ("staff", args.staff), ("project", args.project), ("ticket", args.ticket), ("since", args.since),
        ("until", args.until), ("refused_only", args.refused_only or None), ("limit", args.limit))
        if value is not None)
    with store.transaction() as session:
        reader = find_staff(session, args.by)
        # An unknown reader is refused by the rules like anyone else, and the attempt is audited.
        principal = principal_of(reader) if reader is not None else Principal(
            staff_id=None, name=args.by.strip()[:64], roles=frozenset(), projects=frozenset())
        decision = authorize(session, principal, Permission.READ_AUDIT, interface="cli", project=args.project,
                             detail=filters)
        subject = find_staff(session, args.staff) if args.staff else None
    if not decision.allowed:
        print(f"refused: {args.by} may not read the audit trail ({decision.reason})", file=sys.stderr)
        return 2
    if args.staff and subject is None:
        print(f"no staff member with employee number {args.staff!r}", file=sys.stderr)
        return 1
    # A company-wide read shows the reader's projects only (and company-wide rows to whoever serves all).
    scope = None if args.project or ALL_PROJECTS in principal.projects else visible_projects(principal, project_codes)
    with store.transaction() as session:
        views = [audit_view(entry, timezone) for entry in audit_entries(
            session, staff_id=subject.id if subject is not None else None, project=args.project, projects=scope,
            ticket_number=args.ticket, since=_local_midnight(args.since, timezone) if args.since else None,
            until=_local_midnight(args.until + timedelta(days=1), timezone) if args.until else None,
            allowed=False if args.refused_only else None, limit=args.limit)]
    if args.json:
        for view in views:
            print(json.dumps(view, ensure_ascii=False))
    else:
        print(_table(views))
    return 0


_COLUMNS = (("at", "时间"), ("staff_name", "员工"), ("action", "操作"), ("allowed", "结果"), ("interface", "渠道"),
            ("project", "项目"), ("ticket_number", "工单"), ("personal_data", "个人信息"), ("detail", "说明"))


def _cell(key: str, value: Any) -> str:
    if key == "allowed":
        return "允许" if value else "拒绝"
    if key == "personal_data":
        return "明文" if value else "-"
    return "-" if value in (None, "") else str(value)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _table(views: Sequence[dict[str, Any]]) -> str:
    if not views:
        return "（没有符合条件的审计记录）"
    rows = [[label for _, label in _COLUMNS]] + [[_cell(key, view[key]) for key, _ in _COLUMNS] for view in views]
    widths = [max(_width(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)).rstrip()
                     for row in rows)
