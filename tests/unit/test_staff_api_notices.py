"""Staff API for notices to residents: list, compose, preview, schedule, withdraw and the
deliveries' summary, through bot.cases.notices with the console's permission (send_notices),
for the projects the person serves only; every call audited."""
from __future__ import annotations

from datetime import datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.app import migrate
from bot.app.gateway import create_staff_app
from bot.cases import notices
from bot.cases.residents import bind_resident, import_roster, note_contact
from bot.cases.staff_directory import add_staff, issue_token
from bot.core.company import Company, load_company
from bot.db.models import AuditEntry, Job, NoticeDelivery, Resident, ResidentNotice
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT, Settings

API_NOW = datetime(2026, 12, 10, 2, 0)  # 10:00 in Shanghai
STAFF = {
    "E01": ("赵客服", ["agent"], ["default"]),
    "E03": ("孙主管", ["supervisor"], ["default"]),
    "E05": ("周经理", ["manager"], ["*"]),
    "E08": ("钱主管", ["supervisor"], ["binjiang"]),
    "E09": ("吴客服部", ["company_cs"], ["*"]),
}
# (project, room, phone, openid): bound and following, so notices reach them.
HOUSEHOLDS = [("default", "3栋2单元501", "13800000001", "oApiN1"), ("default", "3栋2单元502", "13800000002", "oApiN2"),
              ("default", "5栋1单元101", "13800000003", "oApiN3"), ("binjiang", "1栋1单元101", "13800000004", "oApiN4")]
OUTAGE = {"project": "default", "kind": "outage", "title": "3栋停水", "body": "水箱清洗，请提前储水。",
          "buildings": ["3栋"], "starts_at": "2026-12-12T09:00", "ends_at": "2026-12-12T12:00"}


@pytest.fixture(scope="module")
def company() -> Company:
    return load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")


