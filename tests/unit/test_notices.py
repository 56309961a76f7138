"""Notices to residents and proactive care, on SQLite and PostgreSQL: composed for a project,
some buildings or rooms; previewed; scheduled as one delivery per bound, following household
contact, spaced to the rate; sent by the worker to a fake WeChat API on loopback, once each,
across reruns and crashes; read back by the FAQ's 停水停电 answer; welcome callbacks and holiday
greetings once per household."""
from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import inspect, select

from actions.knowledge import ActionAnswerFaq
from bot.app import migrate
from bot.assistant.client import AssistantClient
from bot.cases import context as runtime
from bot.cases import notices
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.delivery import WeChatResidentChannel
from bot.channels.wechat.models import OutboundMessage
from bot.core.clock import utcnow
from bot.core.company import Company
from bot.core.notices import NoticeError
from bot.core.rules import ProjectRules, TemplateMessage
from bot.db import queue
from bot.db.models import Job, NoticeDelivery, Resident, ResidentNotice, StaffAlert
from bot.db.store import TicketStore, make_engine
from bot.worker.handlers import Context, schedule_daily
from bot.worker.loop import Worker
from tests.unit.test_worker import RASA_TOKEN, wechat  # noqa: F401 - the fake WeChat API fixture
from tests.wechat_fakes import APP_ID, APP_SECRET

NOW = datetime(2026, 12, 2, 2, 0)  # Wed 2 Dec 2026 10:00 in Shanghai, as naive UTC
OUTAGE_START = datetime(2026, 12, 5, 1, 0)  # Sat 5 Dec 09:00 local
OUTAGE_END = datetime(2026, 12, 5, 4, 0)  # 12:00 local
LONG_AGO = NOW - timedelta(days=100)

# The roster: who is bound, following, in WeChat's 48-hour window.
A1, A2, A3 = "oNoticeA1", "oNoticeA2", None  # 3栋: in the window; outside it; never bound
B1, B2 = "oNoticeB1", "oNoticeB2"  # 5栋: in the window; unfollowed
C1 = "oNoticeC1"  # 7栋
X1 = "oNoticeX1"  # 滨江花园's 3栋2单元501: the same room, another project

NOTICE_TEMPLATE = TemplateMessage("TPL_NOTICE", (("thing1", "{title}"), ("time2", "{period}"), ("thing3", "{summary}")))


def add_resident(store: TicketStore, *, room: str, openid: str | None, project: str = "default", name: str = "王小明",
                 bound_at: datetime | None = LONG_AGO, subscribed: bool = True, chatted: datetime | None = None,
                 tags: tuple[str, ...] = (), occupancy: str = "occupied", now: datetime = NOW) -> int:
    with store.transaction() as s:
        resident = Resident(project=project, openid=openid, room=room, name=name, phone="13812345678",
                            tags=list(tags), occupancy=occupancy, customer_type="individual",
                            property_use="residential", created_at=bound_at or now, updated_at=bound_at or now,
                            bound_at=bound_at if openid else None, subscribed=subscribed and openid is not None,
                            last_message_at=now - timedelta(hours=1) if chatted is None else chatted)
        s.add(resident)
        s.flush()
        return resident.id


@pytest.fixture
def roster(store: TicketStore) -> TicketStore:
    add_resident(store, room="3栋2单元501", openid=A1, name="王小明")
    add_resident(store, room="3栋2单元502", openid=A2, name="李华", chatted=NOW - timedelta(days=3))
    add_resident(store, room="3栋1单元101", openid=A3, name="张三")
    add_resident(store, room="5栋1单元301", openid=B1, name="赵六")
    add_resident(store, room="5栋1单元302", openid=B2, name="钱七", subscribed=False)
    add_resident(store, room="7栋1单元101", openid=C1, name="孙八")
    add_resident(store, room="3栋2单元501", openid=X1, name="周九", project="binjiang")
    return store


def fast(rules: ProjectRules, per_minute: int = 120, **templates: TemplateMessage) -> ProjectRules:
    return dataclasses.replace(rules, notices=dataclasses.replace(rules.notices, per_minute=per_minute),
                               templates={**rules.templates, **templates})


