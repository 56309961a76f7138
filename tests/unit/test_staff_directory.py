"""The staff directory (bot.cases.staff_directory) and its command line (bot.app.staff_cli):
members are validated, tokens are shown once and stored hashed, a disabled member signs in
nowhere, the demo member is made once, and reading the audit trail is itself authorised and audited."""
from __future__ import annotations

import argparse
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.app.staff_cli import add_parsers, run_audit, run_staff
from bot.cases.access import authorize
from bot.cases.staff_directory import (
    DEMO_EMPLOYEE_NUMBER,
    StaffError,
    add_staff,
    authenticate_token,
    by_telegram_user,
    disable_staff,
    ensure_demo_staff,
    find_staff,
    hash_token,
    issue_token,
    list_staff,
    principal_of,
    staff_view,
)
from bot.core.access import ALL_PROJECTS, Permission, Role, decide
from bot.db.models import AuditEntry, Base, StaffMember, StaffToken

PROJECTS = ("p1", "p2")
NOW = datetime(2025, 3, 10, 2, 0)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def member(session, number: str = "1001", **overrides) -> StaffMember:  # type: ignore[no-untyped-def]
    fields: dict[str, Any] = dict(name="王小红", employee_number=number, roles=["agent"], projects=["p1"],
                                  known_projects=PROJECTS, now=NOW)
    fields.update(overrides)
    return add_staff(session, **fields)


def count(store, table) -> int:  # type: ignore[no-untyped-def]
    with store.transaction() as session:
        return session.scalar(select(func.count()).select_from(table))


def everything_stored(store) -> str:  # type: ignore[no-untyped-def]
    """Every value of every table, as text."""
    with store.transaction() as session:
        return "\n".join(repr(tuple(row)) for table in Base.metadata.sorted_tables
                         for row in session.execute(select(table)))


# --- members -------------------------------------------------------------------------------


def test_a_member_is_added_with_clean_values(store):
    with store.transaction() as session:
        added = member(session, name=" 王小红 ", roles=["agent", "supervisor", "agent"], projects=["p2", "p1"],
                       phone="13812345678", telegram_user_id=555, wecom_user_id="wangxh", console_login="")
    with store.transaction() as session:
        found = find_staff(session, "1001")
        assert found is not None and found.id == added.id
        assert (found.name, found.roles, found.projects) == ("王小红", ["agent", "supervisor"], ["p2", "p1"])
        assert (found.telegram_user_id, found.wecom_user_id, found.console_login) == (555, "wangxh", None)
        view = staff_view(found)
    assert view["phone"] == "138****5678"
    assert view["role_labels"] == ["客服", "主管"]
    assert (view["disabled"], view["telegram_user_id"]) == (False, 555)


def test_every_project_is_stored_as_the_star_alone(store):
    with store.transaction() as session:
        assert member(session, projects=["p1", "*"]).projects == [ALL_PROJECTS]


@pytest.mark.parametrize("overrides, message", [
    ({"name": "  "}, "name must not be empty"),
    ({"employee_number": ""}, "employee number must not be empty"),
    ({"roles": ["agent", "boss"]}, "unknown role 'boss'"),
    ({"roles": []}, "at least one role"),
    ({"projects": ["p3"]}, "unknown project 'p3'"),
    ({"projects": []}, "at least one project"),
    ({"employee_number": "1001"}, "employee number '1001' already belongs"),
    ({"telegram_user_id": 555}, "Telegram user id 555 already belongs"),
    ({"wecom_user_id": "wangxh"}, "WeCom user id 'wangxh' already belongs"),
    ({"console_login": "wang"}, "console login 'wang' already belongs"),
    ({"telegram_user_id": -5}, "Telegram user id -5 is not a user id"),
])
def test_a_bad_member_is_refused_naming_the_value(store, overrides, message):
    with store.transaction() as session:
        member(session, "1001", telegram_user_id=555, wecom_user_id="wangxh", console_login="wang")
    fields = {"employee_number": "1002", **overrides}
    with pytest.raises(StaffError, match=message):
        with store.transaction() as session:
            member(session, **fields)
    assert count(store, StaffMember) == 1


