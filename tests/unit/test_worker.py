"""The follow-up worker on a controlled clock, against SQLite and PostgreSQL, delivering to
a fake WeChat API on loopback that records exactly what it was sent."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from datetime import datetime, timedelta
from typing import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from bot.assistant.client import AssistantClient
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket, transition
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.delivery import WeChatResidentChannel
from bot.channels.wechat.models import OutboundMessage
from bot.core.company import Company
from bot.core.kinds import TicketStatus
from bot.core.rules import TemplateMessage
from bot.db import queue
from bot.db.models import Job, JobStatus, StaffAlert, Ticket
from bot.settings import PROJECT_ROOT
from bot.worker.handlers import Context
from bot.worker.loop import Worker
from tests.wechat_fakes import APP_ID, APP_SECRET, FakeWeChatApi

WED_10 = datetime(2026, 11, 25, 2, 0)  # Wed 25 Nov 2026 10:00 Shanghai, as naive UTC
MON_10 = datetime(2026, 11, 30, 2, 0)  # 3 working days later
WED_NEXT_10 = datetime(2026, 12, 2, 2, 0)  # 2 more working days
RASA_TOKEN = "worker-test-rasa-token"  # production refuses a worker without one


@pytest.fixture
async def wechat() -> AsyncIterator[tuple[FakeWeChatApi, str]]:
    api = FakeWeChatApi()
    url = await api.start()
    yield api, url
    await api.close()


def worker_for(store, rules, http, api_url: str, now: datetime, name: str = "test-worker") -> Worker:
    """A worker for a one-project company running on `rules`."""
    company = Company.of(rules)
    ctx = Context(store, company, WeChatResidentChannel(WeChatApi(http, store, api_url, APP_ID, APP_SECRET, timeout=3),
                                                          store, company),
                  # No survey jobs here: an assistant nobody listens on would refuse them.
                  AssistantClient(http, "http://127.0.0.1:9", "http://127.0.0.1:9", RASA_TOKEN))
    return Worker(ctx, name, clock=lambda: now)


def open_complaint(store, rules, openid: str, *, now: datetime = WED_10, chatted: datetime | None = WED_10) -> int:
    """A general complaint; the first-feedback check (its own test below) is left out here, so the
    job counts of these tests are about progress updates and deadlines."""
    rules = dataclasses.replace(rules, sla=dataclasses.replace(rules.sla, complaint_first_feedback_hours=0))
    with store.transaction() as s:
        ticket = open_complaint_ticket(s, rules, openid=openid, description="楼道堆满杂物，一直没人清理",
                                       demand="尽快清理", room="3栋2单元501", channel="wechat", now=now)
        ticket.resident.last_message_at = chatted
        return ticket.id


def jobs_of(store, ticket_id: int) -> list[Job]:
    with store.transaction() as s:
        return list(s.execute(select(Job).where(Job.ticket_id == ticket_id).order_by(Job.id)).scalars())


async def test_progress_updates_come_after_three_working_days_then_every_two(store, rules, wechat):
    api, url = wechat
    ticket_id = open_complaint(store, rules, "oProgress1", chatted=MON_10 - timedelta(hours=1))
    progress = [j for j in jobs_of(store, ticket_id) if j.kind == queue.PROGRESS_UPDATE]
    assert [j.due_at for j in progress] == [MON_10]
    async with aiohttp.ClientSession() as http:
        # Before Monday only the SLA check (Friday, 2 working days) is due: it alerts staff, tells no one.
        assert await worker_for(store, rules, http, url, MON_10 - timedelta(minutes=1)).run_due() == {"done": 1}
        assert api.messages == []
        assert await worker_for(store, rules, http, url, MON_10).run_due() == {"done": 1}
        # The same moment again: nothing is due, nothing is sent twice.
        assert await worker_for(store, rules, http, url, MON_10).run_due() == {}
    texts = api.texts_to("oProgress1")
    assert len(texts) == 1 and "进展" in texts[0] and "TS20261125-0001" in texts[0]
    assert "12月4日 10:00" in texts[0]  # the 7-working-day hard limit
    progress = [j for j in jobs_of(store, ticket_id) if j.kind == queue.PROGRESS_UPDATE]
    assert [(j.status, j.due_at) for j in progress] == [("done", MON_10), ("pending", WED_NEXT_10)]
    with store.transaction() as s:
        events = [e for e in s.get(Ticket, ticket_id).events if e.action == "notified"]
        assert [e.result for e in events] == ["custom: sent"]


async def test_outside_the_48_hour_window_a_template_goes_out_with_short_fields(store, rules, wechat):
    api, url = wechat
    templated = dataclasses.replace(rules, templates={"progress": TemplateMessage(
        "TPL_PROGRESS", (("character_string1", "{number}"), ("thing2", "{summary}"), ("phrase3", "{status}"),
                         ("time4", "{time}")))})
    ticket_id = open_complaint(store, templated, "oTemplate1", chatted=WED_10 - timedelta(days=3))
    async with aiohttp.ClientSession() as http:
        assert await worker_for(store, templated, http, url, MON_10).run_due() == {"done": 2}  # SLA check + update
    assert api.texts_to("oTemplate1") == []
    [sent] = api.templates
    assert sent["template_id"] == "TPL_PROGRESS"
    fields = {k: v["value"] for k, v in sent["data"].items()}
    assert fields["thing2"].startswith("楼道堆满杂物") and len(fields["thing2"]) <= 20
    assert all(len(v) <= 20 and "\n" not in v for v in fields.values())
    with store.transaction() as s:
        assert [e.result for e in s.get(Ticket, ticket_id).events if e.action == "notified"] == ["template: sent"]


async def test_window_closed_and_no_template_alerts_staff_to_phone(store, rules, wechat):
    api, url = wechat
    api.out_of_window.add("oNoTemplate1")
    # The store thinks the resident wrote recently, WeChat says otherwise (45015): no template -> staff.
    ticket_id = open_complaint(store, rules, "oNoTemplate1", chatted=MON_10 - timedelta(hours=1))
    async with aiohttp.ClientSession() as http:
        assert await worker_for(store, rules, http, url, MON_10).run_due() == {"done": 2}
    assert api.everything_to("oNoTemplate1") == []
    with store.transaction() as s:
        alerts = s.execute(select(StaffAlert).where(StaffAlert.ticket_id == ticket_id)).scalars().all()
        assert [a.reason for a in alerts] == ["sla_breach", "resident_unreachable"]
        results = [e.result for e in s.get(Ticket, ticket_id).events if e.action == "notified"]
        assert results[0].startswith("custom: failed") and results[1].startswith("template: failed")


async def test_failed_sends_retry_with_backoff_then_park_for_staff(store, rules, wechat):
    api, url = wechat
    api.busy_sends = 100
    ticket_id = open_complaint(store, rules, "oBusy1", chatted=MON_10)
    clock = MON_10
    async with aiohttp.ClientSession() as http:
        await worker_for(store, rules, http, url, MON_10 - timedelta(minutes=1)).run_due()  # the SLA check
        dues = []
        for attempt in range(1, rules.follow_up.job_max_attempts + 1):
            result = await worker_for(store, rules, http, url, clock).run_due()
            [job] = [j for j in jobs_of(store, ticket_id) if j.kind == queue.PROGRESS_UPDATE]
            if attempt < rules.follow_up.job_max_attempts:
                assert result == {"failed": 1} and job.status == "pending" and job.attempts == attempt
                dues.append(job.due_at - clock)
                clock = job.due_at
            else:
                assert result == {"parked": 1} and job.status == "parked"
    assert dues == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16)]
    assert "system error" in job.last_error
    with store.transaction() as s:
        assert [a.reason for a in s.execute(select(StaffAlert)).scalars()] == ["sla_breach", "job_parked"]
        assert [j.id for j in queue.jobs_with_status(s, JobStatus.PARKED)] == [job.id]
        # Staff retry it once WeChat is fine again: delivered exactly once.
        queue.retry_parked(s, job.id, clock)
    api.busy_sends = 0
    async with aiohttp.ClientSession() as http:
        assert await worker_for(store, rules, http, url, clock).run_due() == {"done": 1}
    assert len(api.texts_to("oBusy1")) == 1


async def test_a_repeated_job_never_sends_the_same_message_twice(store, rules, wechat):
    api, url = wechat
    ticket_id = open_complaint(store, rules, "oTwice1", chatted=MON_10)
    async with aiohttp.ClientSession() as http:
        assert await worker_for(store, rules, http, url, MON_10).run_due() == {"done": 2}
        # As if the worker had died after sending but before marking the job done.
        with store.transaction() as s:
            job = s.execute(select(Job).where(Job.ticket_id == ticket_id, Job.kind == queue.PROGRESS_UPDATE,
                                              Job.status == "done")).scalar_one()
            job.status, job.locked_until = "running", MON_10
        assert await worker_for(store, rules, http, url, MON_10 + timedelta(minutes=1)).run_due() == {"done": 1}
    assert len(api.texts_to("oTwice1")) == 1


async def test_sla_breaches_alert_staff_once_and_met_deadlines_do_not(store, rules, wechat):
    _api, url = wechat
    with store.transaction() as s:
        stuck = open_repair_ticket(s, rules, openid="oSla1", description="电梯困人了", room="3栋", visit_time=None,
                                   channel="wechat", now=WED_10)
        on_site = open_repair_ticket(s, rules, openid="oSla2", description="家里突然断电了", room="5栋",
                                     visit_time=None, channel="wechat", now=WED_10)
        transition(s, on_site, TicketStatus.ACCEPTED, rules=rules, actor="staff:li", channel="console", now=WED_10)
        transition(s, on_site, TicketStatus.IN_PROGRESS, rules=rules, actor="staff:li", channel="console",
                   now=WED_10 + timedelta(minutes=8))
        assert stuck.due_at == WED_10 + timedelta(minutes=10)
        stuck_id, on_site_id = stuck.id, on_site.id
    async with aiohttp.ClientSession() as http:
        await worker_for(store, rules, http, url, WED_10 + timedelta(minutes=10)).run_due()
        await worker_for(store, rules, http, url, WED_10 + timedelta(minutes=11)).run_due()
    with store.transaction() as s:
        alerts = s.execute(select(StaffAlert).where(StaffAlert.reason == "sla_breach")).scalars().all()
        assert [(a.reason, a.ticket_id) for a in alerts] == [("sla_breach", stuck_id)]
        assert "missed its deadline" in alerts[0].detail
        assert [e.action for e in s.get(Ticket, stuck_id).events][-1] == "escalated"
        assert [e.result for e in s.get(Ticket, on_site_id).events if e.action == "escalated"] == ["emergency_repair"]


async def test_cancelled_case_gets_no_follow_ups(store, rules, wechat):
    api, url = wechat
    ticket_id = open_complaint(store, rules, "oCancel1", chatted=MON_10)
    with store.transaction() as s:
        transition(s, s.get(Ticket, ticket_id), TicketStatus.CANCELLED, rules=rules, actor="resident",
                   channel="wechat", now=WED_10 + timedelta(hours=1))
    assert {j.status for j in jobs_of(store, ticket_id)} == {"cancelled"}
    async with aiohttp.ClientSession() as http:
        assert await worker_for(store, rules, http, url, WED_NEXT_10 + timedelta(days=30)).run_due() == {}
    assert api.messages == []


# --- the worker process ---------------------------------------------------------------


def worker_env(database_url: str, api_url: str) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=database_url, WECHAT_API_BASE_URL=api_url, WECHAT_APP_ID=APP_ID,
                WECHAT_APP_SECRET=APP_SECRET, RASA_URL="http://127.0.0.1:9", ACTION_SERVER_URL="http://127.0.0.1:9",
                RASA_AUTH_TOKEN=RASA_TOKEN, PYTHONUNBUFFERED="1")


async def run_worker(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "worker", *args, cwd=PROJECT_ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


@pytest.mark.postgres
async def test_two_workers_racing_on_postgresql_deliver_each_job_once(postgres_database_url, rules, wechat):
    from bot.db.store import TicketStore
    database_url = postgres_database_url
    api, url = wechat
    store = TicketStore(database_url)
    try:
        ids = [open_complaint(store, rules, f"oRace{n:03d}", chatted=MON_10) for n in range(40)]
    finally:
        store.dispose()
    env = worker_env(database_url, url)
    # Both workers run on the same clock: Monday 10:00 local, when all 40 progress updates are due.
    procs = [await run_worker(env, "--once", "--now", "2026-11-30T10:00:00") for _ in range(2)]
    outputs = [(await p.communicate())[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert len(api.messages) == 40, outputs
    assert sorted(m["touser"] for m in api.messages) == [f"oRace{n:03d}" for n in range(40)]
    done = [int(o.split("done ")[1].split()[0].rstrip(",")) if "done " in o else 0 for o in outputs]
    assert sum(done) == 80  # 40 SLA checks (Friday) + 40 progress updates
    store = TicketStore(database_url)
    try:
        with store.transaction() as s:
            progress = s.execute(select(Job).where(Job.ticket_id.in_(ids), Job.kind == queue.PROGRESS_UPDATE,
                                                   Job.status == "done")).scalars().all()
            assert len(progress) == 40 and all(j.attempts == 1 for j in progress)
            assert s.execute(select(OutboundMessage).where(OutboundMessage.status == "sent")).scalars().all().__len__() == 40
    finally:
        store.dispose()


async def test_a_worker_killed_mid_job_loses_nothing(store, rules, wechat):
    api, url = wechat
    api.hang_for.add("oKilled1")
    ticket_id = open_complaint(store, rules, "oKilled1", chatted=MON_10)
    env = worker_env(store.url, url)
    proc = await run_worker(env, "--once", "--now", "2026-11-30T10:00:00")
    for _ in range(300):
        if api.hung:
            break
        await asyncio.sleep(0.05)
    assert api.hung == 1, "the worker should be waiting on WeChat now"
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    [job] = [j for j in jobs_of(store, ticket_id) if j.kind == queue.PROGRESS_UPDATE]
    assert job.status == "running" and job.attempts == 1
    api.hang_for.clear()
    # Within the dead worker's lease nobody takes the job; after it, the next worker does.
    proc = await run_worker(env, "--once", "--now", "2026-11-30T10:04:00")
    assert "none due" in (await proc.communicate())[0].decode()
    proc = await run_worker(env, "--once", "--now", "2026-11-30T10:06:00")
    output = (await proc.communicate())[0].decode()
    assert "done 1" in output, output
    [job] = [j for j in jobs_of(store, ticket_id) if j.kind == queue.PROGRESS_UPDATE and j.status == "done"]
    assert job.attempts == 2
    assert len(api.texts_to("oKilled1")) == 1


async def test_worker_refuses_a_bad_now(sqlite_url):
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "worker", "--once", "--now", "tomorrow",
                                                cwd=PROJECT_ROOT, env=dict(os.environ, DATABASE_URL=sqlite_url,
                                                                          WECHAT_APP_ID=APP_ID, WECHAT_APP_SECRET=APP_SECRET,
                                                                          RASA_AUTH_TOKEN=RASA_TOKEN),
                                                stderr=asyncio.subprocess.PIPE)
    _out, err = await proc.communicate()
    assert proc.returncode == 2 and b"bad --now" in err


def test_a_claimed_job_is_leased_to_its_worker(store, rules):
    open_complaint(store, rules, "oClaim1", chatted=WED_10)
    claimed = queue.claim_due(store, "w1", MON_10)
    assert sorted(j.kind for j in claimed) == [queue.PROGRESS_UPDATE, queue.SLA_CHECK]
    assert queue.claim_due(store, "w2", MON_10 + timedelta(minutes=4)) == []  # still w1's
    # w2 may not finish w1's job; once the lease ran out it claims it itself.
    queue.complete(store, claimed[0].id, "w2", MON_10)
    again = queue.claim_due(store, "w2", MON_10 + timedelta(minutes=6))
    assert sorted(j.id for j in again) == sorted(j.id for j in claimed)
    assert all(j.attempts == 2 for j in again)


async def test_callback_waits_for_a_down_assistant_and_sends_nothing_meanwhile(store, rules, wechat):
    from bot.cases.tickets import resolve_ticket
    api, url = wechat
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid="oRasaDown1", description="阳台灯不亮", room="3栋",
                                    visit_time=None, channel="wechat", now=WED_10)
        resolve_ticket(s, rules, ticket, actor="staff:wang", channel="console", note="换了灯泡", now=WED_10)
        ticket_id = ticket.id
    callback_at = WED_10 + timedelta(hours=2)
    async with aiohttp.ClientSession() as http:
        # The assistant (Rasa and the action server) is unreachable: the job fails and waits.
        assert await worker_for(store, rules, http, url, callback_at).run_due() == {"failed": 1}
    [job] = [j for j in jobs_of(store, ticket_id) if j.kind == queue.SATISFACTION_CALLBACK]
    assert job.status == "pending" and job.attempts == 1 and "unreachable" in job.last_error
    assert job.due_at == callback_at + timedelta(minutes=1)
    assert api.messages == [] and api.templates == []


async def test_old_message_logs_are_purged_daily_and_case_records_kept(store, rules, wechat):
    from bot.channels.wechat import inbound
    from bot.channels.wechat.models import InboundMessage
    from bot.worker.handlers import schedule_daily
    _api, url = wechat
    long_ago, recent = WED_10 - timedelta(days=200), WED_10 - timedelta(days=2)
    for key, when in (("old", long_ago), ("new", recent)):
        stored = inbound.record_inbound(store, dedupe_key=key, openid="oLogs1", msg_type="text", event=None,
                                        content="我家电话13812345678", media=None, now=when)
        with store.transaction() as s:
            s.add(OutboundMessage(openid="oLogs1", inbound_id=stored.id if key == "new" else None, content="您好",
                                  created_at=when, status="sent"))
    ticket_id = open_complaint(store, rules, "oLogs1", now=long_ago, chatted=long_ago)
    schedule_daily(store, rules, WED_10)
    schedule_daily(store, rules, WED_10 + timedelta(minutes=5))  # the same day: still one job
    with store.transaction() as s:
        [job] = s.execute(select(Job).where(Job.kind == queue.MESSAGE_LOG_RETENTION)).scalars().all()
        assert job.due_at == datetime(2026, 11, 25, 19, 30)  # 03:30 the next morning, Shanghai
    async with aiohttp.ClientSession() as http:
        await worker_for(store, rules, http, url, job.due_at).run_due()
    with store.transaction() as s:
        assert [m.dedupe_key for m in s.execute(select(InboundMessage)).scalars()] == ["new"]
        # (the worker's own attempts for the old complaint are new rows, written at job time)
        assert [m.created_at for m in s.execute(select(OutboundMessage)).scalars() if m.created_at < WED_10] == [recent]
        assert s.get(Ticket, ticket_id).events[0].action == "created"  # the case record stays


async def test_a_late_worker_sends_one_progress_update_not_a_burst(store, rules, wechat):
    api, url = wechat
    ticket_id = open_complaint(store, rules, "oLate1", chatted=WED_10 + timedelta(days=20))
    async with aiohttp.ClientSession() as http:
        # The worker was down for three weeks; the complaint is still open.
        await worker_for(store, rules, http, url, WED_10 + timedelta(days=21)).run_due()
    assert len(api.texts_to("oLate1")) == 1
    pending = [j for j in jobs_of(store, ticket_id) if j.kind == queue.PROGRESS_UPDATE and j.status == "pending"]
    assert len(pending) == 1 and pending[0].due_at > WED_10 + timedelta(days=21)


async def test_a_down_wechat_api_is_a_recorded_failed_attempt(store, rules):
    from tests.live import free_port

    ticket_id = open_complaint(store, rules, "oApiDown1", chatted=MON_10)
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with aiohttp.ClientSession() as http:
        await worker_for(store, rules, http, nowhere, MON_10 - timedelta(minutes=1)).run_due()  # the SLA check
        # WeChat's API is unreachable: nothing was sent, the attempt is on the case, the job waits for its retry.
        result = await worker_for(store, rules, http, nowhere, MON_10).run_due()
    assert result == {"failed": 1}
    with store.transaction() as s:
        notified = [e.result for e in s.get(Ticket, ticket_id).events if e.action == "notified"]
        assert len(notified) == 1 and notified[0].startswith("custom: failed (ClientConnectorError")
        assert s.execute(select(OutboundMessage).where(OutboundMessage.status == "sent")).first() is None


async def test_a_complaint_without_a_first_feedback_in_48_hours_alerts_staff(store, rules, wechat):
    api, url = wechat
    with store.transaction() as s:
        ticket = open_complaint_ticket(s, rules, openid="oFeedback1", description="楼道灯坏了一个月",
                                       demand="尽快修", room="3栋", channel="wechat", now=WED_10)
        ticket_id, due = ticket.id, ticket.first_feedback_due_at
    assert due == WED_10 + timedelta(hours=48)
    async with aiohttp.ClientSession() as http:
        await worker_for(store, rules, http, url, due).run_due()
    with store.transaction() as s:
        details = [a.detail for a in s.execute(select(StaffAlert).where(StaffAlert.ticket_id == ticket_id)).scalars()]
    assert any("no first feedback" in d for d in details)
    assert api.texts_to("oFeedback1") == []  # staff are chased; the resident is not told a breach