def outage(store: TicketStore, rules: ProjectRules, *, buildings: tuple[str, ...] = ("3", "5栋"),
           rooms: tuple[str, ...] = (), send_at: datetime = NOW, title: str = "3栋5栋停水",
           schedule: bool = True, now: datetime = NOW) -> int:
    with store.transaction() as s:
        notice = notices.compose(s, rules, kind="outage", title=title, body="二次供水水箱清洗，请提前储水。",
                                 buildings=buildings, rooms=rooms, starts_at=OUTAGE_START, ends_at=OUTAGE_END,
                                 send_at=send_at, actor="staff:wang", now=now)
        if schedule:
            notices.schedule(s, rules, notice, now)
        return notice.id


def worker(store: TicketStore, company: Company, http: aiohttp.ClientSession, api_url: str, now: datetime) -> Worker:
    channel = WeChatResidentChannel(WeChatApi(http, store, api_url, APP_ID, APP_SECRET, timeout=3), store, company)
    ctx = Context(store, company, channel, AssistantClient(http, "http://127.0.0.1:9", "http://127.0.0.1:9", RASA_TOKEN))
    return Worker(ctx, "notice-worker", clock=lambda: now)


async def run(store: TicketStore, rules_or_company: ProjectRules | Company, url: str, now: datetime) -> dict[str, int]:
    company = rules_or_company if isinstance(rules_or_company, Company) else Company.of(rules_or_company)
    async with aiohttp.ClientSession() as http:
        return await worker(store, company, http, url, now).run_due()


def deliveries(store: TicketStore, notice_id: int) -> dict[str, tuple[str, str | None]]:
    """openid -> (status, via)."""
    with store.transaction() as s:
        rows = s.execute(select(Resident.openid, NoticeDelivery.status, NoticeDelivery.via)
                         .join(Resident, NoticeDelivery.resident_id == Resident.id)
                         .where(NoticeDelivery.notice_id == notice_id)).all()
        return {str(openid): (status, via) for openid, status, via in rows}


def delivery_jobs(store: TicketStore) -> list[Job]:
    with store.transaction() as s:
        return list(s.execute(select(Job).where(Job.kind == queue.NOTICE_DELIVERY).order_by(Job.due_at, Job.id))
                    .scalars())


def status_of(store: TicketStore, notice_id: int) -> str:
    with store.transaction() as s:
        return s.get(ResidentNotice, notice_id).status  # type: ignore[union-attr]


# --- composing and previewing ------------------------------------------------------------------


@pytest.mark.parametrize("changes, problem", [
    ({"title": "这是一个超过二十个字的很长很长的停水通知标题呀"}, "at most 20"),
    ({"title": "两行\n标题"}, "one line"),
    ({"body": ""}, "title and a body"),
    ({"kind": "party"}, "unknown kind"),
    ({"buildings": ("9栋",)}, "unknown building '9栋'"),
    ({"buildings": ("东区",)}, "unknown building '东区'"),
    ({"rooms": ("随便哪里",)}, "cannot read the room"),
    ({"rooms": ("3栋2单元999",)}, "not on the roster"),
    ({"starts_at": None}, "needs the period"),
    ({"ends_at": OUTAGE_START - timedelta(hours=1)}, "ends before it starts"),
    ({"send_at": OUTAGE_END}, "after the period"),
])
def test_compose_refuses_what_wechat_or_the_roster_cannot_take(roster, rules, changes: dict[str, Any], problem: str):
    spec: dict[str, Any] = dict(kind="outage", title="停水通知", body="水箱清洗", buildings=("3栋",), rooms=(),
                                starts_at=OUTAGE_START, ends_at=OUTAGE_END, send_at=NOW)
    spec.update(changes)
    with roster.transaction() as s, pytest.raises(NoticeError, match=problem):
        notices.compose(s, rules, actor="staff:wang", now=NOW, **spec)


def test_compose_normalises_buildings_and_rooms(roster, rules):
    with roster.transaction() as s:
        notice = notices.compose(s, rules, kind="works", title="外墙维修", body="搭设脚手架，请勿靠近。",
                                 buildings=("3", "五号楼", "3栋"), rooms=("7-1-101",), starts_at=OUTAGE_START,
                                 ends_at=OUTAGE_END, actor="staff:wang", now=NOW)
        assert notice.target == {"buildings": ["3栋", "5栋"], "rooms": ["7栋1单元101"]}
        assert (notice.status, notice.send_at, notice.project) == ("draft", NOW, "default")
        # A reminder needs no period.
        reminder = notices.compose(s, rules, kind="reminder", title="天冷注意防冻", body="请关好门窗，包好水表。",
                                   actor="staff:wang", now=NOW)
        assert reminder.target == {"buildings": [], "rooms": []} and reminder.starts_at is None