def test_telegram_lookup_and_listing(store):
    with store.transaction() as session:
        member(session, "1001", telegram_user_id=555)
        member(session, "1002", name="张三")
        disable_staff(session, "1002", now=NOW)
    with store.transaction() as session:
        found = by_telegram_user(session, 555)
        assert found is not None and found.employee_number == "1001"
        assert by_telegram_user(session, 556) is None
        assert [m.employee_number for m in list_staff(session)] == ["1001", "1002"]
        assert [m.employee_number for m in list_staff(session, include_disabled=False)] == ["1001"]


# --- tokens --------------------------------------------------------------------------------


def test_a_token_is_returned_once_and_stored_as_its_hash_only(store):
    with store.transaction() as session:
        token = issue_token(session, member(session), label="laptop", now=NOW)
    assert len(token) >= 40
    with store.transaction() as session:
        [stored] = session.scalars(select(StaffToken)).all()
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() == hash_token(token)
        assert stored.label == "laptop"
    assert token not in everything_stored(store)


def test_authentication_by_token(store):
    with store.transaction() as session:
        added = member(session)
        token = issue_token(session, added, now=NOW)
    with store.transaction() as session:
        found = authenticate_token(session, token, now=NOW + timedelta(minutes=5))
        assert found is not None and found.id == added.id
        assert authenticate_token(session, token + "x") is None
        assert authenticate_token(session, "") is None
    with store.transaction() as session:
        assert session.scalars(select(StaffToken)).one().last_used_at == NOW + timedelta(minutes=5)


def test_a_disabled_member_signs_in_nowhere_and_holds_no_role(store):
    with store.transaction() as session:
        added = member(session, telegram_user_id=555)
        token = issue_token(session, added, now=NOW)
    with store.transaction() as session:
        disabled = disable_staff(session, "1001", now=NOW + timedelta(days=1))
        assert disabled.disabled_at == NOW + timedelta(days=1)
    with store.transaction() as session:
        assert authenticate_token(session, token) is None
        assert session.scalars(select(StaffToken)).one().revoked_at == NOW + timedelta(days=1)
        assert by_telegram_user(session, 555) is None
        gone = find_staff(session, "1001")
        principal = principal_of(gone)
        assert principal.roles == frozenset()
        assert not decide(principal, Permission.VIEW_CASE, "p1").allowed
        assert staff_view(gone)["disabled"] is True
        with pytest.raises(StaffError, match="disabled"):
            issue_token(session, gone)
    with pytest.raises(StaffError, match="no staff member with employee number '9999'"):
        with store.transaction() as session:
            disable_staff(session, "9999")


def test_a_revoked_token_stays_refused_even_if_the_member_were_enabled_again(store):
    with store.transaction() as session:
        token = issue_token(session, member(session), now=NOW)
        disable_staff(session, "1001", now=NOW)
    with store.transaction() as session:
        find_staff(session, "1001").disabled_at = None  # type: ignore[union-attr]
    with store.transaction() as session:
        assert authenticate_token(session, token) is None


def test_a_given_token_must_be_long_enough_and_new(store):
    with store.transaction() as session:
        added = member(session)
        with pytest.raises(StaffError, match="at least 16 characters"):
            issue_token(session, added, token="short-token")
        assert issue_token(session, added, token="a-development-token-0001") == "a-development-token-0001"
        with pytest.raises(StaffError, match="already registered"):
            issue_token(session, added, token="a-development-token-0001")


def test_principal_of_a_member():
    row = StaffMember(id=3, name="王小红", employee_number="1001", roles=["agent", "retired_role"], projects=["p1"])
    principal = principal_of(row)
    assert (principal.staff_id, principal.roles, principal.projects) == (3, frozenset({Role.AGENT}),
                                                                         frozenset({"p1"}))


# --- the demo member (development) -----------------------------------------------------------


