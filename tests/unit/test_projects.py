"""Two projects in one deployment: each case on its own project's numbers, facts and staff;
residents find their project through the roster or a QR code; numbers unique company-wide."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.knowledge import ActionAnswerFaq
from actions.repair import ActionSubmitRepairForm, ValidateRepairForm
from bot.cases import context as runtime
from bot.cases.escalation import COMPANY, audience_for
from bot.cases.residents import (
    BindOutcome,
    bind_resident,
    bound_homes,
    bound_room,
    enter_project,
    import_roster,
    note_contact,
)
from bot.cases.routing import Disposition, MessageKind, MessageRouter, ResidentMessage
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket
from bot.core.company import Company, load_company
from bot.core.references import case_reference
from bot.db.models import Resident, StaffAlert, Ticket, TicketCounter
from bot.db.records import current_contact
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT

NOON = datetime(2026, 11, 25, 4, 0)  # 12:00 in Shanghai, a Wednesday
OWNER = "oOwnerOfTwoFlats"


@pytest.fixture(scope="module")
def company() -> Company:
    return load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")


@pytest.fixture
def two_rosters(sqlite_store, company, tmp_path):  # type: ignore[no-untyped-def]
    """The same door number in both projects; the owner of two flats is on both rosters."""
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone,project\n"
                      "3栋2单元501,王小明,13812345678,default\n"
                      "3栋2单元501,陈芳,13700001111,binjiang\n"
                      "6栋1单元1203,王小明,13812345678,binjiang\n", encoding="utf-8")
    with sqlite_store.transaction() as s:
        import_roster(s, roster, projects=company.codes, default_project=company.default_code)
    return sqlite_store


def test_the_same_case_gets_each_project_s_deadline_and_one_company_wide_numbering(sqlite_store, company):
    with sqlite_store.transaction() as s:
        ours = open_repair_ticket(s, company.rules("default"), openid="oA", description="灯坏了", room="3栋",
                                  visit_time=None, channel="wechat", now=NOON)
        theirs = open_repair_ticket(s, company.rules("binjiang"), openid="oB", description="灯坏了", room="3栋",
                                    visit_time=None, channel="wechat", now=NOON)
        assert (ours.project, theirs.project) == ("default", "binjiang")
        assert ours.due_at - NOON == timedelta(hours=24) and theirs.due_at - NOON == timedelta(hours=12)
        assert (ours.number, theirs.number) == ("BX20261125-0001", "BX20261125-0002")
        assert {r.project for r in s.execute(select(Resident)).scalars()} == {"default", "binjiang"}


def test_numbers_widen_past_9999_and_100000_cases_a_day_still_number_cleanly(sqlite_store, company):
    rules = company.rules("binjiang")
    with sqlite_store.transaction() as s:
        first = open_repair_ticket(s, rules, openid="oWide", description="灯坏了", room=None, visit_time=None,
                                   channel="wechat", now=NOON)
        counter = s.execute(select(TicketCounter)).scalar_one()
        counter.last_value = 99_998  # a busy company's day
    numbers = []
    for _ in range(3):
        with sqlite_store.transaction() as s:
            numbers.append(open_repair_ticket(s, rules, openid="oWide", description="灯坏了", room=None,
                                              visit_time=None, channel="wechat", now=NOON).number)
    assert first.number == "BX20261125-0001"
    assert numbers == ["BX20261125-99999", "BX20261125-100000", "BX20261125-100001"]
    # Residents quoting such a number are understood; staff find it.
    assert case_reference(f"{numbers[1]} 怎么样了").number == numbers[1]  # type: ignore[union-attr]


@pytest.mark.postgres
def test_eight_writers_in_four_projects_get_unique_numbers_on_postgresql(postgres_database_url, company):
    from dataclasses import replace

    projects = [company.rules("default"), company.rules("binjiang"),
                replace(company.rules("default"), code="p3"), replace(company.rules("binjiang"), code="p4")]
    store = TicketStore(postgres_database_url)
    writers, per_writer = 8, 10
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def write(worker: int) -> None:
        rules = projects[worker % 4]
        try:
            start.wait()
            for i in range(per_writer):
                with store.transaction() as s:
                    number = open_complaint_ticket(s, rules, openid=f"o{worker}", description=f"楼道脏 {i}",
                                                   demand=None, room=None, channel="wechat", now=NOON).number
                with lock:
                    numbers.append(number)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        total = writers * per_writer
        assert sorted(numbers) == [f"TS20261125-{n:04d}" for n in range(1, total + 1)]
        with store.transaction() as s:
            by_project = dict(s.execute(select(Ticket.project, func.count()).group_by(Ticket.project)).all())
            assert by_project == {"default": 20, "binjiang": 20, "p3": 20, "p4": 20}
    finally:
        store.dispose()


def test_the_roster_says_which_project_a_household_binds_to(two_rosters, company):
    default = company.default
    with two_rosters.transaction() as s:
        # A newcomer writes to the one official account; their room and phone find the project.
        note_contact(s, "oChen", project=company.default_code)
        result = bind_resident(s, default, openid="oChen", room="3栋2单元501", phone="13700001111", channel="wechat")
        assert result.outcome is BindOutcome.BOUND
        assert [(h.project, h.room) for h in bound_homes(s, "oChen")] == [("binjiang", "3栋2单元501")]
        assert current_contact(s, "oChen").project == "binjiang"  # type: ignore[union-attr]


def test_an_owner_of_two_flats_keeps_one_openid_and_says_which_flat_a_case_is_about(two_rosters, company):
    default = company.default
    with two_rosters.transaction() as s:
        for room in ("3栋2单元501", "6栋1单元1203"):
            assert bind_resident(s, default, openid=OWNER, room=room, phone="13812345678",
                                 channel="wechat").outcome is BindOutcome.BOUND
        homes = bound_homes(s, OWNER)
        assert sorted((h.project, h.room) for h in homes) == [("binjiang", "6栋1单元1203"), ("default", "3栋2单元501")]
        assert {h.openid for h in homes} == {OWNER}
        assert bound_room(s, OWNER) is None  # two flats: the form asks which one
    runtime.configure(two_rosters, company)
    try:
        with two_rosters.transaction() as s:
            assert runtime.rules_in_session(s, OWNER, "6栋1单元1203").code == "binjiang"
            assert runtime.rules_in_session(s, OWNER, "3栋2单元501").code == "default"
    finally:
        runtime.configure(None, None)


def _tracker(sender: str, text: str, slots: dict[str, Any] | None = None, topic: str | None = None) -> Tracker:
    latest: dict[str, Any] = {"text": text, "intent": {"name": "inform", "confidence": 0.99}, "entities": [],
                              "metadata": {"channel": "wechat"}}
    if topic:
        latest["response_selector"] = {"faq": {"response": {"intent_response_key": topic}}}
    return Tracker(sender_id=sender, slots=dict(slots or {}), latest_message=latest, events=[], paused=False,
                   followup_action=None, active_loop={}, latest_action_name="action_listen")


async def test_the_same_conversation_gives_each_project_s_facts_and_numbers(two_rosters, company):
    runtime.configure(two_rosters, company)
    try:
        with two_rosters.transaction() as s:
            enter_project(s, "oInBinjiang", "binjiang")
            note_contact(s, "oInDefault", project="default")
        answers = {}
        for sender in ("oInDefault", "oInBinjiang"):
            dispatcher = CollectingDispatcher()
            await ActionAnswerFaq().run(dispatcher, _tracker(sender, "物业费多少钱一平", topic="faq/fee_standard"), {})
            answers[sender] = dispatcher.messages[0]["text"]
        assert "2.30" in answers["oInDefault"] and "3.50" not in answers["oInDefault"]
        assert "3.50" in answers["oInBinjiang"] and "2.30" not in answers["oInBinjiang"]

        # The owner of two flats reports a repair for the flat in 滨江花园: its 12 hours, its staff.
        with two_rosters.transaction() as s:
            for room in ("3栋2单元501", "6栋1单元1203"):
                bind_resident(s, company.default, openid=OWNER, room=room, phone="13812345678", channel="wechat")
        form = ValidateRepairForm()
        assert await form.extract_room(CollectingDispatcher(), _tracker(OWNER, "灯坏了"), {}) == {}  # asked, not guessed
        dispatcher = CollectingDispatcher()
        slots = {"repair_description": "卫生间的灯不亮了", "room": "6栋1单元1203", "visit_time": "明天上午"}
        await ActionSubmitRepairForm().run(dispatcher, _tracker(OWNER, "明天上午", slots), {})
        assert "12 小时内修好" in dispatcher.messages[0]["text"]
        with two_rosters.transaction() as s:
            ticket = s.execute(select(Ticket).where(Ticket.room == "6栋1单元1203")).scalar_one()
            assert ticket.project == "binjiang" and ticket.resident.project == "binjiang"  # type: ignore[union-attr]
    finally:
        runtime.configure(None, None)


class SilentAssistant:
    async def ask(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[str]:
        return ["好的"]

    async def trigger_intent(self, sender: str, intent: str, entities: dict[str, Any]) -> list[str]:
        return []


async def test_a_project_s_qr_code_brings_the_resident_into_that_project(sqlite_store, company, caplog):
    router = MessageRouter(sqlite_store, company, SilentAssistant())
    followed = await router.route(ResidentMessage("oScanner", MessageKind.SUBSCRIBE, "wechat", scene="binjiang",
                                                  dedupe_key="k1"))
    assert "欢迎来到滨江花园" in (followed.answer or "")
    with sqlite_store.transaction() as s:
        resident = current_contact(s, "oScanner")
        assert resident is not None and resident.project == "binjiang" and resident.subscribed
    # Scanning the other project's code later: the next cases go there.
    scanned = await router.route(ResidentMessage("oScanner", MessageKind.SCAN, "wechat", scene="default",
                                                 dedupe_key="k2"))
    assert "示例小区" in (scanned.answer or "")
    with sqlite_store.transaction() as s:
        assert current_contact(s, "oScanner").project == "default"  # type: ignore[union-attr]
    # A code naming no project: a logged refusal, nothing changed.
    with caplog.at_level(logging.WARNING, logger="bot.cases.routing"):
        stray = await router.route(ResidentMessage("oScanner", MessageKind.SCAN, "wechat", scene="atlantis",
                                                   dedupe_key="k3"))
    assert stray.disposition is Disposition.IGNORED and stray.answer is None
    assert any("names no project" in r.getMessage() and "atlantis" in r.getMessage() for r in caplog.records)
    assert all("oScanner" not in r.getMessage() for r in caplog.records)  # openids masked
    with sqlite_store.transaction() as s:
        assert current_contact(s, "oScanner").project == "default"  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(Resident).where(Resident.project == "atlantis")) == 0
    # A new follower through an unknown code is welcomed into the default project.
    welcomed = await router.route(ResidentMessage("oNewbie", MessageKind.SUBSCRIBE, "wechat", scene="atlantis",
                                                  dedupe_key="k4"))
    assert "欢迎关注" in (welcomed.answer or "")
    with sqlite_store.transaction() as s:
        assert current_contact(s, "oNewbie").project == company.default_code  # type: ignore[union-attr]


def test_major_and_group_complaints_reach_the_company_and_groups_stay_within_a_project(sqlite_store, company):
    assert audience_for("major_complaint") == audience_for("group_complaint") == COMPANY
    binjiang, default = company.rules("binjiang"), company.default
    with sqlite_store.transaction() as s:
        major = open_complaint_ticket(s, binjiang, openid="oHurt", description="保安打人，有人受伤了", demand="处理",
                                      room=None, channel="wechat", now=NOON)
        alert = s.execute(select(StaffAlert).where(StaffAlert.ticket_id == major.id)).scalar_one()
        assert (alert.project, alert.audience) == ("binjiang", COMPANY)
        # Three households complain about noise in "3栋" — but of two projects: no group case.
        for n, rules in enumerate((default, binjiang, default)):
            open_complaint_ticket(s, rules, openid=f"oNoise{n}", description="楼上装修噪音太吵", demand="管一管",
                                  room=f"3栋2单元50{n}", channel="wechat", now=NOON + timedelta(minutes=n))
        groups = s.execute(select(Ticket).where(Ticket.resident_id.is_(None))).scalars().all()
        assert groups == []
        open_complaint_ticket(s, default, openid="oNoise9", description="楼上装修噪音太吵", demand="管一管",
                              room="3栋2单元509", channel="wechat", now=NOON + timedelta(minutes=9))
        [group] = s.execute(select(Ticket).where(Ticket.resident_id.is_(None))).scalars().all()
        assert group.project == "default"
        assert {t.project for t in s.execute(select(Ticket).where(Ticket.parent_id == group.id)).scalars()} == {
            "default"}