def test_preview_counts_the_bound_followers_of_the_target_only(roster, rules):
    with roster.transaction() as s:
        by_building = notices.compose(s, rules, kind="outage", title="3栋停水", body="水箱清洗，请提前储水。",
                                      buildings=("3栋",), starts_at=OUTAGE_START, ends_at=OUTAGE_END,
                                      actor="staff:wang", now=NOW)
        by_rooms = notices.compose(s, rules, kind="outage", title="两户停水", body="更换水表。",
                                   rooms=("5栋1单元301", "3栋2单元501"), starts_at=OUTAGE_START,
                                   ends_at=OUTAGE_END, actor="staff:wang", now=NOW)
        whole = notices.compose(s, rules, kind="public", title="公共收益公示", body="第三季度公共收益已公示。",
                                actor="staff:wang", now=NOW)
        count, sample, text = notices.preview(s, rules, by_building)
        assert count == 2  # 3栋: 501 and 502 (101 never bound)
        assert sample == ["3栋2单元*** 王**", "3栋2单元*** 李*"]
        assert text.splitlines() == [
            "【停水停电】3栋停水", "范围：3栋", "影响时间：12月5日 09:00 至 12:00", "水箱清洗，请提前储水。",
            "示例小区物业服务中心，电话 0571-8888 6666。有疑问直接回复这条消息。"]
        assert notices.preview(s, rules, by_rooms).recipients == 2
        assert "范围：3栋2单元501、5栋1单元301" in notices.preview(s, rules, by_rooms).text
        # The whole project: everyone bound and following, never another project's resident.
        assert {r.openid for r in notices.recipients(s, whole)} == {A1, A2, B1, C1}
        assert "范围：全小区" in notices.preview(s, rules, whole).text


# --- scheduling ----------------------------------------------------------------------------------


def test_schedule_writes_one_delivery_per_recipient_spaced_to_the_rate_and_reruns_add_only_what_is_missing(
        roster, rules):
    rules = fast(rules, per_minute=120)  # one every half second
    send_at = NOW + timedelta(hours=1)
    notice_id = outage(roster, rules, send_at=send_at)
    assert deliveries(roster, notice_id) == {A1: ("pending", None), A2: ("pending", None), B1: ("pending", None)}
    jobs = delivery_jobs(roster)
    assert [j.due_at - send_at for j in jobs] == [timedelta(seconds=s) for s in (0, 0.5, 1.0)]
    assert status_of(roster, notice_id) == "scheduled"
    with roster.transaction() as s:
        notice = s.get(ResidentNotice, notice_id)
        assert notices.schedule(s, rules, notice, NOW + timedelta(minutes=1)) == (0, 3)
    assert len(delivery_jobs(roster)) == 3
    # A household of 5栋 bound since: the rerun adds it, queued behind the others.
    add_resident(roster, room="5栋1单元303", openid="oNoticeB3", bound_at=NOW)
    with roster.transaction() as s:
        assert notices.schedule(s, rules, s.get(ResidentNotice, notice_id), NOW + timedelta(minutes=2)) == (1, 3)
    jobs = delivery_jobs(roster)
    assert len(jobs) == 4 and jobs[-1].due_at - send_at == timedelta(seconds=1.5)
    # A second notice at the same time queues behind the first: the project keeps to the rate.
    second = outage(roster, rules, buildings=("7栋",), title="7栋停电", send_at=send_at)
    [seventh] = [j for j in delivery_jobs(roster) if j.payload["notice_id"] == second]
    assert seventh.due_at - send_at == timedelta(seconds=2.0)


# --- the worker ----------------------------------------------------------------------------------


