"""Notices and the annual survey from the console: who may, what they reach, pause and resume,
results by dimension and building, and the improvement follow-up to the residents who scored low."""
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
from bot.cases.residents import bind_resident, import_roster, note_contact
from bot.cases.sign_in import set_password
from bot.cases.staff_directory import add_staff
from bot.core.company import Company, load_company
from bot.db import queue
from bot.db.models import AuditEntry, Job, NoticeDelivery, Resident, ResidentNotice, Survey, SurveyScore
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT, Settings

PASSWORD = "outreach-password"
NOW = datetime(2026, 12, 10, 2, 0)  # 10:00 in Shanghai
PEOPLE = {"sun": ("孙主管", ["supervisor"], ["default"]), "zhao": ("赵客服", ["agent"], ["default"]),
          "zhou": ("周经理", ["manager"], ["*"])}
ROSTER = [("3栋2单元501", "13800000001", "oN1"), ("3栋2单元502", "13800000002", "oN2"),
          ("5栋1单元101", "13800000003", "oN3")]


def company() -> Company:
    return load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")


class Desk:
    def __init__(self, http: aiohttp.ClientSession, store: TicketStore) -> None:
        self.http, self.store, self.csrf = http, store, ""

    async def login(self, login: str) -> None:
        async with self.http.get("/console/login") as page:
            token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)  # type: ignore[union-attr]
        async with self.http.post("/console/login", data={"csrf": token, "login": login, "password": PASSWORD},
                                  allow_redirects=False) as done:
            assert done.status == 303
        async with self.http.get("/console/queue") as page:
            self.csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)  # type: ignore[union-attr]

    async def post(self, path: str, data: dict | list) -> tuple[int, str]:  # type: ignore[type-arg]
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        async with self.http.post(path, data=[("csrf", self.csrf), *fields], allow_redirects=False) as response:
            return response.status, response.headers.get("Location", "")

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(path, allow_redirects=False) as response:
            return response.status, await response.text()


@pytest.fixture
async def desk(sqlite_url, tmp_path) -> AsyncIterator[Desk]:
    migrate.upgrade(sqlite_url)
    registry = company()
    store = TicketStore(sqlite_url)
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone\n" + "".join(f"{room},住户,{phone}\n" for room, phone, _ in ROSTER),
                      encoding="utf-8")
    with store.transaction() as s:
        for login, (name, roles, projects) in PEOPLE.items():
            member = add_staff(s, name=name, employee_number=login.upper(), roles=roles, projects=projects,
                               known_projects=registry.codes, console_login=login)
            set_password(s, member, PASSWORD)
        import_roster(s, roster, projects=registry.codes, default_project="default")
        for room, phone, openid in ROSTER:
            bind_resident(s, registry.default, openid=openid, room=room, phone=phone, channel="wechat")
            note_contact(s, openid, project="default", subscribed=True)
    server = TestServer(create_staff_app(Settings(database_url=sqlite_url, environment="development"), registry,
                                         clock=lambda: NOW), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url("")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Desk(http, store)
    await server.close()
    store.dispose()


async def test_a_supervisor_composes_previews_and_sends_an_outage_notice_to_one_building(desk: Desk):
    await desk.login("zhao")
    assert (await desk.get("/console/notices"))[0] == 403  # agents do not publish
    await desk.login("sun")
    status, where = await desk.post("/console/notices", {
        "project": "default", "kind": "outage", "title": "3栋停水", "body": "水箱清洗，请提前储水。",
        "buildings": "3栋", "starts_at": "2026-12-12T09:00", "ends_at": "2026-12-12T12:00"})
    assert status == 303 and re.search(r"/console/notices/\d+$", where), where
    status, page = await desk.get(where)
    assert status == 200 and "将发给 <b>2</b> 户" in page and "3栋停水" in page
    assert (await desk.post(f"{where}/send", {}))[0] == 303
    with desk.store.transaction() as s:
        deliveries = s.execute(select(NoticeDelivery)).scalars().all()
        rooms = {s.get(Resident, d.resident_id).room for d in deliveries}  # type: ignore[union-attr]
        jobs = s.scalar(select(func.count()).select_from(Job).where(Job.kind == "notice_delivery"))
    assert rooms == {"3栋2单元501", "3栋2单元502"} and jobs == 2
    assert (await desk.post(f"{where}/send", {}))[0] == 303  # again: nobody twice
    with desk.store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(NoticeDelivery)) == 2
    status, where = await desk.post("/console/notices", {"project": "binjiang", "kind": "reminder",
                                                         "title": "x", "body": "y"})
    assert status == 403  # not their project
    with desk.store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(ResidentNotice).where(ResidentNotice.project == "binjiang")) == 0
        refused = s.execute(select(AuditEntry).where(AuditEntry.action == "send_notices",
                                                     AuditEntry.allowed.is_(False))).scalars().all()
    assert {r.staff_name for r in refused} == {"赵客服", "孙主管"}