class Api:
    def __init__(self, http: aiohttp.ClientSession, store: TicketStore, tokens: dict[str, str]) -> None:
        self.http, self.store, self.tokens = http, store, tokens

    async def get(self, path: str, who: str | None = None, **params: str) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        async with self.http.get(path, params=params, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def post(self, path: str, who: str | None = None, body: object = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        async with self.http.post(path, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    def audit(self, **where: object) -> list[AuditEntry]:
        with self.store.transaction() as s:
            stmt = select(AuditEntry).where(AuditEntry.interface == "api").order_by(AuditEntry.id)
            for column, value in where.items():
                stmt = stmt.where(getattr(AuditEntry, column) == value)
            return list(s.execute(stmt).scalars())


@pytest.fixture
async def api(sqlite_url, company, tmp_path):
    migrate.upgrade(sqlite_url)
    server = TestServer(create_staff_app(Settings(database_url=sqlite_url), company, clock=lambda: API_NOW),
                        host="127.0.0.1")
    await server.start_server()
    store = TicketStore(sqlite_url)
    tokens: dict[str, str] = {}
    with store.transaction() as s:
        for number, (name, roles, projects) in STAFF.items():
            member = add_staff(s, name=name, employee_number=number, roles=roles, projects=projects,
                               known_projects=company.codes, now=API_NOW)
            tokens[number] = issue_token(s, member, now=API_NOW)
        for code in company.codes:
            roster = tmp_path / f"roster-{code}.csv"
            roster.write_text("room,name,phone\n" + "".join(f"{room},住户,{phone}\n" for project, room, phone, _
                                                            in HOUSEHOLDS if project == code), encoding="utf-8")
            import_roster(s, roster, projects=company.codes, default_project=code)
        for project, room, phone, openid in HOUSEHOLDS:
            bind_resident(s, company.rules(project), openid=openid, room=room, phone=phone, channel="wechat")
            note_contact(s, openid, project=project, subscribed=True)
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        yield Api(http, store, tokens)
    await server.close()
    store.dispose()


def resident_id(session: Session, openid: str) -> int:
    return session.execute(select(Resident.id).where(Resident.openid == openid)).scalar_one()


async def test_a_supervisor_composes_previews_and_schedules_a_notice(api: Api):
    status, notice = await api.post("/api/notices", "E03", OUTAGE)
    assert status == 201, notice
    assert (notice["project"], notice["kind"], notice["title"], notice["status"]) == ("default", "outage", "3栋停水",
                                                                                      "draft")
    assert notice["target"] == {"buildings": ["3栋"], "rooms": []}
    assert notice["starts_at"] == "2026-12-12T09:00:00+08:00" and notice["ends_at"] == "2026-12-12T12:00:00+08:00"
    assert notice["send_at"] == "2026-12-10T10:00:00+08:00" and notice["created_by"].startswith("staff:")
    assert notice["preview"]["recipients"] == 2  # the two bound households of 3栋, not 5栋's
    assert notice["preview"]["sample"] == ["3栋2单元*** 住*", "3栋2单元*** 住*"]
    assert notice["preview"]["text"].startswith("【停水停电】3栋停水") and "水箱清洗" in notice["preview"]["text"]
    number = notice["id"]
    status, shown = await api.get(f"/api/notices/{number}/preview", "E03")
    assert status == 200 and shown == {"id": number, **notice["preview"]}

    status, done = await api.post(f"/api/notices/{number}/schedule", "E03")
    assert status == 200 and (done["scheduled"], done["already"]) == (2, 0)
    assert done["notice"]["status"] == "scheduled" and done["notice"]["deliveries"]["pending"] == 2
    status, again = await api.post(f"/api/notices/{number}/schedule", "E03")
    assert status == 200 and (again["scheduled"], again["already"]) == (0, 2)  # nobody twice
    with api.store.transaction() as s:
        rooms = sorted(s.get(Resident, d.resident_id).room for d in s.execute(  # type: ignore[union-attr]
            select(NoticeDelivery).where(NoticeDelivery.notice_id == number)).scalars())
        jobs = s.execute(select(Job).where(Job.kind == "notice_delivery")).scalars().all()
    assert rooms == ["3栋2单元501", "3栋2单元502"] and len(jobs) == 2

    status, listed = await api.get("/api/notices", "E03")
    assert status == 200 and listed["count"] == 1
    assert listed["notices"][0]["id"] == number and listed["notices"][0]["deliveries"]["total"] == 2
    status, one = await api.get(f"/api/notices/{number}", "E03")
    assert status == 200 and one["status"] == "scheduled" and one["body"] == "水箱清洗，请提前储水。"
    assert [(a.detail, a.allowed, a.project) for a in api.audit(action="send_notices")] == [
        ("compose notice", True, "default"), (f"notice {number} preview", True, "default"),
        (f"notice {number} schedule", True, "default"), (f"notice {number} schedule", True, "default"),
        ("notices list", True, None), (f"notice {number} view", True, "default")]


async def test_the_deliveries_summary_counts_sent_failed_and_unreachable(api: Api):
    status, notice = await api.post("/api/notices", "E03", {"project": "default", "kind": "reminder",
                                                            "title": "寒潮提醒", "body": "请关好门窗，检查水管保温。"})
    assert status == 201 and notice["preview"]["recipients"] == 3  # the whole project
    number = notice["id"]
    assert (await api.post(f"/api/notices/{number}/schedule", "E03"))[0] == 200
    status, summary = await api.get(f"/api/notices/{number}/deliveries", "E03")
    assert status == 200 and summary == {"id": number, "status": "scheduled", "sent": 0, "failed": 0,
                                         "unreachable": 0, "pending": 3, "withdrawn": 0, "total": 3}
    with api.store.transaction() as s:  # what the worker would record
        notices.record_delivery(s, number, resident_id(s, "oApiN1"), status=notices.DELIVERED, via="custom",
                                now=API_NOW + timedelta(minutes=1))
        notices.record_delivery(s, number, resident_id(s, "oApiN2"), status=notices.FAILED,
                                error="errcode 45015", now=API_NOW + timedelta(minutes=2))
    status, summary = await api.get(f"/api/notices/{number}/deliveries", "E03")
    assert (summary["sent"], summary["failed"], summary["pending"], summary["status"]) == (1, 1, 1, "scheduled")
    with api.store.transaction() as s:
        notices.record_delivery(s, number, resident_id(s, "oApiN3"), status=notices.UNREACHABLE,
                                error="no longer following", now=API_NOW + timedelta(minutes=3))
    status, summary = await api.get(f"/api/notices/{number}/deliveries", "E03")
    assert status == 200 and summary == {"id": number, "status": "sent", "sent": 1, "failed": 1, "unreachable": 1,
                                         "pending": 0, "withdrawn": 0, "total": 3}
    status, listed = await api.get("/api/notices", "E03", status="sent")
    assert [n["id"] for n in listed["notices"]] == [number] and listed["notices"][0]["deliveries"] == {
        "sent": 1, "failed": 1, "unreachable": 1, "pending": 0, "withdrawn": 0, "total": 3}


async def test_withdrawing_stops_what_is_not_sent_and_it_cannot_be_scheduled_again(api: Api):
    status, notice = await api.post("/api/notices", "E03", {"project": "default", "kind": "public", "title": "维修基金公示",
                                                            "body": "详见公告栏。", "rooms": "3栋2单元501、5栋1单元101"})
    assert status == 201 and notice["target"]["rooms"] == ["3栋2单元501", "5栋1单元101"]
    number = notice["id"]
    assert (await api.post(f"/api/notices/{number}/schedule", "E03"))[1]["scheduled"] == 2
    with api.store.transaction() as s:
        notices.record_delivery(s, number, resident_id(s, "oApiN1"), status=notices.DELIVERED, via="template",
                                now=API_NOW + timedelta(minutes=1))
    status, done = await api.post(f"/api/notices/{number}/withdraw", "E03")
    assert status == 200 and done["withdrawn"] == 1 and done["notice"]["status"] == "cancelled"
    assert (done["notice"]["deliveries"]["sent"], done["notice"]["deliveries"]["withdrawn"]) == (1, 1)
    with api.store.transaction() as s:
        statuses = {j.status for j in s.execute(select(Job).where(Job.kind == "notice_delivery")).scalars()}
    assert statuses == {"cancelled"}
    status, refused = await api.post(f"/api/notices/{number}/schedule", "E03")
    assert status == 409 and "cancelled" in refused["error"]
    assert api.audit(detail=f"notice {number} schedule")[-1].allowed  # allowed, and audited, though refused


async def test_a_notice_that_cannot_be_composed_is_refused_and_nothing_is_kept(api: Api):
    for body, words in (
            ({**OUTAGE, "ends_at": None}, "period"),  # an outage needs its period
            ({**OUTAGE, "buildings": ["9栋"]}, "unknown building"),
            ({**OUTAGE, "rooms": ["7栋1单元101"], "buildings": []}, "not on the roster"),
            ({**OUTAGE, "title": "三栋停水" * 6}, "20 characters"),
            ({**OUTAGE, "kind": "welcome_callback"}, "unknown kind"),
            ({**OUTAGE, "kind": "notice"}, "unknown kind"),
            ({**OUTAGE, "starts_at": "明天上午"}, "starts_at"),
            ({**OUTAGE, "buildings": [3]}, "buildings"),
            ({**OUTAGE, "project": "nowhere"}, "unknown project")):
        status, refused = await api.post("/api/notices", "E03", body)
        assert status == 400 and words in refused["error"], (body, refused)
    async with api.http.post("/api/notices", data="not json", headers={
            "Authorization": f"Bearer {api.tokens['E03']}", "Content-Type": "application/json"}) as response:
        assert response.status == 400
    with api.store.transaction() as s:
        assert s.execute(select(ResidentNotice)).scalars().all() == []
    # The ones refused by bot.cases.notices were authorised first: their audit rows stay.
    assert len(api.audit(detail="compose notice", allowed=True)) == 4


async def test_notices_only_for_those_who_send_them_in_the_projects_they_serve(api: Api):
    assert (await api.get("/api/notices"))[0] == 401
    _, mine = await api.post("/api/notices", "E03", OUTAGE)
    status, theirs = await api.post("/api/notices", "E08", {"project": "binjiang", "kind": "reminder",
                                                            "title": "电梯保养", "body": "周六上午电梯保养。"})
    assert status == 201 and theirs["preview"]["recipients"] == 1
    for who in ("E01", "E05"):  # agents and managers do not send notices
        assert (await api.get("/api/notices", who))[0] == 403
        assert (await api.get(f"/api/notices/{mine['id']}", who))[0] == 403
    assert (await api.post("/api/notices", "E01", OUTAGE))[0] == 403
    status, refused = await api.post("/api/notices", "E08", OUTAGE)  # not their project
    assert status == 403 and "not a staff member of project default" in refused["error"]
    for path in ("", "/preview", "/deliveries"):
        assert (await api.get(f"/api/notices/{mine['id']}{path}", "E08"))[0] == 403
    for action in ("schedule", "withdraw"):
        assert (await api.post(f"/api/notices/{mine['id']}/{action}", "E08"))[0] == 403
    assert (await api.get("/api/notices", "E03", project="binjiang"))[0] == 403
    assert (await api.get("/api/notices", "E03", project="nowhere"))[0] == 400
    assert (await api.get("/api/notices/99999", "E03"))[0] == 404
    assert (await api.get("/api/notices", "E03", kind="letter"))[0] == 400
    with api.store.transaction() as s:
        assert s.get(ResidentNotice, mine["id"]).status == "draft"  # type: ignore[union-attr]
        assert s.execute(select(NoticeDelivery)).scalars().all() == []
    assert [n["id"] for n in (await api.get("/api/notices", "E03"))[1]["notices"]] == [mine["id"]]
    assert [n["id"] for n in (await api.get("/api/notices", "E08"))[1]["notices"]] == [theirs["id"]]
    status, both = await api.get("/api/notices", "E09")  # company customer service: every project
    assert status == 200 and [n["id"] for n in both["notices"]] == [theirs["id"], mine["id"]]
    assert [n["id"] for n in (await api.get("/api/notices", "E09", project="default"))[1]["notices"]] == [mine["id"]]
    refused_by = {(a.staff_name, a.project) for a in api.audit(action="send_notices", allowed=False)}
    assert refused_by == {("赵客服", None), ("赵客服", "default"), ("周经理", None), ("周经理", "default"),
                          ("钱主管", "default"), ("孙主管", "binjiang")}
    assert len(api.audit(staff_name="钱主管", project="default", allowed=False)) == 6  # compose and five on the notice