async def test_the_worker_sends_each_delivery_once_and_records_the_unreachable(roster, rules, wechat):  # noqa: F811
    api, url = wechat
    rules = fast(rules)
    notice_id = outage(roster, rules)
    assert await run(roster, rules, url, NOW + timedelta(minutes=1)) == {"done": 3}
    [a1] = api.texts_to(A1)
    assert a1.startswith("【停水停电】3栋5栋停水\n范围：3栋、5栋\n影响时间：12月5日 09:00 至 12:00")
    assert len(api.texts_to(B1)) == 1
    # Outside the 48-hour window, and no `notice` template configured: unreachable, nobody alerted.
    assert api.everything_to(A2) == []
    assert deliveries(roster, notice_id) == {A1: ("sent", "custom"), A2: ("unreachable", None),
                                            B1: ("sent", "custom")}
    assert status_of(roster, notice_id) == "sent"
    with roster.transaction() as s:
        assert s.execute(select(StaffAlert)).scalars().all() == []
        assert "no 'notice' template" in (s.execute(select(NoticeDelivery.error).where(
            NoticeDelivery.status == "unreachable")).scalar_one() or "")
        # Scheduling again and running again: nobody gets it twice.
        assert notices.schedule(s, rules, s.get(ResidentNotice, notice_id), NOW + timedelta(minutes=2)) == (0, 3)
    assert await run(roster, rules, url, NOW + timedelta(minutes=3)) == {}
    assert len(api.messages) == 2 and api.templates == []


async def test_outside_the_window_the_notice_template_carries_it(roster, rules, wechat):  # noqa: F811
    api, url = wechat
    rules = fast(rules, notice=NOTICE_TEMPLATE)
    notice_id = outage(roster, rules, buildings=("3栋",))
    assert await run(roster, rules, url, NOW + timedelta(minutes=1)) == {"done": 2}
    [sent] = api.templates
    assert sent["touser"] == A2 and sent["template_id"] == "TPL_NOTICE"
    fields = {k: v["value"] for k, v in sent["data"].items()}
    assert fields == {"thing1": "3栋5栋停水", "time2": "12月5日 09:00~12:00", "thing3": "二次供水水箱清洗，请提前储水。"}
    assert deliveries(roster, notice_id) == {A1: ("sent", "custom"), A2: ("sent", "template")}


async def test_a_crash_midway_resumes_without_sending_anyone_the_notice_twice(roster, rules, wechat):  # noqa: F811
    api, url = wechat
    rules = fast(rules)
    notice_id = outage(roster, rules)
    api.busy_sends = 1  # WeChat fails the first send: that job is retried after a minute
    assert await run(roster, rules, url, NOW + timedelta(minutes=1)) == {"done": 2, "failed": 1}
    assert deliveries(roster, notice_id)[A1] == ("pending", None)
    with roster.transaction() as s:
        error = s.execute(select(NoticeDelivery.error).join(Resident, NoticeDelivery.resident_id == Resident.id)
                          .where(Resident.openid == A1)).scalar_one()
        assert "system error" in (error or "")
    assert status_of(roster, notice_id) == "sending"
    assert await run(roster, rules, url, NOW + timedelta(minutes=3)) == {"done": 1}
    assert deliveries(roster, notice_id)[A1] == ("sent", "custom") and status_of(roster, notice_id) == "sent"
    # A worker that died after WeChat took B1's message, before recording it: the lease runs out,
    # the job runs again, the outbound key says it went out; it is recorded, not sent again.
    with roster.transaction() as s:
        delivery = s.execute(select(NoticeDelivery).join(Resident, NoticeDelivery.resident_id == Resident.id)
                             .where(Resident.openid == B1)).scalar_one()
        delivery.status, delivery.via, delivery.sent_at = "pending", None, None
        job = s.execute(select(Job).where(Job.idempotency_key == f"notice_delivery:{notice_id}:{delivery.resident_id}"
                                          )).scalar_one()
        job.status, job.locked_until, job.locked_by = "running", NOW, "dead-worker"
    assert await run(roster, rules, url, NOW + timedelta(minutes=10)) == {"done": 1}
    assert [len(api.texts_to(openid)) for openid in (A1, B1)] == [1, 1]
    assert deliveries(roster, notice_id)[B1][0] == "sent"
    with roster.transaction() as s:
        sent = s.execute(select(OutboundMessage.openid).where(OutboundMessage.status == "sent")).scalars().all()
        assert sorted(sent) == [A1, B1]