async def test_the_annual_survey_starts_pauses_resumes_and_reports_by_dimension_and_building(desk: Desk):
    await desk.login("sun")
    status, _ = await desk.post("/console/surveys/start", [("campaign", "2026"), ("project", "default"),
                                                          ("dimension", "quality"), ("dimension", "attitude")])
    assert status == 303
    with desk.store.transaction() as s:
        jobs = s.execute(select(Job).where(Job.kind == queue.ANNUAL_SURVEY)).scalars().all()
    assert len(jobs) == 3 and all(j.payload["dimensions"] == ["quality", "attitude"] for j in jobs)
    assert (await desk.post("/console/surveys/pause", {"campaign": "2026"}))[0] == 303
    _, page = await desk.get("/console/surveys?campaign=2026")
    assert "待发送 0" in page and "已暂停 3" in page
    assert (await desk.post("/console/surveys/resume", {"campaign": "2026"}))[0] == 303
    with desk.store.transaction() as s:
        statuses = {j.status for j in s.execute(select(Job).where(Job.kind == queue.ANNUAL_SURVEY)).scalars()}
        assert statuses == {"pending"}
        # Two households answered: one content, one not with the staff's attitude.
        for openid, quality, attitude in (("oN1", 5, 5), ("oN3", 4, 1)):
            resident = s.execute(select(Resident).where(Resident.openid == openid)).scalar_one()
            survey = Survey(kind="annual", project="default", resident_id=resident.id, campaign="2026",
                            dimensions=["quality", "attitude"], status="answered", created_at=NOW, sent_at=NOW,
                            answered_at=NOW + timedelta(hours=1), overall_score=min(quality, attitude),
                            verdict="satisfied" if attitude > 2 else "dissatisfied")
            s.add(survey)
            s.flush()
            s.add_all([SurveyScore(survey_id=survey.id, dimension="quality", score=quality),
                       SurveyScore(survey_id=survey.id, dimension="attitude", score=attitude)])
    await desk.login("zhou")  # the manager reads the results
    status, page = await desk.get("/console/surveys?campaign=2026")
    assert status == 200 and "<svg" in page and "服务态度" in page
    assert re.search(r"服务质量</td><td>4\.50</td><td>2</td>", page)
    assert re.search(r"服务态度</td><td>3\.00</td><td>2</td>", page)
    assert re.search(r"3栋</td><td>1</td><td>5\.00", page) and re.search(r"5栋</td><td>1</td><td>1\.00", page)
    assert (await desk.post("/console/surveys/start", {"campaign": "2026"}))[0] == 403  # managers do not send
    await desk.login("sun")
    assert (await desk.post("/console/surveys/improved", {"campaign": "2026", "project": "default",
                                                          "dimension": "attitude", "title": "服务态度整改反馈",
                                                          "text": "根据您的意见，前台已调整排班并做了服务培训。"}))[0] == 303
    with desk.store.transaction() as s:
        notice = s.execute(select(ResidentNotice).where(ResidentNotice.title == "服务态度整改反馈")).scalar_one()
        told = [s.get(Resident, d.resident_id).room for d in s.execute(  # type: ignore[union-attr]
            select(NoticeDelivery).where(NoticeDelivery.notice_id == notice.id)).scalars()]
    assert told == ["5栋1单元101"]  # only the household that scored the attitude low