def test_the_demo_member_is_made_once_with_the_given_token(store):
    token = "dev-staff-api-token-123456"
    with store.transaction() as session:
        demo, issued = ensure_demo_staff(session, known_projects=PROJECTS, token=token, now=NOW)
        assert issued == token
    with store.transaction() as session:
        again, issued_again = ensure_demo_staff(session, known_projects=PROJECTS, token=token, now=NOW)
        assert issued_again is None and again.id == demo.id
    assert (count(store, StaffMember), count(store, StaffToken)) == (1, 1)
    with store.transaction() as session:
        signed_in = authenticate_token(session, token)
        assert signed_in is not None and signed_in.employee_number == DEMO_EMPLOYEE_NUMBER
        assert signed_in.name == "演示员工"
        principal = principal_of(signed_in)
    assert principal.roles == frozenset(Role)
    assert all(decide(principal, permission, "p2").allowed for permission in Permission)
    assert token not in everything_stored(store)


def test_the_demo_member_without_a_token_gets_none(store):
    with store.transaction() as session:
        assert ensure_demo_staff(session, known_projects=PROJECTS, token=None)[1] is None
        assert ensure_demo_staff(session, known_projects=PROJECTS, token=None)[1] is None
    assert (count(store, StaffMember), count(store, StaffToken)) == (1, 0)


# --- the command line ------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def staff_cli(store, *argv: str) -> int:  # type: ignore[no-untyped-def]
    return run_staff(parse("staff", *argv), store, PROJECTS)


def audit_cli(store, *argv: str) -> int:  # type: ignore[no-untyped-def]
    return run_audit(parse("audit", *argv), store, PROJECTS, SHANGHAI)


def test_cli_adds_lists_and_disables(store, capsys):
    assert staff_cli(store, "add", "--name", "王小红", "--employee-number", "1001", "--role", "agent",
                     "--role", "supervisor", "--project", "p1", "--phone", "13812345678",
                     "--telegram-user-id", "555") == 0
    assert "added 1001 王小红: 客服/主管; projects p1" in capsys.readouterr().out
    assert staff_cli(store, "list") == 0
    listed = capsys.readouterr().out
    assert "1001 王小红" in listed
    assert staff_cli(store, "list", "--json") == 0
    [view] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (view["phone"], view["roles"], view["telegram_user_id"]) == ("138****5678", ["agent", "supervisor"], 555)
    assert "13812345678" not in listed
    assert staff_cli(store, "disable", "1001") == 0
    assert "disabled 1001" in capsys.readouterr().out
    with store.transaction() as session:
        assert find_staff(session, "1001").disabled_at is not None  # type: ignore[union-attr]


def test_cli_refuses_a_bad_member_and_changes_nothing(store, capsys):
    assert staff_cli(store, "add", "--name", "王小红", "--employee-number", "1001", "--role", "boss",
                     "--project", "p1") == 1
    captured = capsys.readouterr()
    assert "unknown role 'boss'" in captured.err and captured.out == ""
    assert staff_cli(store, "add", "--name", "王小红", "--employee-number", "1001", "--role", "agent",
                     "--project", "p9") == 1
    assert "unknown project 'p9'" in capsys.readouterr().err
    assert staff_cli(store, "disable", "1001") == 1
    assert "no staff member" in capsys.readouterr().err
    assert count(store, StaffMember) == 0


def test_cli_token_is_printed_once_and_works(store, capsys):
    assert staff_cli(store, "add", "--name", "王小红", "--employee-number", "1001", "--role", "agent",
                     "--project", "*") == 0
    capsys.readouterr()
    assert staff_cli(store, "token", "1001", "--label", "laptop") == 0
    captured = capsys.readouterr()
    [token] = captured.out.split()
    assert "shown only once" in captured.err
    with store.transaction() as session:
        signed_in = authenticate_token(session, token)
        assert signed_in is not None and signed_in.employee_number == "1001"
    assert token not in everything_stored(store)
    assert staff_cli(store, "token", "9999") == 1
    assert "no staff member with employee number '9999'" in capsys.readouterr().err
    assert count(store, StaffToken) == 1


def seed_audit(store) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """A head of p1, an agent of p1 and p2, and their requests of March 2025."""
    with store.transaction() as session:
        head = principal_of(member(session, "h1", name="项目负责人甲", roles=["project_head"], projects=["p1"]))
        agent = principal_of(member(session, "a1", name="客服乙", roles=["agent"], projects=["p1", "p2"]))
        admin = principal_of(member(session, "x1", name="管理员丙", roles=["admin"], projects=["*"]))
        authorize(session, agent, Permission.VIEW_CASE, interface="api", project="p1", now=NOW)
        authorize(session, agent, Permission.RETRY_JOB, interface="api", project="p1", now=NOW + timedelta(days=1))
        authorize(session, agent, Permission.VIEW_CASE, interface="api", project="p2", now=NOW + timedelta(days=2))
        authorize(session, agent, Permission.VIEW_ALERTS, interface="api", now=NOW + timedelta(days=3))
    return {"head": head.staff_id or 0, "agent": agent.staff_id or 0, "admin": admin.staff_id or 0}