async def test_a_delivery_that_keeps_failing_is_recorded_failed_without_an_alert_per_resident(roster, rules,
                                                                                              wechat):  # noqa: F811
    api, url = wechat
    rules = dataclasses.replace(fast(rules), follow_up=dataclasses.replace(rules.follow_up, job_max_attempts=2))
    notice_id = outage(roster, rules, buildings=(), rooms=("3栋2单元501",))
    api.busy_sends = 10
    assert await run(roster, rules, url, NOW + timedelta(minutes=1)) == {"failed": 1}
    assert await run(roster, rules, url, NOW + timedelta(minutes=3)) == {"done": 1}
    assert deliveries(roster, notice_id) == {A1: ("failed", None)}
    assert status_of(roster, notice_id) == "sent"
    with roster.transaction() as s:
        assert s.execute(select(StaffAlert)).scalars().all() == []


async def test_a_cancelled_notice_sends_nothing_more_and_is_no_longer_current(roster, rules, wechat):  # noqa: F811
    api, url = wechat
    rules = fast(rules, per_minute=1)  # one a minute: the first goes, then it is cancelled
    notice_id = outage(roster, rules)
    assert await run(roster, rules, url, NOW + timedelta(seconds=30)) == {"done": 1}
    with roster.transaction() as s:
        assert len(notices.current_notices(s, "default", NOW + timedelta(minutes=1))) == 1
        assert notices.cancel(s, s.get(ResidentNotice, notice_id), NOW + timedelta(minutes=1)) == 2
        assert notices.current_notices(s, "default", NOW + timedelta(minutes=1)) == []
        with pytest.raises(NoticeError, match="cancelled"):
            notices.schedule(s, rules, s.get(ResidentNotice, notice_id), NOW + timedelta(minutes=1))
    assert await run(roster, rules, url, NOW + timedelta(minutes=10)) == {}
    assert len(api.messages) == 1
    assert sorted(status for status, _via in deliveries(roster, notice_id).values()) == ["cancelled", "cancelled", "sent"]


def test_current_notices_cover_now_or_the_next_days(roster, rules):
    with roster.transaction() as s:
        soon = notices.compose(s, rules, kind="outage", title="停水", body="水箱清洗。", buildings=("3栋",),
                               starts_at=OUTAGE_START, ends_at=OUTAGE_END, actor="staff:wang", now=NOW)
        later = notices.compose(s, rules, kind="works", title="路面施工", body="南门道路封闭。",
                                starts_at=NOW + timedelta(days=10), ends_at=NOW + timedelta(days=12),
                                actor="staff:wang", now=NOW)
        unsent = notices.compose(s, rules, kind="outage", title="停电", body="检修。", starts_at=OUTAGE_START,
                                 ends_at=OUTAGE_END, send_at=NOW + timedelta(hours=5), actor="staff:wang", now=NOW)
        for notice in (soon, later, unsent):
            notices.schedule(s, rules, notice, NOW)
        ids = lambda found: [n.id for n in found]  # noqa: E731
        assert ids(notices.current_notices(s, "default", NOW)) == [soon.id]  # 3 days ahead; not yet announced
        assert ids(notices.current_notices(s, "default", NOW + timedelta(hours=6))) == [soon.id, unsent.id]
        assert ids(notices.current_notices(s, "default", NOW + timedelta(days=8))) == [later.id]
        assert ids(notices.current_notices(s, "default", OUTAGE_END + timedelta(minutes=1), "outage")) == []
        assert notices.current_notices(s, "binjiang", NOW) == []


# --- the FAQ's 停水停电 answer ----------------------------------------------------------------------


def faq_tracker(sender: str) -> Tracker:
    latest: dict[str, Any] = {"text": "明天停水吗", "intent": {"name": "faq", "confidence": 0.97}, "entities": [],
                              "metadata": {"channel": "wechat"},
                              "response_selector": {"faq": {"response": {"intent_response_key": "faq/outage_notice",
                                                                         "confidence": 0.9}}}}
    return Tracker(sender_id=sender, slots={}, latest_message=latest, events=[], paused=False,
                   followup_action=None, active_loop={}, latest_action_name="action_listen")


async def answer(sender: str) -> str:
    dispatcher = CollectingDispatcher()
    await ActionAnswerFaq().run(dispatcher, faq_tracker(sender), {})
    [message] = dispatcher.messages
    return str(message["text"])


