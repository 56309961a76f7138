"""Self-service on the household file: a new phone number, the past year's cases, 复议 of a finished case."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.household import ActionChangePhone, ActionRequestReview, ValidatePhoneChangeForm
from actions.status import ActionCheckStatus
from bot.cases.household import (
    PHONE_CHANGE_EVENT,
    PhoneChange,
    PhoneChangeError,
    case_history,
    change_phone,
    confirm_phone_change,
    requested_phone,
)
from bot.cases.residents import bind_resident, import_roster
from bot.cases.reviews import REVIEW_EVENT, Review, request_review
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket, resolve_ticket, transition
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.kinds import TicketKind, TicketStatus
from bot.core.references import CaseReference
from bot.core.rules import SelfServiceRules, parse_rules
from bot.core.self_service import asks_for_history, months_before, new_phone_in
from bot.db.models import Resident, StaffAlert, Ticket
from tests.unit.test_actions import DOMAIN, OPENID, slot_events, tickets, tracker, wired  # noqa: F401 - fixture

ROOM = "3栋2单元501"
ON_FILE = "13812345678"
RE_LISTED = "13912345678"  # the roster lists it for the room under the same name: confirmed
SPOUSE = "13700001111"  # listed for the room under another name: staff decide
UNKNOWN = "15000002222"


# --- the pure rules -------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("我今年报过哪些修", True), ("查一下历史工单", True), ("已办结的也列出来", True), ("查看我的歷史工單", True),
    ("近一年的单子", True), ("查询进度", False), ("师傅什么时候到", False),
])
def test_what_asks_for_the_past(text, expected):
    assert asks_for_history(text) is expected


@pytest.mark.parametrize("moment,months,expected", [
    (datetime(2026, 12, 31, 23, 30), 12, datetime(2025, 12, 31, 23, 30)),
    (datetime(2028, 2, 29, 9, 0), 12, datetime(2027, 2, 28, 9, 0)),
    (datetime(2026, 3, 31, 1, 0), 1, datetime(2026, 2, 28, 1, 0)),
    (datetime(2026, 1, 15), 13, datetime(2024, 12, 15)),
])
def test_months_before_keeps_to_the_calendar(moment, months, expected):
    assert months_before(moment, months) == expected


@pytest.mark.parametrize("text,expected", [
    ("我换号了 新号码是13912345678", "13912345678"),
    ("我换号了 139-1234-5678", "13912345678"),
    ("把13812345678改成13912345678", "13912345678"),
    ("新号13912345678，原来那个13800001111别打了", "13912345678"),
    ("以后别打13800001111了 打13900002222", "13900002222"),
    ("原号码13400001111作废 改用13400002222", "13400002222"),
    ("我换手机号了", None),
])
def test_the_new_number_in_a_message(text, expected):
    assert new_phone_in(text) == expected


def test_the_windows_are_project_rules():
    parsed = parse_rules({"self_service": {"history_months": 6, "review_within_days": 15}})
    assert parsed.self_service == SelfServiceRules(history_months=6, review_within_days=15)
    assert parse_rules({}).self_service == SelfServiceRules(history_months=12, review_within_days=30)


# --- a new phone number -----------------------------------------------------------------------


@pytest.fixture
def household(wired, rules, tmp_path):  # noqa: F811
    """王小明's household, bound to OPENID; the roster already lists his new number, and his wife's."""
    roster = tmp_path / "roster.csv"
    roster.write_text(f"room,name,phone,tags\n{ROOM},王小明,{ON_FILE},\n{ROOM},王小明,{RE_LISTED},独居老人\n"
                      f"{ROOM},李芳,{SPOUSE},\n", encoding="utf-8")
    with wired.transaction() as s:
        import_roster(s, roster, projects={rules.code}, default_project=rules.code)
        assert bind_resident(s, rules, openid=OPENID, room=ROOM, phone=ON_FILE, channel="wechat").room == ROOM
    return SimpleNamespace(store=wired, roster=roster)


def change(store, rules, phone, openid=OPENID, said="我换手机号了"):  # type: ignore[no-untyped-def]
    with store.transaction() as s:
        return change_phone(s, rules, openid=openid, phone=phone, said=said, channel="wechat")


def file_of(store, openid=OPENID):  # type: ignore[no-untyped-def]
    with store.transaction() as s:
        return s.execute(select(Resident).where(Resident.openid == openid)).scalar_one()


def test_a_number_the_roster_lists_for_the_room_is_applied_at_once(household, rules):
    result = change(household.store, rules, RE_LISTED)
    assert result.outcome is PhoneChange.APPLIED
    resident = file_of(household.store)
    assert (resident.phone, resident.name, resident.room) == (RE_LISTED, "王小明", ROOM)
    assert "living_alone_elderly" in resident.tags  # the roster entry's special-group tag came along
    assert tickets(household.store) == []  # nothing for staff to do
    with household.store.transaction() as s:
        # The roster entry was folded into the file: room + phone is one record, so a re-import still works.
        assert s.execute(select(func.count()).select_from(Resident)
                         .where(Resident.room == ROOM, Resident.phone == RE_LISTED)).scalar_one() == 1
        # The old number is the roster's again, unbound.
        assert import_roster(s, household.roster, projects={rules.code}, default_project=rules.code) == (1, 2)
    assert file_of(household.store).phone == RE_LISTED


def test_an_unknown_number_waits_for_staff_in_one_request(household, rules):
    first = change(household.store, rules, UNKNOWN, said=f"我换号了 新号{UNKNOWN}")
    assert first.outcome is PhoneChange.PENDING and first.follow_up_number
    again = change(household.store, rules, "15000003333")
    assert again.follow_up_number == first.follow_up_number  # the same request, the newest number
    [request] = tickets(household.store)
    assert request.kind == "enquiry" and request.room == ROOM
    assert UNKNOWN not in request.description and "150****3333" in request.description  # masked where listed
    with household.store.transaction() as s:
        request = s.get(Ticket, request.id)
        assert [e.action for e in request.events].count(PHONE_CHANGE_EVENT) == 2
        assert requested_phone(request) == "15000003333"  # in full in the event, for the staff member to call
    assert file_of(household.store).phone == ON_FILE  # nothing changes before staff confirm


def test_another_members_number_is_not_taken_from_the_roster(household, rules):
    assert change(household.store, rules, SPOUSE).outcome is PhoneChange.PENDING
    with household.store.transaction() as s:
        wife = s.execute(select(Resident).where(Resident.phone == SPOUSE)).scalar_one()
        assert wife.name == "李芳" and wife.openid is None
    assert file_of(household.store).phone == ON_FILE


def test_staff_confirm_a_waiting_number(household, rules):
    number = change(household.store, rules, UNKNOWN).follow_up_number
    with household.store.transaction() as s:
        confirm_phone_change(s, rules, str(number), actor="staff:wang", channel="console")
    assert file_of(household.store).phone == UNKNOWN
    [request] = tickets(household.store)
    assert request.status == TicketStatus.RESOLVED.value
    with household.store.transaction() as s, pytest.raises(PhoneChangeError):
        confirm_phone_change(s, rules, str(number), actor="staff:wang", channel="console")  # done already
    with household.store.transaction() as s:
        repair = open_repair_ticket(s, rules, openid=OPENID, description="灯不亮", room=ROOM, visit_time=None,
                                    channel="wechat")
        with pytest.raises(PhoneChangeError):
            confirm_phone_change(s, rules, repair.number, actor="staff:wang", channel="console")


def test_the_roster_confirming_later_settles_the_waiting_request(household, rules):
    change(household.store, rules, UNKNOWN)
    assert change(household.store, rules, RE_LISTED).outcome is PhoneChange.APPLIED
    [request] = tickets(household.store)
    assert request.status == TicketStatus.RESOLVED.value


def test_unbound_residents_and_the_same_number(household, rules):
    assert change(household.store, rules, UNKNOWN, openid="oNotBound").outcome is PhoneChange.NOT_BOUND
    assert change(household.store, rules, ON_FILE).outcome is PhoneChange.UNCHANGED
    assert tickets(household.store) == []


async def test_the_form_asks_for_the_number_unless_the_message_gave_it(household):
    form = ValidatePhoneChangeForm()
    opened = await form.run(CollectingDispatcher(), tracker("我换手机号了", intent="change_phone",
                                                            slots={"requested_slot": None}), DOMAIN)
    assert "new_phone" not in slot_events(opened)  # Rasa asks utter_ask_new_phone
    answer = await form.run(CollectingDispatcher(), tracker("139 1234 5678", intent="inform",
                                                            slots={"requested_slot": "new_phone"}), DOMAIN)
    assert slot_events(answer)["new_phone"] == RE_LISTED
    said = await form.run(CollectingDispatcher(), tracker(f"把{ON_FILE}改成{UNKNOWN}", intent="change_phone",
                                                          slots={"requested_slot": None}), DOMAIN)
    assert slot_events(said)["new_phone"] == UNKNOWN


async def test_an_unbound_resident_is_told_how_to_bind_not_asked_for_a_number(wired):  # noqa: F811
    events = await ValidatePhoneChangeForm().run(
        CollectingDispatcher(), tracker("我换手机号了", intent="change_phone", slots={"requested_slot": None}), DOMAIN)
    assert slot_events(events).get("requested_slot", "unset") is None  # the form ends at once
    dispatcher = CollectingDispatcher()
    await ActionChangePhone().run(dispatcher, tracker("我换手机号了", intent="change_phone"), DOMAIN)
    assert dispatcher.messages[0]["text"] == replies.phone_change_needs_binding()


async def test_the_resident_hears_which_happened(household):
    applied, pending = CollectingDispatcher(), CollectingDispatcher()
    events = await ActionChangePhone().run(applied, tracker(slots={"new_phone": RE_LISTED}), DOMAIN)
    assert SlotSet("new_phone", None) in events
    assert "已更新为 139****5678" in applied.messages[0]["text"]
    events = await ActionChangePhone().run(pending, tracker(slots={"new_phone": UNKNOWN}), DOMAIN)
    [request] = tickets(household.store)
    text = pending.messages[0]["text"]
    assert request.number in text and "核实" in text and UNKNOWN not in text
    assert slot_events(events)["last_ticket_number"] == request.number


# --- the cases of the past year -------------------------------------------------------------


def past_cases(store, rules, ages_in_days):  # type: ignore[no-untyped-def]
    """Repairs opened that many days ago, each closed after a day; their numbers, in the given order."""
    numbers = []
    with store.transaction() as s:
        for age in ages_in_days:
            opened = utcnow() - timedelta(days=age)
            ticket = open_repair_ticket(s, rules, openid=OPENID, description=f"{age}天前的报修", room=ROOM,
                                        visit_time=None, channel="wechat", now=opened)
            resolve_ticket(s, rules, ticket, actor="staff:wang", channel="console", note="修好了",
                           now=opened + timedelta(hours=2))
            transition(s, ticket, TicketStatus.CLOSED, rules=rules, actor="resident", channel="wechat",
                       now=opened + timedelta(days=1))
            numbers.append(ticket.number)
    return numbers


async def status_reply(text: str) -> str:
    dispatcher = CollectingDispatcher()
    await ActionCheckStatus().run(dispatcher, tracker(text, intent="check_status"), DOMAIN)
    return dispatcher.messages[0]["text"]


async def test_asking_for_the_past_lists_the_year_closed_cases_too_newest_first(wired, rules):  # noqa: F811
    old, months_ago, last_week = past_cases(wired, rules, [400, 200, 7])
    [today] = [t.number for t in await file_repairs_now(wired, rules)]
    text = await status_reply("我今年报过哪些修")
    assert old not in text
    assert text.index(today) < text.index(last_week) < text.index(months_ago)
    assert "近 12 个月共有 3 件" in text and "已办结" in text and "已受理" in text
    recent = await status_reply("查询进度")  # the plain enquiry: what is open, and what finished within 30 days
    assert today in recent and last_week in recent and months_ago not in recent


async def file_repairs_now(store, rules):  # type: ignore[no-untyped-def]
    with store.transaction() as s:
        open_repair_ticket(s, rules, openid=OPENID, description="客厅灯不亮", room=ROOM, visit_time=None,
                           channel="wechat")
    return [t for t in tickets(store) if t.status == TicketStatus.NEW.value]


async def test_a_long_history_fits_a_phone_screen(wired, rules):  # noqa: F811
    numbers = past_cases(wired, rules, [10 + n for n in range(10)])
    text = await status_reply("查看我的歷史工單")
    lines = text.splitlines()
    assert len([line for line in lines if line.startswith("·")]) == replies.HISTORY_LINES
    assert "还有 2 件未列出" in text and numbers[0] in text and numbers[-1] not in text
    assert max(len(line) for line in lines) <= 40


def test_the_history_window_is_the_projects(wired, rules):  # noqa: F811
    past_cases(wired, rules, [20, 45])
    short = dataclasses.replace(rules, self_service=SelfServiceRules(history_months=1))
    with wired.transaction() as s:
        assert len(case_history(s, short, OPENID, utcnow())) == 1
        assert len(case_history(s, rules, OPENID, utcnow())) == 2
        assert case_history(s, rules, "oSomeoneElse", utcnow()) == []


def test_a_case_of_last_year_shows_its_year():
    now = datetime(2027, 1, 5, 4, 0)
    cases = [SimpleNamespace(number="BX20270104-0001", kind="repair", status="new", created_at=datetime(2027, 1, 4)),
             SimpleNamespace(number="TS20261201-0002", kind="complaint", status="closed",
                             created_at=datetime(2026, 12, 1, 2))]
    text = replies.case_history(cases, 12, parse_rules({}), now)
    assert "BX20270104-0001 报修 已受理，待派单 1月4日" in text
    assert "TS20261201-0002 投诉 已办结 2026年12月1日" in text
    assert replies.case_history([], 12, parse_rules({}), now).startswith("您近 12 个月没有工单记录")


# --- 复议 ---------------------------------------------------------------------------------


def finished_repair(store, rules, *, close: bool, openid: str = OPENID, days_ago: float = 1) -> str:
    when = utcnow() - timedelta(days=days_ago)
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid=openid, description="卫生间漏水", room=ROOM, visit_time=None,
                                    channel="wechat", now=when - timedelta(hours=3))
        resolve_ticket(s, rules, ticket, actor="staff:wang", channel="console", note="换了密封圈", now=when)
        if close:
            transition(s, ticket, TicketStatus.CLOSED, rules=rules, actor="resident", channel="wechat", now=when)
        return ticket.number


async def review_reply(text: str, sender: str = OPENID) -> tuple[str, list[dict]]:
    dispatcher = CollectingDispatcher()
    events = await ActionRequestReview().run(dispatcher, tracker(text, intent="request_review", sender=sender),
                                             DOMAIN)
    return dispatcher.messages[0]["text"], events


def review_alerts(store) -> list[StaffAlert]:  # type: ignore[no-untyped-def]
    with store.transaction() as s:
        return list(s.execute(select(StaffAlert).where(StaffAlert.reason == "review_request")).scalars())


async def test_a_case_awaiting_its_callback_is_reopened_for_review(wired, rules):  # noqa: F811
    number = finished_repair(wired, rules, close=False)
    text, events = await review_reply("我要复议，根本没修好，还在漏")
    [ticket] = tickets(wired)
    assert ticket.status == TicketStatus.REOPENED.value and ticket.due_at > utcnow()
    assert number in text and "重新打开" in text and "前给您答复" in text
    with wired.transaction() as s:
        actions = [(e.action, e.content) for e in s.get(Ticket, ticket.id).events]
    assert (REVIEW_EVENT, "我要复议，根本没修好，还在漏") in actions
    assert [a.ticket_id for a in review_alerts(wired)] == [ticket.id]
    assert slot_events(events)["last_ticket_number"] == number


async def test_a_closed_case_gets_a_linked_review_case_once(wired, rules):  # noqa: F811
    number = finished_repair(wired, rules, close=True)
    text, _ = await review_reply(f"{number} 我不认可处理结果，申请复议")
    original, review = tickets(wired)
    assert original.status == TicketStatus.CLOSED.value  # final: the review is its own case
    assert review.kind == original.kind and review.room == ROOM and review.status == TicketStatus.NEW.value
    assert review.description.startswith(f"复议（原工单 {number}）")
    assert number in text and review.number in text
    with wired.transaction() as s:
        linked = [e.result for e in s.get(Ticket, original.id).events if e.action == REVIEW_EVENT]
    assert linked == [f"review case {review.number}"]
    assert [a.ticket_id for a in review_alerts(wired)] == [review.id]
    again, _ = await review_reply("复议")  # no number: their most recently finished case, already under review
    assert len(tickets(wired)) == 2 and review.number in again and "正在处理中" in again


async def test_a_second_review_of_the_same_case_alerts_staff_again(wired, rules):  # noqa: F811
    finished_repair(wired, rules, close=False)
    await review_reply("复议")
    [ticket] = tickets(wired)
    with wired.transaction() as s:
        resolve_ticket(s, rules, s.get(Ticket, ticket.id), actor="staff:wang", channel="console", note="再修一次")
    await review_reply("还是漏，再复议")
    assert len(review_alerts(wired)) == 2


def test_the_review_window_is_the_projects(wired, rules):  # noqa: F811
    number = finished_repair(wired, rules, close=True, days_ago=40)
    with wired.transaction() as s:
        late = request_review(s, rules, openid=OPENID, reference=None, words="复议", channel="wechat")
        assert (late.outcome, late.number) == (Review.TOO_OLD, number)
        longer = dataclasses.replace(rules, self_service=SelfServiceRules(review_within_days=60))
        assert request_review(s, longer, openid=OPENID, reference=None, words="复议",
                              channel="wechat").outcome is Review.OPENED


async def test_too_old_nothing_open_and_cancelled_get_a_polite_answer(wired, rules):  # noqa: F811
    text, events = await review_reply("我要复议")
    assert text == replies.review_nothing(30) and events == []
    old = finished_repair(wired, rules, close=True, days_ago=31)
    text, _ = await review_reply("我要复议")
    assert text == replies.review_too_old(old, 30)
    with wired.transaction() as s:
        open_case = open_repair_ticket(s, rules, openid=OPENID, description="门锁坏了", room=ROOM, visit_time=None,
                                       channel="wechat").number
        cancelled = open_repair_ticket(s, rules, openid=OPENID, description="灯不亮", room=ROOM, visit_time=None,
                                       channel="wechat")
        transition(s, cancelled, TicketStatus.CANCELLED, rules=rules, actor="resident", channel="wechat")
        cancelled_number = cancelled.number
    assert (await review_reply(f"{open_case}复议"))[0] == replies.review_still_open(open_case)
    assert (await review_reply(f"复议{cancelled_number}"))[0] == replies.review_cancelled(cancelled_number)
    assert review_alerts(wired) == []


async def test_someone_elses_case_number_gets_no_details(wired, rules):  # noqa: F811
    theirs = finished_repair(wired, rules, close=True, openid="oSomeoneElse")
    with wired.transaction() as s:
        complaint = open_complaint_ticket(s, rules, openid="oSomeoneElse", description="邻居家狗叫", demand=None,
                                          room="9栋1单元101", channel="wechat").number
    text, _ = await review_reply(f"{theirs} 申请复议")
    nobodys, _ = await review_reply("BX20990101-0001 申请复议")
    assert text == nobodys.replace("BX20990101-0001", theirs) == replies.ticket_not_found(theirs)
    assert (await review_reply(f"复议{complaint}"))[0] == replies.ticket_not_found(complaint)
    assert [t.status for t in tickets(wired)] == ["closed", "new"] and review_alerts(wired) == []


def test_a_named_kind_picks_the_last_finished_case_of_that_kind(wired, rules):  # noqa: F811
    repair = finished_repair(wired, rules, close=True, days_ago=3)
    with wired.transaction() as s:
        complaint = open_complaint_ticket(s, rules, openid=OPENID, description="保安态度差", demand=None, room=None,
                                          channel="wechat", now=utcnow() - timedelta(days=10))
        resolve_ticket(s, rules, complaint, actor="staff:wang", channel="console", note="已批评教育",
                       now=utcnow() - timedelta(days=9))
        number = complaint.number
    with wired.transaction() as s:
        by_kind = request_review(s, rules, openid=OPENID, reference=CaseReference(kind=TicketKind.COMPLAINT),
                                 words="上次那个投诉我不服", channel="wechat")
        assert (by_kind.outcome, by_kind.number) == (Review.REOPENED, number)
        latest = request_review(s, rules, openid=OPENID, reference=None, words="复议", channel="wechat")
        assert (latest.outcome, latest.number) == (Review.OPENED, repair)