def test_cli_audit_refuses_a_reader_without_read_audit_and_keeps_the_refusal(store, capsys):
    ids = seed_audit(store)
    assert audit_cli(store, "--by", "a1") == 2
    captured = capsys.readouterr()
    assert "refused" in captured.err and "role agent may not read_audit" in captured.err
    assert captured.out == ""
    assert audit_cli(store, "--by", "nobody") == 2
    assert "refused" in capsys.readouterr().err
    with store.transaction() as session:
        reads = session.scalars(select(AuditEntry).where(AuditEntry.action == "read_audit")
                                .order_by(AuditEntry.id)).all()
        assert [(e.staff_id, e.staff_name, e.allowed, e.interface) for e in reads] == \
            [(ids["agent"], "客服乙", False, "cli"), (None, "nobody", False, "cli")]


def test_cli_audit_shows_a_project_head_their_projects_only(store, capsys):
    ids = seed_audit(store)
    assert audit_cli(store, "--by", "h1", "--json", "--until", "2025-03-31") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(row["action"], row["project"]) for row in rows] == [("retry_job", "p1"), ("view_case", "p1")]
    assert rows[0]["at"] == "2025-03-11T10:00:00+08:00"
    # The head's own read is in the trail, allowed.
    with store.transaction() as session:
        read = session.scalars(select(AuditEntry).where(AuditEntry.staff_id == ids["head"])).one()
        assert (read.action, read.allowed, read.interface) == ("read_audit", True, "cli")
        assert "until=2025-03-31" in read.detail
    assert audit_cli(store, "--by", "h1", "--project", "p2") == 2
    assert "not a staff member of project p2" in capsys.readouterr().err


def test_cli_audit_filters(store, capsys):
    seed_audit(store)

    def actions(*argv: str) -> list[str]:
        assert audit_cli(store, "--by", "x1", "--json", *argv) == 0
        return [json.loads(line)["action"] for line in capsys.readouterr().out.splitlines()]

    assert actions("--until", "2025-03-31") == ["view_alerts", "view_case", "retry_job", "view_case"]
    assert actions("--since", "2025-03-11", "--until", "2025-03-12") == ["view_case", "retry_job"]
    # A read of one project is audited under that project: this very read comes first.
    assert actions("--project", "p2") == ["read_audit", "view_case"]
    assert actions("--refused-only") == ["retry_job"]
    assert actions("--staff", "a1", "--limit", "1") == ["view_alerts"]
    # Without --until the admin's own reads come first: the trail records who read it.
    assert actions("--limit", "1") == ["read_audit"]
    assert audit_cli(store, "--by", "x1", "--staff", "9999") == 1
    assert "no staff member" in capsys.readouterr().err
    assert audit_cli(store, "--by", "x1", "--project", "p9") == 1
    assert "unknown project 'p9'" in capsys.readouterr().err


def test_cli_audit_prints_a_readable_table(store, capsys):
    seed_audit(store)
    assert audit_cli(store, "--by", "x1", "--refused-only") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["时间", "员工", "操作", "结果", "渠道", "项目", "工单", "个人信息", "说明"]
    assert lines[1].split()[:6] == ["2025-03-11T10:00:00+08:00", "客服乙", "retry_job", "拒绝", "api", "p1"]
    assert audit_cli(store, "--by", "x1", "--ticket", "R000") == 0
    assert "没有符合条件的审计记录" in capsys.readouterr().out


def test_cli_audit_rejects_a_bad_date():
    with pytest.raises(SystemExit) as exited:
        parse("audit", "--by", "x1", "--since", "2025-13-01")
    assert exited.value.code == 2
    with pytest.raises(SystemExit):
        parse("audit", "--since", "2025-03-01")  # --by is required
