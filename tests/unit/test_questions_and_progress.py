"""Unanswered questions become enquiry cases for staff; 查询进度 shows open and recently finished
cases with who holds them (their role, or their name where the project says so).

The actions run against a real store with rasa_sdk's Tracker and CollectingDispatcher,
in the two-project company of tests/projects; on SQLite and on PostgreSQL."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.knowledge import ActionAnswerFaq
from actions.status import ActionCheckStatus
from bot.cases import context as runtime
from bot.cases.handoff import Staff, claim
from bot.cases.questions import UNANSWERED_PREFIX
from bot.cases.residents import enter_project
from bot.cases.staff_directory import add_staff
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket, resolve_ticket, transition
from bot.cases.work_queue import QueueQuery, work_queue
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.company import Company, load_company
from bot.core.kinds import TicketStatus
from bot.core.rules_schema import RulesFileError
from bot.db.models import Ticket, TicketEvent
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT
from tests.unit.test_actions import DOMAIN, tickets

RESIDENT = "oQuestionAsker01"
NEIGHBOUR = "oNeighbourInDef1"
ROOM = "3栋2单元501"


@pytest.fixture(autouse=True)
def wired(store, two_projects):  # type: ignore[no-untyped-def]
    """The store on SQLite, then on PostgreSQL (the production path)."""
    runtime.configure(store, two_projects)
    yield store
    runtime.configure(None, None)


def conversation(text: str, *, sender: str = RESIDENT, intent: str = "faq", topic: str | None = None) -> Tracker:
    latest: dict[str, Any] = {"text": text, "intent": {"name": intent, "confidence": 0.97}, "entities": [],
                              "metadata": {"channel": "wechat"}}
    if topic:
        latest["response_selector"] = {"faq": {"response": {"intent_response_key": topic, "confidence": 0.9}}}
    return Tracker(sender_id=sender, slots={}, latest_message=latest, events=[], paused=False,
                   followup_action=None, active_loop={}, latest_action_name="action_listen")


async def ask(text: str, *, sender: str = RESIDENT, topic: str = "faq/beekeeping") -> str:
    dispatcher = CollectingDispatcher()
    await ActionAnswerFaq().run(dispatcher, conversation(text, sender=sender, topic=topic), DOMAIN)
    [message] = dispatcher.messages
    return str(message.get("text") or message.get("response"))


def in_binjiang(store: TicketStore, openid: str = RESIDENT) -> None:
    with store.transaction() as s:
        enter_project(s, openid, "binjiang")


def events_of(store: TicketStore, ticket: Ticket) -> list[TicketEvent]:
    with store.transaction() as s:
        return list(s.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                              .order_by(TicketEvent.id)).scalars())


# --- unanswered questions -----------------------------------------------------------------


async def test_an_unanswered_question_opens_an_enquiry_case_of_the_residents_project(wired, two_projects):
    in_binjiang(wired)
    text = await ask("小区里能不能养蜜蜂")
    [case] = tickets(wired)
    assert (case.kind, case.status, case.project, case.channel) == ("enquiry", "new", "binjiang", "wechat")
    assert case.description.startswith(UNANSWERED_PREFIX) and "小区里能不能养蜜蜂" in case.description
    # The resident hears the number and binjiang's phone, in a few words; nothing claims a note was merely taken.
    assert case.number in text and "0571-6666 1234" in text and "0571-8888 6666" not in text
    assert "记下" not in text and len(text) <= 80
    # It is work: in binjiang's console queue, not in the other project's.
    with wired.transaction() as s:
        binjiang = work_queue(s, QueueQuery(projects=frozenset({"binjiang"})), utcnow()).tickets
        default = work_queue(s, QueueQuery(projects=frozenset({"default"})), utcnow()).tickets
        assert [t.number for t in binjiang] == [case.number] and default == []


async def test_a_second_unanswered_question_joins_the_open_case(wired):
    in_binjiang(wired)
    first = await ask("小区里能不能养蜜蜂")
    second = await ask("游泳池冬天开放吗", topic="faq/swimming_pool")
    [case] = tickets(wired)
    assert case.number in first and case.number in second and "补充" in second and first != second
    again = [e for e in events_of(wired, case) if e.action == "asked_again"]
    assert [(e.actor, e.content) for e in again] == [("resident", "游泳池冬天开放吗（话题 faq/swimming_pool）")]
    assert "游泳池" not in case.description  # the first question stays the case's description


async def test_each_resident_has_their_own_case_and_a_finished_one_is_not_reused(wired, two_projects):
    in_binjiang(wired)
    await ask("小区里能不能养蜜蜂")
    await ask("快递柜坏了谁管", sender=NEIGHBOUR)
    mine, theirs = tickets(wired)
    assert (mine.project, theirs.project) == ("binjiang", "default") and mine.number != theirs.number
    with wired.transaction() as s:
        resolve_ticket(s, two_projects.rules("binjiang"), s.get(Ticket, mine.id), actor="staff:1",
                       channel="console", note="已电话答复")
    text = await ask("能在阳台装晾衣架吗")
    newest = tickets(wired)[-1]
    assert newest.id not in (mine.id, theirs.id) and newest.number in text and "补充" not in text


async def test_an_answered_question_opens_no_case(wired):
    text = await ask("物业费多少钱一平", topic="faq/fee_standard")
    assert "2.30" in text and tickets(wired) == []


async def test_store_down_gets_the_apology_and_no_promise(tmp_path: Path, two_projects):
    broken = TicketStore(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no tables: every write fails
    runtime.configure(broken, two_projects)
    try:
        dispatcher = CollectingDispatcher()
        await ActionAnswerFaq().run(dispatcher, conversation("能养蜜蜂吗", topic="faq/beekeeping"), DOMAIN)
        assert [m.get("response") for m in dispatcher.messages] == ["utter_store_unavailable"]
    finally:
        broken.dispose()


def test_the_question_in_the_log_is_masked(wired, two_projects, caplog):
    from bot.cases.questions import record_unanswered_question

    with caplog.at_level("INFO", logger="bot.cases.questions"), wired.transaction() as s:
        record_unanswered_question(s, two_projects.default, openid=RESIDENT, question="我电话13812345678能改吗",
                                   channel="wechat")
    assert "13812345678" not in caplog.text and "138****5678" in caplog.text and RESIDENT not in caplog.text


# --- 查询进度 --------------------------------------------------------------------------------


def staff(store: TicketStore, name: str, number: str, *roles: str) -> Staff:
    with store.transaction() as s:
        member = add_staff(s, name=name, employee_number=number, roles=roles, projects=["*"],
                           known_projects=["default", "binjiang"])
        return Staff(id=f"staff:{member.id}", name=member.name)


def finished_repair(store: TicketStore, rules, description: str, days_ago: float, *,  # type: ignore[no-untyped-def]
                    by: Staff | None = None, cancel: bool = False) -> str:
    """A repair opened a day before it was finished `days_ago` days ago (closed, or cancelled)."""
    done = utcnow() - timedelta(days=days_ago)
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid=RESIDENT, description=description, room=ROOM,
                                    visit_time=None, channel="wechat", now=done - timedelta(days=1))
        if cancel:
            transition(s, ticket, TicketStatus.CANCELLED, rules=rules, actor="resident", channel="wechat", now=done)
            return ticket.number
        if by is not None:
            assert claim(s, rules, ticket.number, by, channel="console", now=done - timedelta(hours=20)).done
        resolve_ticket(s, rules, ticket, actor="staff:1", channel="console", note="修好了", now=done)
        transition(s, ticket, TicketStatus.CLOSED, rules=rules, actor="resident", channel="wechat", now=done)
        return ticket.number


async def progress(sender: str = RESIDENT) -> str:
    dispatcher = CollectingDispatcher()
    await ActionCheckStatus().run(dispatcher, conversation("查询进度", sender=sender, intent="check_status"), DOMAIN)
    return str(dispatcher.messages[0]["text"])


def open_cases(store: TicketStore, rules, technician: Staff, agent: Staff) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """An unclaimed repair, a repair the technician took, a complaint the agent is working on."""
    with store.transaction() as s:
        waiting = open_repair_ticket(s, rules, openid=RESIDENT, description="门锁坏了", room=ROOM, visit_time=None,
                                     channel="wechat")
        taken = open_repair_ticket(s, rules, openid=RESIDENT, description="客厅灯不亮", room=ROOM, visit_time=None,
                                   channel="wechat")
        complaint = open_complaint_ticket(s, rules, openid=RESIDENT, description="楼道垃圾三天没人清", demand=None,
                                          room=ROOM, channel="wechat")
        assert claim(s, rules, taken.number, technician, channel="console").done
        assert claim(s, rules, complaint.number, agent, channel="console").done
        transition(s, complaint, TicketStatus.IN_PROGRESS, rules=rules, actor=f"staff:{agent.name}",
                   channel="console")
        return waiting.number, taken.number, complaint.number


async def test_progress_lists_open_and_recently_finished_cases_with_the_holders_role(wired, two_projects):
    rules = two_projects.default
    technician, agent = staff(wired, "李建国", "E2001", "technician"), staff(wired, "王芳", "E2002", "agent")
    old = finished_repair(wired, rules, "两个月前的报修", 60, by=technician)
    closed = finished_repair(wired, rules, "上周的报修", 6, by=technician)
    cancelled = finished_repair(wired, rules, "昨天撤销的报修", 1, cancel=True)
    waiting, taken, complaint = open_cases(wired, rules, technician, agent)

    text = await progress()
    lines = text.splitlines()
    assert lines[0] == "您有 3 件正在处理的工单："
    line = {number: next(li for li in lines if number in li) for number in (waiting, taken, complaint)}
    assert line[waiting].startswith(f"· {waiting} 报修：已受理，待派单")
    assert line[taken].startswith(f"· {taken} 报修：已派单，维修师傅已接单")
    assert line[complaint].startswith(f"· {complaint} 投诉：处理中，客服人员正在跟进")
    finished_lines = lines[lines.index("近 30 天已结束的："):]  # after the open ones
    assert lines.index("近 30 天已结束的：") == 4
    assert [li.split()[1] for li in finished_lines[1:]] == [cancelled, closed]  # the latest finished first
    assert "已撤销" in finished_lines[1] and "已办结（维修师傅经办）" in finished_lines[2]
    assert old not in text  # finished before the window
    assert "李建国" not in text and "王芳" not in text  # roles, not names
    assert max(len(li) for li in lines) <= 50  # a bullet wraps to three lines of a phone at most


async def test_progress_names_the_holder_where_the_project_shows_names(wired, rules):
    named = replace(rules, self_service=replace(rules.self_service, progress_shows_holder_name=True))
    runtime.configure(wired, Company.of(named))
    technician, agent = staff(wired, "李建国", "E2001", "technician"), staff(wired, "王芳", "E2002", "agent")
    closed = finished_repair(wired, named, "上周的报修", 6, by=technician)
    _, taken, complaint = open_cases(wired, named, technician, agent)
    text = await progress()
    assert f"· {taken} 报修：已派单，李建国已接单" in text
    assert f"· {complaint} 投诉：处理中，王芳正在跟进" in text
    assert "已办结（李建国经办）" in text and closed in text
    assert "维修师傅" not in text and "客服人员" not in text


async def test_a_holder_with_several_roles_is_named_by_the_trade_of_the_case(wired, rules):
    both = staff(wired, "赵六", "E2003", "agent", "technician")
    with wired.transaction() as s:
        repair = open_repair_ticket(s, rules, openid=RESIDENT, description="水管漏水", room=ROOM, visit_time=None,
                                    channel="wechat")
        complaint = open_complaint_ticket(s, rules, openid=RESIDENT, description="保安态度差", demand=None,
                                          room=None, channel="wechat")
        assert claim(s, rules, repair.number, both, channel="console").done
        assert claim(s, rules, complaint.number, both, channel="console").done
        numbers = repair.number, complaint.number
    text = await progress()
    assert f"· {numbers[0]} 报修：已派单，维修师傅已接单" in text
    assert f"· {numbers[1]} 投诉：已派单，客服人员已接单" in text


async def test_a_holder_who_is_not_in_the_directory_is_a_staff_member(wired, rules):
    with wired.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid=RESIDENT, description="灯坏了", room=ROOM, visit_time=None,
                                    channel="wechat")
        assert claim(s, rules, ticket.number, Staff(id="tg:12345", name="老张"), channel="telegram").done
    text = await progress()
    assert "工作人员已接单" in text and "老张" not in text


async def test_a_long_list_fits_a_phone_screen(wired, rules):
    with wired.transaction() as s:
        for n in range(4):
            open_repair_ticket(s, rules, openid=RESIDENT, description=f"第{n}处漏水", room=ROOM, visit_time=None,
                               channel="wechat")
    for days in (2, 3, 4):
        finished_repair(wired, rules, f"{days}天前的报修", days)
    text = await progress()
    lines = text.splitlines()
    assert len([li for li in lines if li.startswith("·")]) == replies.PROGRESS_LINES
    assert lines[-1].startswith("等 7 件") and "近 30 天已结束的：" in lines


async def test_only_finished_cases_and_none_at_all(wired, rules):
    assert "没有正在处理" in await progress()
    closed = finished_repair(wired, rules, "上周的报修", 6)
    text = await progress()
    assert text.splitlines()[0] == "您目前没有正在处理中的工单。" and closed in text and "已办结" in text
    assert "经办" not in text  # nobody claimed it: no holder to name


def test_the_window_and_the_names_are_project_settings(tmp_path: Path):
    projects = tmp_path / "projects"
    projects.mkdir()
    (projects / "a.yml").write_text("project:\n  code: default\n  name: 示例小区\n", encoding="utf-8")
    (projects / "b.yml").write_text(
        "project:\n  code: river\n  name: 江畔\nself_service:\n  progress_recent_days: 7\n"
        "  progress_shows_holder_name: true\n", encoding="utf-8")
    company = load_company(PROJECT_ROOT / "project" / "default.yml", projects)
    assert (company.default.self_service.progress_recent_days,
            company.default.self_service.progress_shows_holder_name) == (30, False)
    assert (company.rules("river").self_service.progress_recent_days,
            company.rules("river").self_service.progress_shows_holder_name) == (7, True)
    (projects / "b.yml").write_text("project:\n  code: river\n  name: 江畔\nself_service:\n"
                                    "  progress_shows_holder_name: 是\n", encoding="utf-8")
    with pytest.raises(RulesFileError, match="progress_shows_holder_name"):
        load_company(PROJECT_ROOT / "project" / "default.yml", projects)


async def test_a_shorter_window_leaves_out_what_finished_before_it(wired, rules):
    week = replace(rules, self_service=replace(rules.self_service, progress_recent_days=7))
    runtime.configure(wired, Company.of(week))
    recent, older = finished_repair(wired, week, "五天前", 5), finished_repair(wired, week, "十天前", 10)
    text = await progress()
    assert "近 7 天已结束的：" in text and recent in text and older not in text
