"""Staff API: per-person tokens, projects and roles, masking, the audit trail, filters; and the
roster import command."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.app import migrate
from bot.app.gateway import create_staff_app
from bot.cases.residents import bind_resident, import_roster
from bot.cases.staff_directory import add_staff, disable_staff, issue_token
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket, transition
from bot.core.company import Company, load_company
from bot.core.kinds import TicketStatus
from bot.db.models import AuditEntry, Resident, Ticket, TicketEvent
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT, Settings

NOON = datetime(2026, 11, 25, 4, 0)
# The API's "now" (naive UTC): two days after NOON. The repair opened at NOON is overdue then,
# the complaint opened on the 27th is not; the real date never matters.
API_NOW = datetime(2026, 11, 27, 6, 0)
# Who works here (employee number → name, roles, projects); each gets a token of their own.
STAFF = {
    "E01": ("赵客服", ["agent"], ["default"]),
    "E02": ("钱客服", ["agent"], ["default"]),
    "E03": ("孙主管", ["supervisor"], ["default"]),
    "E04": ("李客服", ["agent"], ["binjiang"]),
    "E05": ("周经理", ["manager"], ["*"]),
    "E06": ("吴维修", ["technician"], ["default"]),
    "E07": ("郑离职", ["agent"], ["default"]),
}


@pytest.fixture(scope="module")
def company() -> Company:
    return load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")


@pytest.fixture
def rules(company):  # type: ignore[no-untyped-def]
    return company.rules("default")


# Each person's token, issued by the `api` fixture for the test that is running.
ISSUED: dict[str, str] = {}


@pytest.fixture
def tokens(api) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return dict(ISSUED)


@pytest.fixture
async def api(sqlite_url, company, tmp_path):
    rules = company.rules("default")
    migrate.upgrade(sqlite_url)
    settings = Settings(database_url=sqlite_url)
    server = TestServer(create_staff_app(settings, company, clock=lambda: API_NOW), host="127.0.0.1")
    await server.start_server()
    store = TicketStore(sqlite_url)
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone,tags\n3栋2单元501,王小明,13812345678,独居老人\n", encoding="utf-8")
    issued: dict[str, str] = {}
    with store.transaction() as s:
        for number, (name, roles, projects) in STAFF.items():
            member = add_staff(s, name=name, employee_number=number, roles=roles, projects=projects,
                               known_projects=company.codes, now=NOON)
            issued[number] = issue_token(s, member, now=NOON)
        disable_staff(s, "E07", now=NOON)
        import_roster(s, roster, projects=company.codes, default_project="default")
        bind_resident(s, rules, openid="oStaffView1", room="3栋2单元501", phone="13812345678", channel="wechat")
        open_repair_ticket(s, rules, openid="oStaffView1", description="灯坏了，电话13812345678",
                           room="3栋2单元501", visit_time="明天", channel="wechat", now=NOON)
        complaint = open_complaint_ticket(s, rules, openid="oOther", description="楼道没打扫", demand="打扫",
                                          room=None, channel="wechat", now=datetime(2026, 11, 27, 4, 0))
        transition(s, complaint, TicketStatus.ACCEPTED, rules=rules, actor="staff:li", channel="console")
        open_repair_ticket(s, company.rules("binjiang"), openid="oBinjiang1", description="门禁坏了", room="1栋101",
                           visit_time=None, channel="wechat", now=NOON)
    ISSUED.clear()
    ISSUED.update(issued)
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        yield http
    await server.close()
    store.dispose()


async def get(http, path, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(path, params=params, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def post(http, path, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(path, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


def audit_rows(sqlite_url: str, **where: object) -> list[AuditEntry]:
    store = TicketStore(sqlite_url)
    try:
        with store.transaction() as s:
            stmt = select(AuditEntry).order_by(AuditEntry.id)
            for column, value in where.items():
                stmt = stmt.where(getattr(AuditEntry, column) == value)
            return list(s.execute(stmt).scalars())
    finally:
        store.dispose()


async def test_a_token_of_a_person_is_required(api, tokens):
    assert (await get(api, "/api/tickets"))[0] == 401
    assert (await get(api, "/api/tickets", "wrong-token-of-nobody"))[0] == 401
    assert (await get(api, "/api/tickets", tokens["E07"]))[0] == 401  # disabled: its tokens are revoked
    status, me = await get(api, "/api/me", tokens["E03"])
    assert status == 200 and me["name"] == "孙主管" and me["roles"] == ["supervisor"] and me["projects"] == ["default"]


async def test_agents_see_masked_contact_data_supervisors_see_it_all(api, tokens):
    status, body = await get(api, "/api/tickets", tokens["E01"], kind="repair")
    assert status == 200 and body["count"] == 1
    [ticket] = body["tickets"]
    for field in ("number", "project", "kind", "status", "priority", "room", "description", "resident", "created_at",
                  "due_at", "events"):
        assert field in ticket
    assert ticket["project"] == "default"
    assert ticket["resident"]["phone"] == "138****5678" and ticket["resident"]["name"] == "王**"
    assert ticket["resident"]["tags"] == ["living_alone_elderly"]  # agents care for special groups
    assert "13812345678" not in str(ticket)
    assert ticket["created_at"] == "2026-11-25T12:00:00+08:00"
    status, body = await get(api, f"/api/tickets/{ticket['number']}", tokens["E03"])
    assert body["resident"]["phone"] == "13812345678" and body["resident"]["name"] == "王小明"
    assert body["description"] == "灯坏了，电话13812345678"
    # A technician sees the case but neither the contact data nor the special-group tag.
    status, body = await get(api, f"/api/tickets/{ticket['number']}", tokens["E06"])
    assert status == 200 and body["resident"]["phone"] == "138****5678" and body["resident"]["tags"] is None


async def test_filters(api, tokens):
    agent = tokens["E01"]
    _, body = await get(api, "/api/tickets", agent, status="accepted")
    assert [t["kind"] for t in body["tickets"]] == ["complaint"]
    assert [e["to_status"] for e in body["tickets"][0]["events"]] == ["new", "accepted"]
    _, body = await get(api, "/api/tickets", agent, resident="oStaffView1")
    assert [t["kind"] for t in body["tickets"]] == ["repair"]
    _, body = await get(api, "/api/tickets", agent, **{"from": "2026-11-26", "to": "2026-11-30"})
    assert [t["kind"] for t in body["tickets"]] == ["complaint"]
    assert (await get(api, "/api/tickets", agent, kind="nonsense"))[0] == 400
    assert (await get(api, "/api/tickets", agent, **{"from": "yesterday"}))[0] == 400
    assert (await get(api, "/api/tickets/BX19990101-0001", agent))[0] == 404
    assert (await get(api, "/api/tickets", agent, project="nowhere"))[0] == 400


async def test_staff_see_and_act_only_on_the_projects_they_serve(api, tokens, sqlite_url):
    li, zhao, zhou = tokens["E04"], tokens["E01"], tokens["E05"]
    _, theirs = await get(api, "/api/tickets", li)
    assert {t["project"] for t in theirs["tickets"]} == {"binjiang"} and theirs["count"] == 1
    _, ours = await get(api, "/api/tickets", zhao)
    assert {t["project"] for t in ours["tickets"]} == {"default"} and ours["count"] == 2
    assert (await get(api, "/api/tickets", li, project="default"))[0] == 403
    _, everything = await get(api, "/api/tickets", zhou)  # the company's manager: every project
    assert everything["count"] == 3
    number = next(t["number"] for t in ours["tickets"] if t["kind"] == "repair")
    status, body = await get(api, f"/api/tickets/{number}", li)
    assert status == 403 and "binjiang" not in body["error"] and "default" in body["error"]
    before = audit_rows(sqlite_url, ticket_number=number)
    store = TicketStore(sqlite_url)

    def events_of_the_case() -> int:
        with store.transaction() as s:
            ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
            assert ticket.assignee is None and ticket.status == "new"
            return s.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == ticket.id))

    events = events_of_the_case()
    status, body = await post(api, f"/api/tickets/{number}/claim", li, {})
    assert status == 403
    assert events_of_the_case() == events  # nothing changed
    store.dispose()
    refused = audit_rows(sqlite_url, ticket_number=number, allowed=False)
    assert [(r.staff_name, r.action, r.interface) for r in refused] == [
        ("李客服", "view_case", "api"), ("李客服", "act_on_case", "api")]
    assert len(audit_rows(sqlite_url, ticket_number=number)) == len(before) + 1


async def test_every_read_of_a_case_is_audited_and_managers_query_the_trail(api, tokens, sqlite_url):
    zhao, sun, zhou = tokens["E01"], tokens["E03"], tokens["E05"]
    _, listed = await get(api, "/api/tickets", zhao)
    number = listed["tickets"][0]["number"]
    await get(api, f"/api/tickets/{number}", sun)
    reads = audit_rows(sqlite_url, action="view_case")
    assert sorted((r.staff_name, r.ticket_number) for r in reads) == sorted(
        [("赵客服", t["number"]) for t in listed["tickets"]] + [("孙主管", number)])
    [supervisor_read] = [r for r in reads if r.staff_name == "孙主管"]
    assert supervisor_read.personal_data is True and supervisor_read.project == "default"
    assert all(r.personal_data is False for r in reads if r.staff_name == "赵客服")  # masked view
    assert (await get(api, "/api/audit", zhao))[0] == 403  # agents do not read the trail
    status, trail = await get(api, "/api/audit", zhou, ticket=number)
    assert status == 200 and {e["staff_name"] for e in trail["entries"]} == {"赵客服", "孙主管"}
    status, by_person = await get(api, "/api/audit", zhou, staff="E03")
    assert status == 200 and {e["staff_name"] for e in by_person["entries"]} == {"孙主管"}
    # The manager's own reading of the trail is in it too.
    assert [r.staff_name for r in audit_rows(sqlite_url, action="read_audit", allowed=True)] == ["周经理"] * 2


def test_roster_import_command(tmp_path, sqlite_url):
    migrate.upgrade(sqlite_url)
    good = tmp_path / "roster.csv"
    good.write_text("room,name,phone,tags,project\n5-1-302,李四,139 1111 2222,空巢老人,\n"
                    "A座1803,赵五,13700001111,,binjiang\n", encoding="utf-8")
    env = dict(os.environ, DATABASE_URL=sqlite_url, PROJECTS_DIR=str(PROJECT_ROOT / "tests" / "projects"))
    result = subprocess.run([sys.executable, "-m", "bot", "residents", "import", str(good)], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "2 new" in result.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("room,name,phone\n楼下,钱六,12345\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "residents", "import", str(bad)], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "line 2" in result.stderr
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("room,name,phone,project\n6栋101,孙七,13600001111,atlantis\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "residents", "import", str(unknown)], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "line 2: unknown project 'atlantis'" in result.stderr
    store = TicketStore(sqlite_url)
    with store.transaction() as s:
        rows = s.execute(select(Resident).order_by(Resident.room)).scalars().all()
        assert [(r.project, r.room, r.phone, r.tags) for r in rows] == [
            ("default", "5栋1单元302", "13911112222", ["empty_nest_elderly"]),
            ("binjiang", "A座1803", "13700001111", [])]
    store.dispose()


async def test_overdue_cases_resolve_and_the_alert_and_job_queues(api, rules, tokens, sqlite_url):
    from bot.cases.alerts import JOB_PARKED, raise_alert
    from bot.db import queue
    from bot.db.models import Job
    agent, supervisor = tokens["E01"], tokens["E03"]
    store = TicketStore(sqlite_url)
    long_ago = datetime(2026, 10, 1, 2, 0)
    with store.transaction() as s:
        stuck = open_repair_ticket(s, rules, openid="oOverdue1", description="电梯困人了", room="2栋",
                                   visit_time=None, channel="wechat", now=long_ago)
        number = stuck.number
    _, body = await get(api, "/api/tickets", agent, overdue="1")
    overdue = {t["number"]: t["overdue"] for t in body["tickets"]}
    assert overdue[number] == ["due"] and all(t["kind"] == "repair" for t in body["tickets"])
    # Resolving needs a note, then schedules the callback; resolving twice is a conflict.
    assert (await post(api, f"/api/tickets/{number}/resolve", agent, {}))[0] == 400
    assert (await post(api, f"/api/tickets/{number}/resolve", agent, ["not", "an", "object"]))[0] == 400
    # Whatever the body says, the actor is the token's owner.
    status, view = await post(api, f"/api/tickets/{number}/resolve", agent, {"note": "已救出，电梯已修复", "staff": "li"})
    assert status == 200 and view["status"] == "resolved" and view["callback_due_at"]
    assert [e["actor"] for e in view["events"]][-2:] == ["staff:赵客服", "staff:赵客服"]
    actor = f"staff:{(await get(api, '/api/me', agent))[1]['staff_id']}"
    assert (await post(api, f"/api/tickets/{number}/resolve", agent, {"note": "again"}))[0] == 409
    assert (await post(api, "/api/tickets/BX19990101-0001/resolve", agent, {"note": "x"}))[0] == 404
    with store.transaction() as s:
        kinds = {j.kind for j in s.execute(select(Job).where(Job.ticket_id == stuck.id)).scalars()}
        assert queue.SATISFACTION_CALLBACK in kinds
        # A job that gave up shows in the parked list; staff send it back to the queue.
        job = s.execute(select(Job).where(Job.ticket_id == stuck.id, Job.kind == queue.SATISFACTION_CALLBACK)).scalar_one()
        job.status, job.attempts, job.last_error = "parked", 6, "WeChatApiError: system error"
        raise_alert(s, reason=JOB_PARKED, ticket=s.get(Ticket, stuck.id), key="parked:test",
                    detail="satisfaction_callback gave up; resident said 13812345678")
        job_id = job.id
    assert (await get(api, "/api/jobs", agent, status="parked"))[0] == 403  # the queue is for supervisors
    _, body = await get(api, "/api/jobs", supervisor, status="parked")
    assert [j["id"] for j in body["jobs"]] == [job_id] and "system error" in body["jobs"][0]["last_error"]
    assert (await get(api, "/api/jobs", tokens["E04"], status="parked"))[0] == 403
    assert (await post(api, f"/api/jobs/{job_id}/retry", agent, {}))[0] == 403
    assert (await post(api, f"/api/jobs/{job_id}/retry", supervisor, {}))[1]["status"] == "pending"
    assert (await post(api, f"/api/jobs/{job_id}/retry", supervisor, {}))[0] == 409
    _, body = await get(api, "/api/alerts", agent)
    [alert] = [a for a in body["alerts"] if a["reason"] == "job_parked"]
    assert alert["ticket"] == number and "138****5678" in alert["detail"] and alert["project"] == "default"
    assert (await get(api, "/api/alerts", tokens["E04"]))[1]["count"] == 0  # not their project's
    assert (await post(api, f"/api/alerts/{alert['id']}/ack", tokens["E04"], {}))[0] == 403
    status, acked = await post(api, f"/api/alerts/{alert['id']}/ack", agent, {"staff": "li"})
    assert status == 200 and acked["acknowledged_by"] == actor
    _, body = await get(api, "/api/alerts", agent)
    assert alert["id"] not in [a["id"] for a in body["alerts"]]
    store.dispose()


async def test_without_telegram_escalations_wait_in_the_staff_api_and_can_be_worked(api, rules, tokens, sqlite_url):
    from bot.cases.tickets import request_human
    zhao, qian = tokens["E01"], tokens["E02"]
    store = TicketStore(sqlite_url)
    with store.transaction() as s:
        number = request_human(s, rules, openid="oNoTelegram1", context="居民原话：转人工", channel="wechat").number
    store.dispose()
    _, body = await get(api, "/api/alerts", zhao)
    [alert] = [a for a in body["alerts"] if a["ticket"] == number]
    assert alert["reason"] == "human_request"
    # The web console works it through the same rules: claim (first wins), reply, resolve.
    status, view = await post(api, f"/api/tickets/{number}/claim", zhao, {"staff": "冒名顶替"})
    assert status == 200 and view["assignee"] == "赵客服" and view["status"] == "accepted"
    status, body = await post(api, f"/api/tickets/{number}/claim", qian, {})
    assert status == 409 and "held by 赵客服" in body["error"]
    assert (await post(api, f"/api/tickets/{number}/reply", qian, {"text": "您好"}))[0] == 409
    assert (await post(api, f"/api/tickets/{number}/reply", zhao, {}))[0] == 400
    status, view = await post(api, f"/api/tickets/{number}/reply", zhao, {"text": "您好，请讲"})
    assert status == 200 and view["events"][-1]["action"] == "staff_reply"
    status, view = await post(api, f"/api/tickets/{number}/resolve", zhao, {"note": "已电话解答"})
    assert status == 200 and view["status"] == "resolved" and view["callback_due_at"]


async def test_staff_confirm_a_phone_change_through_the_api(api, rules, tokens, sqlite_url):
    from bot.cases.household import change_phone

    store = TicketStore(sqlite_url)
    with store.transaction() as s:
        request = change_phone(s, rules, openid="oStaffView1", phone="13700009999", said="我换号了",
                               channel="wechat").follow_up_number
    assert (await post(api, f"/api/tickets/{request}/confirm-phone", tokens["E01"], {}))[0] == 403  # agents may not
    status, body = await post(api, f"/api/tickets/{request}/confirm-phone", tokens["E03"], {})
    assert status == 200 and body["status"] == "resolved"
    with store.transaction() as s:
        assert s.execute(select(Resident.phone).where(Resident.openid == "oStaffView1")).scalar_one() == "13700009999"
    # Twice, or a case that is no phone change: refused with the reason.
    assert (await post(api, f"/api/tickets/{request}/confirm-phone", tokens["E03"], {}))[0] == 409
    [repair] = (await get(api, "/api/tickets", tokens["E03"], kind="repair"))[1]["tickets"]
    assert (await post(api, f"/api/tickets/{repair['number']}/confirm-phone", tokens["E03"], {}))[0] == 409
    store.dispose()


async def test_development_creates_the_demo_staff_member_production_creates_no_one(sqlite_url, company):
    migrate.upgrade(sqlite_url)
    for environment, expected in (("production", 401), ("development", 200)):
        settings = Settings(database_url=sqlite_url, environment=environment, staff_api_token="dev-staff-api-token")
        server = TestServer(create_staff_app(settings, company, clock=lambda: API_NOW), host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
                status, me = await get(http, "/api/me", "dev-staff-api-token")
        finally:
            await server.close()
        assert status == expected, environment
    assert me["name"] == "演示员工" and me["projects"] == ["*"] and len(me["roles"]) == 7
    store = TicketStore(sqlite_url)
    with store.transaction() as s:  # started twice more: still one demo member, one token
        from bot.db.models import StaffMember, StaffToken
        assert s.scalar(select(func.count()).select_from(StaffMember)) == 1
        assert s.scalar(select(func.count()).select_from(StaffToken)) == 1
    store.dispose()