async def test_the_outage_answer_adds_the_current_notices_of_the_resident_s_project(store, two_projects):
    now = utcnow()  # the action reads the clock
    add_resident(store, room="3栋2单元501", openid=A1, now=now)
    add_resident(store, room="3栋2单元501", openid=X1, project="binjiang", now=now)
    default, binjiang = two_projects.rules("default"), two_projects.rules("binjiang")
    faq = default.knowledge.answer("outage_notice")
    runtime.configure(store, two_projects)
    try:
        assert await answer(A1) == faq  # no notice: the FAQ as it is
        ids = {}
        with store.transaction() as s:
            for rules, title in ((default, "3栋停水"), (binjiang, "滨江花园停电")):
                notice = notices.compose(s, rules, kind="outage", title=title, body="设备检修。", buildings=("3栋",),
                                         starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=1, hours=3),
                                         send_at=now - timedelta(minutes=5), actor="staff:wang",
                                         now=now - timedelta(minutes=5))
                notices.schedule(s, rules, notice, now - timedelta(minutes=5))
                ids[rules.code] = notice.id
            far = notices.compose(s, default, kind="works", title="南门改造", body="南门封闭。",
                                  starts_at=now + timedelta(days=20), ends_at=now + timedelta(days=30),
                                  send_at=now - timedelta(minutes=5), actor="staff:wang", now=now - timedelta(minutes=5))
            notices.schedule(s, default, far, now - timedelta(minutes=5))
        text = await answer(A1)
        assert text.startswith(faq) and "近期通知：\n· 3栋停水（3栋，" in text
        assert "滨江花园停电" not in text and "南门改造" not in text
        other = await answer(X1)
        assert "滨江花园停电" in other and "3栋停水" not in other
        assert other.startswith(str(binjiang.knowledge.answer("outage_notice")))
        with store.transaction() as s:
            notices.cancel(s, s.get(ResidentNotice, ids["default"]), now)
        assert await answer(A1) == faq
    finally:
        runtime.configure(None, None)


# --- proactive care ------------------------------------------------------------------------------


async def test_a_newly_bound_household_gets_one_welcome_callback(roster, rules, wechat):  # noqa: F811
    api, url = wechat
    rules = fast(rules)
    # 8栋1单元101: a family of two bound this week (one household, two contacts).
    add_resident(roster, room="8栋1单元101", openid="oWelcome1", bound_at=NOW - timedelta(days=3))
    add_resident(roster, room="8栋1单元101", openid="oWelcome2", bound_at=NOW - timedelta(days=2))
    add_resident(roster, room="8栋1单元102", openid="oOld", bound_at=NOW - timedelta(days=60))  # long ago
    add_resident(roster, room="8栋1单元103", openid="oVacant", bound_at=NOW - timedelta(days=1), occupancy="vacant")
    # A household bound long ago whose second contact bound this week: not newly moved in.
    add_resident(roster, room="8栋1单元104", openid="oFamily1")
    add_resident(roster, room="8栋1单元104", openid="oFamily2", bound_at=NOW - timedelta(days=1))
    with roster.transaction() as s:
        assert notices.schedule_move_in_callbacks(s, rules, NOW) == 1
        assert notices.schedule_move_in_callbacks(s, rules, NOW + timedelta(hours=1)) == 0
        [welcome] = s.execute(select(ResidentNotice).where(ResidentNotice.kind == "welcome_callback")).scalars()
        assert welcome.target == {"buildings": [], "rooms": ["8栋1单元101"]} and welcome.created_by == "system"
    assert await run(roster, rules, url, NOW + timedelta(minutes=1)) == {"done": 2}
    with roster.transaction() as s:
        assert notices.schedule_move_in_callbacks(s, rules, NOW + timedelta(days=1)) == 0
    assert await run(roster, rules, url, NOW + timedelta(days=1)) == {}
    [first] = api.texts_to("oWelcome1")
    assert len(api.texts_to("oWelcome2")) == 1 and len(api.messages) == 2
    assert first.startswith("您好，欢迎入住示例小区！") and "0571-8888 6666" in first


GREETING_NOW = datetime(2026, 9, 25, 1, 0)  # 中秋节 2026 (its first day off), 09:00 in Shanghai


