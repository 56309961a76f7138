"""Who may do what, where (bot.core.access), and the audit row every authorisation leaves
(bot.cases.access): allowed or refused, the row is kept, and the trail can be searched."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.cases.access import AccessDenied, audit_entries, audit_view, authorize
from bot.cases.staff_directory import add_staff, principal_of
from bot.core.access import (
    ALL_PROJECTS,
    PERMISSIONS,
    ROLE_LABELS,
    Permission,
    Principal,
    Role,
    decide,
    visible_projects,
)
from bot.db.models import AuditEntry, Resident, Ticket

P = Permission
AGENT_PERMISSIONS = {P.VIEW_CASE, P.ACT_ON_CASE, P.VIEW_ALERTS, P.ACK_ALERT}
SUPERVISOR_PERMISSIONS = AGENT_PERMISSIONS | {P.CONFIRM_PHONE, P.VIEW_JOBS, P.RETRY_JOB, P.SEND_NOTICES}
EXPECTED = {
    Role.AGENT: AGENT_PERMISSIONS,
    Role.TECHNICIAN: {P.VIEW_CASE, P.ACT_ON_CASE},
    Role.SUPERVISOR: SUPERVISOR_PERMISSIONS,
    Role.PROJECT_HEAD: SUPERVISOR_PERMISSIONS | {P.READ_AUDIT, P.VIEW_REPORTS},
    Role.COMPANY_CS: SUPERVISOR_PERMISSIONS | {P.VIEW_REPORTS},
    Role.MANAGER: {P.VIEW_CASE, P.VIEW_ALERTS, P.VIEW_JOBS, P.READ_AUDIT, P.VIEW_REPORTS},
    Role.ADMIN: set(Permission),
}
# role: (contact data unmasked, special-group tags shown)
EXPECTED_FLAGS = {
    Role.AGENT: (False, True),
    Role.TECHNICIAN: (False, False),
    Role.SUPERVISOR: (True, True),
    Role.PROJECT_HEAD: (True, True),
    Role.COMPANY_CS: (True, True),
    Role.MANAGER: (True, False),
    Role.ADMIN: (True, False),
}
NOW = datetime(2025, 3, 10, 2, 0)  # naive UTC: 10:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


def principal(*roles: Role, projects: tuple[str, ...] = ("p1",), staff_id: int | None = 7) -> Principal:
    return Principal(staff_id=staff_id, name="王小红", roles=frozenset(roles), projects=frozenset(projects))


# --- the rules (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_each_role_holds_exactly_its_permissions(role: Role):
    assert PERMISSIONS[role] == EXPECTED[role]
    for permission in Permission:
        decision = decide(principal(role), permission, "p1")
        assert decision.allowed is (permission in EXPECTED[role]), (role, permission, decision.reason)


def test_every_role_has_a_chinese_label():
    assert ROLE_LABELS == {Role.AGENT: "客服", Role.TECHNICIAN: "维修", Role.SUPERVISOR: "主管",
                           Role.PROJECT_HEAD: "项目负责人", Role.COMPANY_CS: "公司客服部", Role.MANAGER: "经理",
                           Role.ADMIN: "系统管理员"}


def test_a_refusal_names_the_role_and_the_permission():
    decision = decide(principal(Role.AGENT), P.READ_AUDIT, "p1")
    assert not decision.allowed
    assert decision.reason == "role agent may not read_audit"
    assert decide(principal(Role.AGENT, Role.TECHNICIAN), P.RETRY_JOB, "p1").reason == \
        "roles agent, technician may not retry_job"


def test_a_principal_not_serving_the_project_is_refused_even_as_admin():
    decision = decide(principal(Role.ADMIN, projects=("p1",)), P.VIEW_CASE, "p2")
    assert not decision.allowed
    assert decision.reason == "not a staff member of project p2"
    assert (decision.contact_data, decision.special_groups) == (False, False)
    assert decide(principal(Role.AGENT, projects=("p1", "p2")), P.VIEW_CASE, "p2").allowed


def test_every_project_is_served_with_the_star():
    everywhere = principal(Role.AGENT, projects=(ALL_PROJECTS,))
    assert everywhere.serves("p9")
    assert decide(everywhere, P.VIEW_CASE, "p9").allowed
    assert not principal(Role.AGENT).serves("p9")


@pytest.mark.parametrize("role", list(Role))
def test_masking_flags_follow_the_role(role: Role):
    permission = next(iter(EXPECTED[role]))
    decision = decide(principal(role), permission, "p1")
    assert decision.allowed
    assert (decision.contact_data, decision.special_groups) == EXPECTED_FLAGS[role]


def test_flags_of_several_roles_add_up():
    decision = decide(principal(Role.AGENT, Role.MANAGER), P.VIEW_CASE, "p1")
    assert (decision.contact_data, decision.special_groups) == (True, True)


def test_a_principal_without_roles_is_refused_everywhere():
    nobody = principal(projects=(ALL_PROJECTS,))
    for permission in Permission:
        for project in ("p1", None):
            decision = decide(nobody, permission, project)
            assert not decision.allowed
            assert (decision.contact_data, decision.special_groups) == (False, False)
    assert visible_projects(nobody, {"p1", "p2"}) == frozenset()


def test_a_company_wide_request_needs_only_the_permission():
    agent = principal(Role.AGENT, projects=("p1",))
    assert decide(agent, P.VIEW_ALERTS, None).allowed
    refused = decide(agent, P.VIEW_JOBS, None)
    assert not refused.allowed and refused.reason == "role agent may not view_jobs"


def test_visible_projects():
    codes = {"p1", "p2", "p3"}
    assert visible_projects(principal(Role.AGENT, projects=(ALL_PROJECTS,)), codes) == frozenset(codes)
    assert visible_projects(principal(Role.AGENT, projects=("p1", "p3", "gone")), codes) == {"p1", "p3"}
    assert visible_projects(principal(Role.AGENT, projects=("p4",)), codes) == frozenset()


def test_actor_id():
    assert principal(Role.AGENT, staff_id=12).actor_id == "staff:12"


# --- authorising and the audit trail (store) ------------------------------------------------


def staff(session, number: str, *roles: Role, projects=("p1",)) -> Principal:  # type: ignore[no-untyped-def]
    member = add_staff(session, name=f"员工{number}", employee_number=number, roles=[r.value for r in roles],
                       projects=list(projects), known_projects={"p1", "p2"}, now=NOW)
    return principal_of(member)


def ticket(session, project: str, number: str) -> Ticket:  # type: ignore[no-untyped-def]
    resident = Resident(project=project, openid=f"o-{number}", name="李四", phone="13812345678", room="1栋101",
                        tags=[], created_at=NOW, updated_at=NOW)
    case = Ticket(number=number, project=project, kind="repair", status="new", description="水管漏水",
                  channel="wechat", resident=resident, created_at=NOW, updated_at=NOW)
    session.add(case)
    session.flush()
    return case


def all_entries(store) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with store.transaction() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_an_allowed_request_is_audited_with_the_ticket_and_resident(store):
    with store.transaction() as session:
        supervisor = staff(session, "s1", Role.SUPERVISOR)
        case = ticket(session, "p1", "R250310001")
        resident_id = case.resident_id
        decision = authorize(session, supervisor, P.VIEW_CASE, interface="api", ticket=case, detail="ticket view",
                             now=NOW)
    assert decision.allowed and decision.contact_data
    [entry] = all_entries(store)
    assert (entry.staff_id, entry.staff_name, entry.action, entry.allowed, entry.interface) == \
        (supervisor.staff_id, "员工s1", "view_case", True, "api")
    assert (entry.project, entry.ticket_number, entry.resident_id) == ("p1", "R250310001", resident_id)
    assert entry.personal_data is True
    assert (entry.at, entry.detail) == (NOW, "ticket view")


def test_a_refusal_is_audited_and_its_row_survives_the_commit(store, caplog):
    with store.transaction() as session:
        agent = staff(session, "a1", Role.AGENT, projects=("p1",))
        case = ticket(session, "p2", "R250310002")
    with caplog.at_level(logging.WARNING, logger="bot.cases.access"):
        with store.transaction() as session:
            case = session.get(Ticket, case.id)
            decision = authorize(session, agent, P.VIEW_CASE, interface="telegram", ticket=case, now=NOW)
            assert not decision.allowed  # authorize refuses without raising: the caller commits first
    [entry] = all_entries(store)
    assert (entry.allowed, entry.project, entry.ticket_number, entry.personal_data) == \
        (False, "p2", "R250310002", False)
    assert (entry.staff_id, entry.interface, entry.action) == (agent.staff_id, "telegram", "view_case")
    # The log says who (by id) and why, and no name of staff or resident.
    text = caplog.text
    assert f"staff:{agent.staff_id}" in text and "not a staff member of project p2" in text
    assert "员工a1" not in text and "李四" not in text


def test_a_caller_raising_after_the_commit_keeps_the_refusal(store):
    with store.transaction() as session:
        technician = staff(session, "t1", Role.TECHNICIAN)
    with pytest.raises(AccessDenied) as raised:
        with store.transaction() as session:
            decision = authorize(session, technician, P.RETRY_JOB, interface="api", project="p1", now=NOW)
        if not decision.allowed:
            raise AccessDenied(decision)
    assert raised.value.decision.reason == "role technician may not retry_job"
    assert [(e.action, e.allowed) for e in all_entries(store)] == [("retry_job", False)]


def test_the_tickets_project_is_decided_on_not_a_disagreeing_argument(store):
    with store.transaction() as session:
        agent = staff(session, "a2", Role.AGENT, projects=("p1",))
        case = ticket(session, "p2", "R250310003")
        decision = authorize(session, agent, P.VIEW_CASE, interface="api", project="p1", ticket=case, now=NOW)
    assert not decision.allowed
    assert all_entries(store)[0].project == "p2"


def test_a_principal_without_a_staff_row_is_audited_too(store):
    stranger = Principal(staff_id=None, name="unknown", roles=frozenset(), projects=frozenset())
    with store.transaction() as session:
        assert not authorize(session, stranger, P.READ_AUDIT, interface="cli", now=NOW).allowed
    [entry] = all_entries(store)
    assert (entry.staff_id, entry.staff_name, entry.project, entry.allowed) == (None, "unknown", None, False)


def test_audit_entries_filter_and_come_newest_first(store):
    with store.transaction() as session:
        head = staff(session, "h1", Role.PROJECT_HEAD, projects=("p1",))
        agent = staff(session, "a3", Role.AGENT, projects=("p1", "p2"))
        case = ticket(session, "p2", "R250310004")
        authorize(session, head, P.READ_AUDIT, interface="cli", project="p1", now=NOW)
        authorize(session, agent, P.VIEW_CASE, interface="api", ticket=case, now=NOW + timedelta(hours=1))
        authorize(session, agent, P.RETRY_JOB, interface="api", project="p2", now=NOW + timedelta(hours=2))
        authorize(session, agent, P.ACK_ALERT, interface="telegram", project="p1", now=NOW + timedelta(days=1))
    with store.transaction() as session:
        def actions(**filters) -> list[str]:  # type: ignore[no-untyped-def]
            return [entry.action for entry in audit_entries(session, **filters)]

        assert actions() == ["ack_alert", "retry_job", "view_case", "read_audit"]
        assert actions(staff_id=agent.staff_id) == ["ack_alert", "retry_job", "view_case"]
        assert actions(project="p2") == ["retry_job", "view_case"]
        assert actions(projects={"p1"}) == ["ack_alert", "read_audit"]
        assert actions(ticket_number="R250310004") == ["view_case"]
        assert actions(since=NOW + timedelta(hours=1), until=NOW + timedelta(days=1)) == ["retry_job", "view_case"]
        assert actions(since=(NOW + timedelta(hours=2)).replace(tzinfo=ZoneInfo("UTC")).astimezone(SHANGHAI)) == \
            ["ack_alert", "retry_job"]
        assert actions(action="view_case") == ["view_case"]
        assert actions(allowed=False) == ["retry_job"]
        assert actions(allowed=True, limit=2) == ["ack_alert", "view_case"]
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 4
        with pytest.raises(ValueError):
            audit_entries(session, limit=0)


def test_audit_view_is_json_ready_in_local_time(store):
    with store.transaction() as session:
        head = staff(session, "h2", Role.PROJECT_HEAD)
        authorize(session, head, P.READ_AUDIT, interface="cli", project="p1", detail="project=p1", now=NOW)
    with store.transaction() as session:
        [entry] = audit_entries(session)
        view = audit_view(entry, SHANGHAI)
    assert view == {"id": entry.id, "at": "2025-03-10T10:00:00+08:00", "staff_id": head.staff_id,
                    "staff_name": "员工h2", "action": "read_audit", "allowed": True, "interface": "cli",
                    "project": "p1", "ticket_number": None, "resident_id": None, "personal_data": True,
                    "detail": "project=p1"}
