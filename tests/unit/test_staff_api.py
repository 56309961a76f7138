"""Staff API: token roles, filters, masking; and the roster import command."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import migrate
from bot.app.gateway import create_staff_app
from bot.cases.residents import bind_resident, import_roster
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket, transition
from bot.core.kinds import TicketStatus
from bot.db.models import Resident
from bot.settings import PROJECT_ROOT, Settings

AGENT, MANAGER = "agent-token", "manager-token"
NOON = datetime(2026, 11, 25, 4, 0)
# The API's "now" (naive UTC): two days after NOON. The repair opened at NOON is overdue then,
# the complaint opened on the 27th is not; the real date never matters.
API_NOW = datetime(2026, 11, 27, 6, 0)


@pytest.fixture
async def api(sqlite_url, rules, tmp_path):
    migrate.upgrade(sqlite_url)
    settings = Settings(database_url=sqlite_url, staff_api_token=AGENT, staff_api_manager_token=MANAGER)
    server = TestServer(create_staff_app(settings, rules, clock=lambda: API_NOW), host="127.0.0.1")
    await server.start_server()
    from bot.db.store import TicketStore
    store = TicketStore(sqlite_url)
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone\n3栋2单元501,王小明,13812345678\n", encoding="utf-8")
    with store.transaction() as s:
        import_roster(s, roster)
        bind_resident(s, rules, openid="oStaffView1", room="3栋2单元501", phone="13812345678", channel="wechat")
        open_repair_ticket(s, rules, openid="oStaffView1", description="灯坏了，电话13812345678",
                           room="3栋2单元501", visit_time="明天", channel="wechat", now=NOON)
        complaint = open_complaint_ticket(s, rules, openid="oOther", description="楼道没打扫", demand="打扫",
                                          room=None, channel="wechat", now=datetime(2026, 11, 27, 4, 0))
        transition(s, complaint, TicketStatus.ACCEPTED, rules=rules, actor="staff:li", channel="console")
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        yield http
    await server.close()
    store.dispose()


async def get(http, path, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(path, params=params, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_tokens_are_required(api):
    assert (await get(api, "/api/tickets"))[0] == 401
    assert (await get(api, "/api/tickets", "wrong"))[0] == 401


async def test_agents_see_masked_contact_data_managers_see_it_all(api):
    status, body = await get(api, "/api/tickets", AGENT, kind="repair")
    assert status == 200 and body["count"] == 1
    [ticket] = body["tickets"]
    for field in ("number", "kind", "status", "priority", "room", "description", "resident", "created_at",
                  "due_at", "events"):
        assert field in ticket
    assert ticket["resident"]["phone"] == "138****5678" and ticket["resident"]["name"] == "王**"
    assert "13812345678" not in str(ticket)
    assert ticket["created_at"] == "2026-11-25T12:00:00+08:00"
    status, body = await get(api, f"/api/tickets/{ticket['number']}", MANAGER)
    assert body["resident"]["phone"] == "13812345678" and body["resident"]["name"] == "王小明"
    assert body["description"] == "灯坏了，电话13812345678"


async def test_filters(api):
    _, body = await get(api, "/api/tickets", AGENT, status="accepted")
    assert [t["kind"] for t in body["tickets"]] == ["complaint"]
    assert [e["to_status"] for e in body["tickets"][0]["events"]] == ["new", "accepted"]
    _, body = await get(api, "/api/tickets", AGENT, resident="oStaffView1")
    assert [t["kind"] for t in body["tickets"]] == ["repair"]
    _, body = await get(api, "/api/tickets", AGENT, **{"from": "2026-11-26", "to": "2026-11-30"})
    assert [t["kind"] for t in body["tickets"]] == ["complaint"]
    assert (await get(api, "/api/tickets", AGENT, kind="nonsense"))[0] == 400
    assert (await get(api, "/api/tickets", AGENT, **{"from": "yesterday"}))[0] == 400
    assert (await get(api, "/api/tickets/BX19990101-0001", AGENT))[0] == 404


def test_roster_import_command(tmp_path, sqlite_url):
    migrate.upgrade(sqlite_url)
    good = tmp_path / "roster.csv"
    good.write_text("room,name,phone,tags\n5-1-302,李四,139 1111 2222,空巢老人\nA座1803,赵五,13700001111,\n",
                    encoding="utf-8")
    env = dict(os.environ, DATABASE_URL=sqlite_url)
    result = subprocess.run([sys.executable, "-m", "bot", "residents", "import", str(good)], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "2 new" in result.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("room,name,phone\n楼下,钱六,12345\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "residents", "import", str(bad)], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "line 2" in result.stderr
    from bot.db.store import TicketStore
    store = TicketStore(sqlite_url)
    with store.transaction() as s:
        rows = s.execute(select(Resident).order_by(Resident.room)).scalars().all()
        assert [(r.room, r.phone, r.tags) for r in rows] == [
            ("5栋1单元302", "13911112222", ["empty_nest_elderly"]), ("A座1803", "13700001111", [])]
    store.dispose()


async def post(http, path, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(path, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_overdue_cases_resolve_and_the_alert_and_job_queues(api, rules, sqlite_url):
    from bot.cases.alerts import JOB_PARKED, raise_alert
    from bot.db import queue
    from bot.db.models import Job, Ticket
    from bot.db.store import TicketStore
    store = TicketStore(sqlite_url)
    long_ago = datetime(2026, 10, 1, 2, 0)
    with store.transaction() as s:
        stuck = open_repair_ticket(s, rules, openid="oOverdue1", description="电梯困人了", room="2栋",
                                   visit_time=None, channel="wechat", now=long_ago)
        number = stuck.number
    _, body = await get(api, "/api/tickets", AGENT, overdue="1")
    overdue = {t["number"]: t["overdue"] for t in body["tickets"]}
    assert overdue[number] == ["due"] and all(t["kind"] == "repair" for t in body["tickets"])
    # Resolving needs a note, then schedules the callback; resolving twice is a conflict.
    assert (await post(api, f"/api/tickets/{number}/resolve", AGENT, {}))[0] == 400
    assert (await post(api, f"/api/tickets/{number}/resolve", AGENT, ["not", "an", "object"]))[0] == 400
    status, view = await post(api, f"/api/tickets/{number}/resolve", AGENT, {"note": "已救出，电梯已修复", "staff": "li"})
    assert status == 200 and view["status"] == "resolved" and view["callback_due_at"]
    assert [e["actor"] for e in view["events"]][-2:] == ["staff:li", "staff:li"]
    assert (await post(api, f"/api/tickets/{number}/resolve", AGENT, {"note": "again", "staff": "li"}))[0] == 409
    assert (await post(api, "/api/tickets/BX19990101-0001/resolve", AGENT, {"note": "x", "staff": "li"}))[0] == 404
    with store.transaction() as s:
        kinds = {j.kind for j in s.execute(select(Job).where(Job.ticket_id == stuck.id)).scalars()}
        assert queue.SATISFACTION_CALLBACK in kinds
        # A job that gave up shows in the parked list; staff send it back to the queue.
        job = s.execute(select(Job).where(Job.ticket_id == stuck.id, Job.kind == queue.SATISFACTION_CALLBACK)).scalar_one()
        job.status, job.attempts, job.last_error = "parked", 6, "WeChatApiError: system error"
        raise_alert(s, reason=JOB_PARKED, ticket=s.get(Ticket, stuck.id), key="parked:test",
                    detail="satisfaction_callback gave up; resident said 13812345678")
        job_id = job.id
    _, body = await get(api, "/api/jobs", AGENT, status="parked")
    assert [j["id"] for j in body["jobs"]] == [job_id] and "system error" in body["jobs"][0]["last_error"]
    assert (await post(api, f"/api/jobs/{job_id}/retry", AGENT, {}))[1]["status"] == "pending"
    assert (await post(api, f"/api/jobs/{job_id}/retry", AGENT, {}))[0] == 409
    _, body = await get(api, "/api/alerts", AGENT)
    [alert] = [a for a in body["alerts"] if a["reason"] == "job_parked"]
    assert alert["ticket"] == number and "138****5678" in alert["detail"]
    status, acked = await post(api, f"/api/alerts/{alert['id']}/ack", AGENT, {"staff": "li"})
    assert status == 200 and acked["acknowledged_by"] == "staff:li"
    _, body = await get(api, "/api/alerts", AGENT)
    assert alert["id"] not in [a["id"] for a in body["alerts"]]
    store.dispose()


async def test_without_telegram_escalations_wait_in_the_staff_api_and_can_be_worked(api, rules, sqlite_url):
    from bot.cases.tickets import request_human
    from bot.db.store import TicketStore
    store = TicketStore(sqlite_url)
    with store.transaction() as s:
        number = request_human(s, rules, openid="oNoTelegram1", context="居民原话：转人工", channel="wechat").number
    store.dispose()
    _, body = await get(api, "/api/alerts", AGENT)
    [alert] = [a for a in body["alerts"] if a["ticket"] == number]
    assert alert["reason"] == "human_request"
    # The web console works it through the same rules: claim (first wins), reply, resolve.
    status, view = await post(api, f"/api/tickets/{number}/claim", AGENT, {"staff": "zhao"})
    assert status == 200 and view["assignee"] == "zhao" and view["status"] == "accepted"
    status, body = await post(api, f"/api/tickets/{number}/claim", AGENT, {"staff": "qian"})
    assert status == 409 and "held by zhao" in body["error"]
    assert (await post(api, f"/api/tickets/{number}/reply", AGENT, {"staff": "qian", "text": "您好"}))[0] == 409
    assert (await post(api, f"/api/tickets/{number}/reply", AGENT, {"staff": "zhao"}))[0] == 400
    status, view = await post(api, f"/api/tickets/{number}/reply", AGENT, {"staff": "zhao", "text": "您好，请讲"})
    assert status == 200 and view["events"][-1]["action"] == "staff_reply"
    assert (await post(api, f"/api/tickets/{number}/claim", AGENT, {}))[0] == 400  # who are you?
    status, view = await post(api, f"/api/tickets/{number}/resolve", AGENT, {"staff": "zhao", "note": "已电话解答"})
    assert status == 200 and view["status"] == "resolved" and view["callback_due_at"]


async def test_staff_confirm_a_phone_change_through_the_api(api, rules, sqlite_url):
    from bot.cases.household import change_phone
    from bot.db.models import Resident
    from bot.db.store import TicketStore

    store = TicketStore(sqlite_url)
    with store.transaction() as s:
        request = change_phone(s, rules, openid="oStaffView1", phone="13700009999", said="我换号了",
                               channel="wechat").follow_up_number
    status, body = await post(api, f"/api/tickets/{request}/confirm-phone", AGENT, {"staff": "王敏"})
    assert status == 200 and body["status"] == "resolved"
    with store.transaction() as s:
        assert s.execute(select(Resident.phone).where(Resident.openid == "oStaffView1")).scalar_one() == "13700009999"
    # Twice, or a case that is no phone change: refused with the reason.
    assert (await post(api, f"/api/tickets/{request}/confirm-phone", AGENT, {"staff": "王敏"}))[0] == 409
    [repair] = (await get(api, "/api/tickets", AGENT, kind="repair"))[1]["tickets"]
    assert (await post(api, f"/api/tickets/{repair['number']}/confirm-phone", AGENT, {"staff": "王敏"}))[0] == 409
    store.dispose()