async def test_holiday_greetings_reach_each_special_group_household_once_a_day(store, rules, wechat):  # noqa: F811
    api, url = wechat
    rules = fast(rules)
    at = dict(now=GREETING_NOW, bound_at=GREETING_NOW - timedelta(days=200))
    # An elderly man living alone, on the roster without WeChat; his daughter is the bound contact.
    add_resident(store, room="9栋1单元101", openid=None, name="老王", tags=("living_alone_elderly",), **at)
    add_resident(store, room="9栋1单元101", openid="oDaughter", name="王芳", **at)
    add_resident(store, room="9栋1单元102", openid="oDisabled", tags=("disabled",), **at)
    add_resident(store, room="9栋1单元103", openid="oNeighbour", **at)  # no special group
    with store.transaction() as s:
        assert notices.schedule_holiday_greetings(s, rules, date(2026, 9, 26), now=GREETING_NOW) == 0  # day two
        assert notices.schedule_holiday_greetings(s, rules, date(2026, 9, 25), now=GREETING_NOW) == 2
        assert notices.schedule_holiday_greetings(s, rules, date(2026, 9, 25), now=GREETING_NOW) == 0
        [greeting] = s.execute(select(ResidentNotice).where(ResidentNotice.kind == "holiday_greeting")).scalars()
        assert greeting.send_at == datetime(2026, 9, 25, 2, 0)  # notices.care_time, 10:00 local
    assert await run(store, rules, url, GREETING_NOW + timedelta(minutes=30)) == {}  # not before 10:00
    assert await run(store, rules, url, GREETING_NOW + timedelta(hours=1, minutes=1)) == {"done": 2}
    with store.transaction() as s:
        assert notices.schedule_holiday_greetings(s, rules, date(2026, 9, 25), now=GREETING_NOW + timedelta(hours=3)) == 0
    assert await run(store, rules, url, GREETING_NOW + timedelta(hours=4)) == {}
    [text] = api.texts_to("oDaughter")
    assert text.startswith("中秋快乐！示例小区物业") and len(api.texts_to("oDisabled")) == 1
    assert api.everything_to("oNeighbour") == [] and len(api.messages) == 2
    # A project may greet on a date of its own.
    own_day = (("2026-11-30", "天冷了，注意保暖。"),)
    dated = dataclasses.replace(rules, notices=dataclasses.replace(rules.notices, greetings=own_day))
    with store.transaction() as s:
        assert notices.schedule_holiday_greetings(s, dated, date(2026, 11, 30), now=GREETING_NOW) == 2


async def test_the_daily_job_runs_the_proactive_care_of_every_project(store, two_projects, wechat):  # noqa: F811
    api, url = wechat
    add_resident(store, room="8栋1单元101", openid="oNewDefault", bound_at=NOW - timedelta(days=1))
    add_resident(store, room="2栋1单元101", openid="oNewBinjiang", project="binjiang", bound_at=NOW - timedelta(days=1))
    default = two_projects.default
    schedule_daily(store, default, NOW - timedelta(hours=2))
    schedule_daily(store, default, NOW - timedelta(hours=1))  # the same day: still one job
    with store.transaction() as s:
        [care] = s.execute(select(Job).where(Job.kind == queue.PROACTIVE_CARE)).scalars().all()
        assert care.due_at == NOW  # notices.care_time, 10:00 local
    # The care job, then the two welcome callbacks it scheduled (due at once).
    assert await run(store, two_projects, url, NOW) == {"done": 3}
    with store.transaction() as s:
        welcomes = s.execute(select(ResidentNotice.project, ResidentNotice.target)).all()
        assert sorted((p, t["rooms"]) for p, t in welcomes) == [("binjiang", ["2栋1单元101"]),
                                                               ("default", ["8栋1单元101"])]
    assert await run(store, two_projects, url, NOW + timedelta(hours=12)) == {}  # nothing twice
    assert len(api.texts_to("oNewDefault")) == 1
    [binjiang] = api.texts_to("oNewBinjiang")
    assert "滨江花园" in binjiang and "0571-6666 1234" in binjiang


def test_the_notice_tables_migrate_down_and_up(sqlite_url):
    migrate.upgrade(sqlite_url)
    migrate.downgrade(sqlite_url, "0010")
    engine = make_engine(sqlite_url)
    try:
        assert not {"notices", "notice_deliveries"} & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        assert {"notices", "notice_deliveries"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
