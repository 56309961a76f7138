"""The staff web console through aiohttp's test client: signing in, the work queue, a case's
page and every action on it, refusals (wrong project, wrong role, no CSRF token, an expired
session, a locked account), each leaving its row in the audit trail."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.app import migrate
from bot.app.gateway import create_staff_app
from bot.cases.alerts import raise_alert
from bot.cases.residents import bind_resident, import_roster
from bot.cases.sign_in import set_password
from bot.cases.staff_directory import add_staff
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket
from bot.core.company import load_company
from bot.db import queue
from bot.db.models import AuditEntry, ConsoleSession, Job, StaffAlert, StaffOutbox, Ticket
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT, Settings

NOON = datetime(2026, 11, 25, 4, 0)  # 12:00 in Shanghai
PASSWORD = "correct-horse-battery"
PEOPLE = {  # login → (name, roles, projects)
    "zhao": ("赵客服", ["agent"], ["default"]),
    "qian": ("钱客服", ["agent"], ["default"]),
    "sun": ("孙主管", ["supervisor"], ["default"]),
    "li": ("李客服", ["agent"], ["binjiang"]),
}


class Clock:
    def __init__(self) -> None:
        self.now = NOON + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now


class Console:
    def __init__(self, http: aiohttp.ClientSession, store: TicketStore, clock: Clock, numbers: dict[str, str]):
        self.http, self.store, self.clock, self.numbers = http, store, clock, numbers
        self.csrf = ""

    async def login(self, login: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        async with self.http.get("/console/login") as page:
            token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)  # type: ignore[union-attr]
        response = await self.http.post("/console/login", data={"csrf": token, "login": login, "password": password},
                                        allow_redirects=False)
        await response.read()
        if response.status == 303:
            self.csrf = await self.csrf_of("/console/queue")
        return response

    async def csrf_of(self, path: str) -> str:
        async with self.http.get(path) as page:
            found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
            return found.group(1) if found else ""

    async def page(self, path: str, **headers: str) -> tuple[int, str]:
        async with self.http.get(path, headers=headers, allow_redirects=False) as response:
            return response.status, await response.text()

    async def act(self, number: str, action: str, csrf: str | None = None, **fields: str) -> tuple[int, str]:
        data = {"csrf": self.csrf if csrf is None else csrf, **fields}
        async with self.http.post(f"/console/cases/{number}/{action}", data=data, allow_redirects=False) as response:
            return response.status, response.headers.get("Location", "") + await response.text()

    def ticket(self, number: str) -> Ticket:
        with self.store.transaction() as s:
            ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
            _ = ticket.events, ticket.resident
            return ticket

    def audit(self, **where: object) -> list[AuditEntry]:
        with self.store.transaction() as s:
            stmt = select(AuditEntry).order_by(AuditEntry.id)
            for column, value in where.items():
                stmt = stmt.where(getattr(AuditEntry, column) == value)
            return list(s.execute(stmt).scalars())


@pytest.fixture
async def console(sqlite_url, tmp_path) -> AsyncIterator[Console]:
    migrate.upgrade(sqlite_url)
    company = load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")
    store = TicketStore(sqlite_url)
    clock = Clock()
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone,tags\n3栋2单元501,王小明,13812345678,独居老人\n", encoding="utf-8")
    numbers = {}
    with store.transaction() as s:
        for login, (name, roles, projects) in PEOPLE.items():
            member = add_staff(s, name=name, employee_number=login.upper(), roles=roles, projects=projects,
                               known_projects=company.codes, console_login=login, now=NOON)
            set_password(s, member, PASSWORD, NOON)
        default, binjiang = company.rules("default"), company.rules("binjiang")
        import_roster(s, roster, projects=company.codes, default_project="default")
        bind_resident(s, default, openid="oConsole1", room="3栋2单元501", phone="13812345678", channel="wechat")
        numbers["repair"] = open_repair_ticket(s, default, openid="oConsole1", description="厨房水龙头坏了，电话13812345678",
                                               room="3栋2单元501", visit_time="明天", channel="wechat", now=NOON).number
        numbers["complaint"] = open_complaint_ticket(s, default, openid="oConsole2", description="楼道一直没人打扫",
                                                     demand="安排保洁", room="5栋1单元101", channel="wechat",
                                                     now=NOON).number
        numbers["theirs"] = open_repair_ticket(s, binjiang, openid="oBinjiang", description="门禁坏了", room="1栋101",
                                               visit_time=None, channel="wechat", now=NOON).number
    settings = Settings(database_url=sqlite_url, environment="development")  # plain-HTTP cookies on loopback
    server = TestServer(create_staff_app(settings, company, clock=clock), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url("")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Console(http, store, clock, numbers)
    await server.close()
    store.dispose()


async def test_signing_in_wrong_locked_and_out(console: Console):
    assert (await console.page("/console/queue"))[0] == 302  # to the login page
    status, _ = await console.page("/console/queue/rows", **{"HX-Request": "true"})
    assert status == 401
    wrong = await console.login("zhao", "not-the-password")
    nobody = await console.login("nobody", "not-the-password")
    assert wrong.status == nobody.status == 401  # the same answer: nobody learns which logins exist
    for _ in range(4):
        await console.login("zhao", "still-wrong")
    locked = await console.login("zhao")  # the right password, but five wrong ones came first
    assert locked.status == 401
    async with console.http.post("/console/login", data={"csrf": "forged", "login": "sun", "password": PASSWORD},
                                 allow_redirects=False) as forged:
        assert forged.status == 403
    console.clock.now += timedelta(minutes=16)
    ok = await console.login("zhao")
    assert ok.status == 303
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert (await console.page("/console/queue"))[0] == 200
    async with console.http.post("/console/logout", data={"csrf": console.csrf}, allow_redirects=False) as out:
        assert out.status == 303
    with console.store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(ConsoleSession).where(ConsoleSession.revoked_at.is_(None))) == 0
    assert (await console.page("/console/queue"))[0] == 302


async def test_an_idle_session_expires(console: Console):
    await console.login("zhao")
    console.clock.now += timedelta(hours=3)
    assert (await console.page("/console/queue"))[0] == 302


async def test_outside_development_the_session_cookie_is_secure(sqlite_url):
    migrate.upgrade(sqlite_url)
    company = load_company(PROJECT_ROOT / "project" / "default.yml")
    store = TicketStore(sqlite_url)
    with store.transaction() as s:
        member = add_staff(s, name="周", employee_number="E9", roles=["agent"], projects=["*"],
                           known_projects=company.codes, console_login="zhou")
        set_password(s, member, PASSWORD)
    store.dispose()
    server = TestServer(create_staff_app(Settings(database_url=sqlite_url), company), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
            async with http.get("/console/login") as page:
                assert "Secure" in page.headers["Set-Cookie"]
                assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    finally:
        await server.close()


async def test_the_queue_shows_my_projects_cases_filters_and_searches(console: Console):
    await console.login("zhao")
    status, page = await console.page("/console/queue")
    assert status == 200 and console.numbers["repair"] in page and console.numbers["complaint"] in page
    assert console.numbers["theirs"] not in page  # another project's
    assert "特殊群体" in page  # the elderly resident living alone, for an agent
    _, complaints = await console.page("/console/queue?kind=complaint")
    assert console.numbers["complaint"] in complaints and console.numbers["repair"] not in complaints
    for search in (console.numbers["repair"], "3栋2单元501", "138 1234 5678"):
        _, found = await console.page(f"/console/queue?q={search}")
        assert console.numbers["repair"] in found and console.numbers["complaint"] not in found, search
    _, rows = await console.page("/console/queue/rows?view=unassigned", **{"HX-Request": "true"})
    assert "<html" not in rows and console.numbers["repair"] in rows
    assert (await console.page("/console/queue?project=binjiang"))[0] == 403
    views = console.audit(action="view_case", staff_name="赵客服")
    assert len(views) >= 6 and all(v.interface == "console" for v in views)


async def test_a_new_case_appears_in_the_refreshed_rows(console: Console):
    await console.login("zhao")
    with console.store.transaction() as s:
        from bot.core.company import load_company as load
        rules = load(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects").rules("default")
        number = open_repair_ticket(s, rules, openid="oLate", description="电灯不亮", room="8栋", visit_time=None,
                                    channel="wechat", now=console.clock.now).number
    _, rows = await console.page("/console/queue/rows", **{"HX-Request": "true"})
    assert number in rows


async def test_another_project_s_case_is_refused_and_audited(console: Console):
    await console.login("zhao")
    theirs = console.numbers["theirs"]
    assert (await console.page(f"/console/cases/{theirs}"))[0] == 403
    status, _ = await console.act(theirs, "claim")
    assert status == 403 and console.ticket(theirs).assignee is None
    refused = console.audit(ticket_number=theirs, allowed=False)
    assert [(r.action, r.interface) for r in refused] == [("view_case", "console"), ("act_on_case", "console")]


async def test_the_case_page_masks_by_role(console: Console):
    number = console.numbers["repair"]
    await console.login("zhao")
    _, as_agent = await console.page(f"/console/cases/{number}")
    assert "138****5678" in as_agent and "13812345678" not in as_agent and "王**" in as_agent
    assert "living_alone_elderly" in as_agent
    await console.login("sun")
    _, as_supervisor = await console.page(f"/console/cases/{number}")
    assert "13812345678" in as_supervisor and "王小明" in as_supervisor
    [read] = [r for r in console.audit(ticket_number=number, staff_name="孙主管")]
    assert read.personal_data is True and read.allowed


async def test_a_form_without_the_csrf_token_changes_nothing(console: Console):
    await console.login("zhao")
    number = console.numbers["repair"]
    for token in ("", "forged-token"):
        assert (await console.act(number, "claim", csrf=token))[0] == 403
    assert console.ticket(number).assignee is None


async def test_working_a_repair_from_claim_to_resolve(console: Console):
    number = console.numbers["repair"]
    await console.login("zhao")
    assert (await console.act(number, "claim"))[0] == 303
    await console.login("qian")
    status, where = await console.act(number, "claim")
    assert status == 303 and "error=" in where  # taken: said, not an error page
    await console.login("zhao")
    assert (await console.act(number, "on_site"))[0] == 303
    assert (await console.act(number, "note", text="业主说钥匙在物业前台"))[0] == 303
    assert (await console.act(number, "reply", text="师傅已经到了，请开门"))[0] == 303
    assert (await console.act(number, "expect", when="2026-11-28", text="等配件"))[0] == 303
    ticket = console.ticket(number)
    assert ticket.status == "in_progress" and ticket.assignee == "赵客服"
    actions = [e.action for e in ticket.events]
    assert {"claimed", "on_site", "internal_note", "staff_reply", "expected_completion"} <= set(actions)
    assert ticket.due_at == datetime(2026, 11, 28, 10, 0)  # 18:00 in Shanghai
    with console.store.transaction() as s:
        told = [j.payload["text"] for j in s.execute(select(Job).where(Job.ticket_id == ticket.id,
                                                                       Job.kind == queue.RESIDENT_MESSAGE)).scalars()]
    assert any("师傅已经到了" in t for t in told) and any("等配件" in t for t in told)
    assert not any("钥匙" in t for t in told)  # the internal note stays internal
    _, page = await console.page(f"/console/cases/{number}")
    assert "业主说钥匙在物业前台" in page and "到场" in page
    # Hand it over at shift change; the new holder hears of it.
    with console.store.transaction() as s:
        from bot.cases.staff_directory import find_staff
        qian_id = find_staff(s, "QIAN").id  # type: ignore[union-attr]
    assert (await console.act(number, "transfer", to=str(qian_id), text="交接：等配件"))[0] == 303
    assert console.ticket(number).assignee == "钱客服"
    with console.store.transaction() as s:
        note = s.execute(select(StaffOutbox).where(StaffOutbox.audience == f"staff:staff:{qian_id}")).scalar_one()
        assert "交接：等配件" in note.text
    await console.login("qian")
    assert (await console.act(number, "resolve", text="已更换水龙头"))[0] == 303
    ticket = console.ticket(number)
    assert ticket.status == "resolved" and ticket.callback_due_at is not None
    assert all(r.allowed for r in console.audit(ticket_number=number, action="act_on_case"))


async def test_re_tiering_a_complaint_and_closing_one_outside_our_responsibility(console: Console):
    number = console.numbers["complaint"]
    await console.login("zhao")
    before = console.ticket(number)
    assert (await console.act(number, "retier", tier="major", text="业主说要找媒体"))[0] == 303
    after = console.ticket(number)
    assert after.priority == "major" and after.due_at == before.created_at + timedelta(hours=4)
    with console.store.transaction() as s:
        alert = s.execute(select(StaffAlert).where(StaffAlert.ticket_id == after.id,
                                                   StaffAlert.reason == "major_complaint")).scalar_one()
        assert alert.audience == "company"
    status, where = await console.act(console.numbers["repair"], "retier", tier="major", text="x")
    assert status == 303 and "error=" in where  # only complaints are tiered
    assert (await console.act(number, "close_outside", text="楼道保洁由业委会另行招标，不在物业合同内。",
                              department="业主委员会"))[0] == 303
    closed = console.ticket(number)
    assert closed.status == "closed" and closed.callback_due_at is None
    with console.store.transaction() as s:
        told = [j.payload["text"] for j in s.execute(select(Job).where(Job.ticket_id == closed.id,
                                                                       Job.kind == queue.RESIDENT_MESSAGE)).scalars()]
    assert any("业主委员会" in t for t in told)


async def test_households_and_alerts(console: Console):
    await console.login("zhao")
    status, page = await console.page("/console/households?q=13812345678")
    assert status == 200 and console.numbers["repair"] in page and "3栋2单元501" in page and "138****5678" in page
    _, nothing = await console.page("/console/households?q=99栋")
    assert "没有找到" in nothing
    with console.store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == console.numbers["repair"])).scalar_one()
        raise_alert(s, reason="sla_breach", ticket=ticket, key="test:breach", detail="overdue", now=NOON)
    _, alerts = await console.page("/console/alerts")
    assert "超出时限" in alerts
    alert_id = re.search(r"超出时限.*?/console/alerts/(\d+)/ack", alerts, re.S).group(1)  # type: ignore[union-attr]
    async with console.http.post(f"/console/alerts/{alert_id}/ack", data={"csrf": console.csrf},
                                 allow_redirects=False) as done:
        assert done.status == 303
    assert "超出时限" not in (await console.page("/console/alerts"))[1]


async def test_a_complaint_s_first_feedback_clock_is_met_by_a_reply_and_chased_otherwise(console: Console):
    from bot.cases.escalation import check_deadline
    number = console.numbers["complaint"]
    ticket = console.ticket(number)
    assert ticket.first_feedback_due_at == ticket.created_at + timedelta(hours=48)
    with console.store.transaction() as s:
        kinds = {(j.kind, j.payload.get("deadline")) for j in s.execute(select(Job).where(Job.ticket_id == ticket.id))
                 .scalars()}
    assert (queue.SLA_CHECK, "first_feedback") in kinds
    await console.login("zhao")
    _, page = await console.page(f"/console/cases/{number}")
    assert "首次反馈" in page and "剩 " in page
    company = load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")

    def check() -> list[str]:
        with console.store.transaction() as s:
            t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
            check_deadline(s, company.rules("default"), t, deadline="first_feedback", due_at=t.first_feedback_due_at,
                           resolved_at=None, now=t.first_feedback_due_at)
            return [a.detail for a in s.execute(select(StaffAlert).where(StaffAlert.ticket_id == t.id,
                                                                         StaffAlert.reason == "sla_breach")).scalars()]
    assert any("no first feedback" in detail for detail in check())
    # Answered: the clock shows it met.
    await console.act(number, "claim")
    await console.act(number, "reply", text="已安排保洁主管核查，明天给您答复。")
    _, page = await console.page(f"/console/cases/{number}")
    assert "已反馈" in page


async def test_staff_take_a_phone_call_open_a_case_for_the_resident_and_correct_their_file(console: Console):
    from bot.db.models import Resident, ResidentEvent
    with console.store.transaction() as s:
        resident_id = s.execute(select(Resident.id).where(Resident.openid == "oConsole1")).scalar_one()
    await console.login("zhao")
    form = {"csrf": console.csrf}
    async with console.http.post(f"/console/households/{resident_id}/contact", allow_redirects=False,
                                 data={**form, "channel": "phone", "text": "询问停车卡办理"}) as done:
        assert done.status == 303
    async with console.http.post(f"/console/households/{resident_id}/case", allow_redirects=False,
                                 data={**form, "channel": "walk_in", "kind": "repair", "text": "阳台下水道堵了"}) as done:
        assert done.status == 303
        number = re.search(r"/cases/(\w+-\d+)", done.headers["Location"]).group(1)  # type: ignore[union-attr]
    ticket = console.ticket(number)
    assert (ticket.channel, ticket.room, ticket.project) == ("walk_in", "3栋2单元501", "default")
    assert "taken_by_staff" in [e.action for e in ticket.events]
    with console.store.transaction() as s:
        told = [j.payload["text"] for j in s.execute(select(Job).where(Job.ticket_id == ticket.id,
                                                                       Job.kind == queue.RESIDENT_MESSAGE)).scalars()]
    assert any(number in t and "来访" in t for t in told)  # bound: told the number on WeChat
    # Correcting the file is for the roles that see contact data: refused to an agent, audited.
    async with console.http.post(f"/console/households/{resident_id}/correct", allow_redirects=False,
                                 data={**form, "phone": "13900001111"}) as refused:
        assert refused.status == 403
    await console.login("sun")
    async with console.http.post(f"/console/households/{resident_id}/correct", allow_redirects=False,
                                 data={"csrf": console.csrf, "phone": "13900001111", "name": "王晓明"}) as done:
        assert done.status == 303
    with console.store.transaction() as s:
        resident = s.get(Resident, resident_id)
        assert (resident.phone, resident.name) == ("13900001111", "王晓明")  # type: ignore[union-attr]
        record = s.execute(select(ResidentEvent).where(ResidentEvent.resident_id == resident_id)
                           .order_by(ResidentEvent.id)).scalars().all()
        assert [(e.action, e.actor) for e in record] == [("contact", "staff:赵客服"), ("corrected", "staff:孙主管")]
        assert "138****5678 → 139****1111" in record[1].content and "13900001111" not in record[1].content
    _, page = await console.page("/console/households?q=13900001111")
    assert "询问停车卡办理" in page and "更正资料" in page
    assert [r.allowed for r in console.audit(action="confirm_phone")] == [False, True]


async def test_parked_jobs_are_shown_to_supervisors_and_retried(console: Console):
    ticket = console.ticket(console.numbers["repair"])
    with console.store.transaction() as s:
        job = s.execute(select(Job).where(Job.ticket_id == ticket.id)).scalars().first()
        job.status, job.attempts, job.last_error = "parked", 6, "WeChatApiError: 45015"  # type: ignore[union-attr]
        job_id = job.id  # type: ignore[union-attr]
    await console.login("zhao")
    _, page = await console.page("/console/alerts")
    assert "失败的系统任务" not in page  # agents do not work the job queue
    async with console.http.post(f"/console/jobs/{job_id}/retry", data={"csrf": console.csrf},
                                 allow_redirects=False) as refused:
        assert refused.status == 403
    await console.login("sun")
    _, page = await console.page("/console/alerts")
    assert "失败的系统任务" in page and "45015" in page
    async with console.http.post(f"/console/jobs/{job_id}/retry", data={"csrf": console.csrf},
                                 allow_redirects=False) as done:
        assert done.status == 303
    with console.store.transaction() as s:
        assert s.get(Job, job_id).status == "pending"  # type: ignore[union-attr]
    assert [r.allowed for r in console.audit(action="retry_job")] == [False, True]


async def test_a_contested_finished_case_is_reopened_or_reviewed_from_the_console(console: Console):
    number = console.numbers["repair"]
    await console.login("zhao")
    await console.act(number, "resolve", text="已更换水龙头")
    assert (await console.act(number, "reopen", text="住户来电说还在滴水"))[0] == 303
    reopened = console.ticket(number)
    assert reopened.status == "reopened" and "review_requested" in [e.action for e in reopened.events]
    # A closed one gets a linked review case, in the same project.
    closed = console.numbers["complaint"]
    await console.act(closed, "close_outside", text="不在物业合同内。", department="业主委员会")
    assert (await console.act(closed, "reopen", text="住户认为属于物业责任"))[0] == 303
    with console.store.transaction() as s:
        review = s.execute(select(Ticket).where(Ticket.description.startswith("复议"))).scalar_one()
        assert review.project == "default" and review.kind == "complaint"
    status, where = await console.act(console.numbers["repair"], "reopen", text="again")
    assert status == 303 and "error=" in where  # still being worked: nothing to review


async def test_the_resident_s_photos_show_on_the_case_page(console: Console):
    from bot.cases.tickets import attach_evidence
    with console.store.transaction() as s:
        attach_evidence(s, "oConsole1", picture_url="https://mmbiz.qpic.cn/leak.jpg", media_id="m1", channel="wechat")
    await console.login("zhao")
    _, page = await console.page(f"/console/cases/{console.numbers['repair']}")
    assert '<img class="photo" src="https://mmbiz.qpic.cn/leak.jpg"' in page
