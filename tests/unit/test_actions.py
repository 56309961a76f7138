"""Custom actions against a real SQLite store, with rasa_sdk's Tracker and CollectingDispatcher."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from actions.cancel import ActionCancel
from actions.complaint import ActionSubmitComplaintForm, ValidateComplaintForm
from actions.feedback import ActionRecordPraise, ActionRecordSuggestion
from actions.repair import ActionSubmitRepairForm, ValidateRepairForm
from actions.status import ActionCheckStatus
from bot.cases import context as runtime
from bot.cases.tickets import transition
from bot.core.kinds import TicketStatus
from bot.db.models import Ticket
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT

DOMAIN: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
OPENID = "oTestResident0001"


@pytest.fixture(autouse=True)
def wired(sqlite_store, company):
    runtime.configure(sqlite_store, company)
    yield sqlite_store
    runtime.configure(None, None)


def tracker(text: str = "", intent: str = "inform", slots: dict[str, Any] | None = None,
            active_loop: str | None = None, entities: list[dict] | None = None,
            sender: str = OPENID) -> Tracker:
    return Tracker(
        sender_id=sender,
        slots=dict(slots or {}),
        latest_message={"text": text, "intent": {"name": intent, "confidence": 0.99},
                        "entities": entities or [], "metadata": {"channel": "wechat"}},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def slot_events(events: list[dict]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def tickets(store: TicketStore) -> list[Ticket]:
    with store.transaction() as s:
        return list(s.execute(select(Ticket).order_by(Ticket.id)).scalars())


async def test_repair_description_comes_from_the_first_message():
    dispatcher = CollectingDispatcher()
    events = await ValidateRepairForm().run(
        dispatcher, tracker("卫生间水龙头一直滴水", intent="report_repair",
                            slots={"requested_slot": None}), DOMAIN)
    assert slot_events(events)["repair_description"] == "卫生间水龙头一直滴水"


async def test_bare_request_asks_what_is_broken():
    events = await ValidateRepairForm().run(
        CollectingDispatcher(), tracker("我要报修", intent="report_repair", slots={"requested_slot": None}), DOMAIN)
    assert "repair_description" in slot_events(events)
    assert slot_events(events)["repair_description"] is None


async def test_emergency_skips_the_visit_time_question():
    form = ValidateRepairForm()
    slots = {"repair_description": "厨房水管爆了", "room": "3栋2单元501"}
    required = await form.required_slots(["repair_description", "room", "visit_time"], CollectingDispatcher(),
                                         tracker(slots=slots), DOMAIN)
    assert required == ["repair_description", "room"]
    slots["repair_description"] = "客厅灯不亮"
    required = await form.required_slots(["repair_description", "room", "visit_time"], CollectingDispatcher(),
                                         tracker(slots=slots), DOMAIN)
    assert required == ["repair_description", "room", "visit_time"]


async def test_a_form_turn_asks_the_store_for_the_resident_s_project_once():
    """rasa_sdk asks for the required slots three times a call, the extractors and validators ask
    again: the project is looked up once (one transaction), not at every question."""
    begun: list[object] = []

    def count(*_args: object) -> None:
        begun.append(None)

    event.listen(Session, "after_begin", count)
    try:
        await ValidateRepairForm().run(
            CollectingDispatcher(), tracker("3栋2单元501", slots={"requested_slot": "room", "repair_description": "客厅灯不亮"}),
            DOMAIN)
    finally:
        event.remove(Session, "after_begin", count)
    assert len(begun) == 1


async def test_room_is_normalised_or_asked_again():
    form = ValidateRepairForm()
    dispatcher = CollectingDispatcher()
    ok = form.validate_room(["5-1-302", "5-1-302"], dispatcher, tracker("5-1-302"), DOMAIN)
    assert ok == {"room": "5栋1单元302"}
    dispatcher = CollectingDispatcher()
    bad = form.validate_room("我家那栋", dispatcher, tracker("我家那栋", slots={"requested_slot": "room"}), DOMAIN)
    assert bad == {"room": None}
    assert dispatcher.messages[0]["response"] == "utter_invalid_room"


async def test_submitting_a_repair_writes_the_ticket_and_tells_the_promise(wired):
    dispatcher = CollectingDispatcher()
    slots = {"repair_description": "客厅灯不亮", "room": "3栋2单元501", "visit_time": "明天上午"}
    events = await ActionSubmitRepairForm().run(dispatcher, tracker(slots=slots), DOMAIN)
    [ticket] = tickets(wired)
    assert (ticket.kind, ticket.priority, ticket.room, ticket.visit_time, ticket.channel) == (
        "repair", "normal", "3栋2单元501", "明天上午", "wechat")
    text = dispatcher.messages[0]["text"]
    assert ticket.number in text and "24 小时内修好" in text and "明天上午" in text
    assert slot_events(events) == {"repair_description": None, "room": None, "visit_time": None,
                                   "last_ticket_number": ticket.number}


async def test_emergency_repair_promises_ten_minutes_and_gives_safety_advice(wired):
    dispatcher = CollectingDispatcher()
    await ActionSubmitRepairForm().run(
        dispatcher, tracker(slots={"repair_description": "闻到很重的煤气味", "room": "A座1803"}), DOMAIN)
    [ticket] = tickets(wired)
    assert ticket.priority == "emergency"
    text = dispatcher.messages[0]["text"]
    assert "10 分钟内到场" in text and "燃气总阀" in text


async def test_complaint_form_and_submission(wired):
    form = ValidateComplaintForm()
    assert form.validate_complaint_location("地下车库", CollectingDispatcher(),
                                            tracker("地下车库", slots={"requested_slot": "complaint_location"}),
                                            DOMAIN) == {"complaint_location": "地下车库"}
    assert form.validate_complaint_location("无", CollectingDispatcher(),
                                            tracker("无", slots={"requested_slot": "complaint_location"}),
                                            DOMAIN) == {"complaint_location": "不涉及"}
    dispatcher = CollectingDispatcher()
    await ActionSubmitComplaintForm().run(dispatcher, tracker(slots={
        "complaint_description": "楼上半夜装修，吵得睡不着", "complaint_location": "6栋2单元301",
        "complaint_demand": "希望物业出面制止"}), DOMAIN)
    [ticket] = tickets(wired)
    assert (ticket.kind, ticket.priority, ticket.room, ticket.demand) == (
        "complaint", "urgent", "6栋2单元301", "希望物业出面制止")
    assert ticket.number.startswith("TS") and ticket.number in dispatcher.messages[0]["text"]


async def test_complaint_about_a_place_keeps_the_place(wired):
    await ActionSubmitComplaintForm().run(CollectingDispatcher(), tracker(slots={
        "complaint_description": "保洁好几天没打扫", "complaint_location": "地下车库",
        "complaint_demand": "按时打扫"}), DOMAIN)
    [ticket] = tickets(wired)
    assert ticket.room is None and ticket.description.endswith("地点：地下车库")
    assert ticket.priority == "general"


async def file_repairs(store: TicketStore, *descriptions: str) -> list[Ticket]:
    """Repairs filed through the form's submit action, as the assistant files them."""
    for description in descriptions:
        await ActionSubmitRepairForm().run(CollectingDispatcher(), tracker(slots={
            "repair_description": description, "room": "3栋2单元501", "visit_time": "随时"}), DOMAIN)
    return tickets(store)


async def test_check_status_lists_open_tickets_and_the_recently_finished_apart(wired, rules):
    first, second = await file_repairs(wired, "客厅灯不亮", "门锁坏了")
    with wired.transaction() as s:
        transition(s, s.get(Ticket, first.id), TicketStatus.CANCELLED, rules=rules, actor="resident", channel="rest")
    dispatcher = CollectingDispatcher()
    await ActionCheckStatus().run(dispatcher, tracker("查询进度", intent="check_status"), DOMAIN)
    opened, _, finished = dispatcher.messages[0]["text"].partition("近 30 天已结束的：")
    assert second.number in opened and first.number not in opened and "已受理" in opened
    assert first.number in finished and "已撤销" in finished
    dispatcher = CollectingDispatcher()
    await ActionCheckStatus().run(dispatcher, tracker("查询进度", intent="check_status", sender="oNobody"), DOMAIN)
    assert "没有正在处理" in dispatcher.messages[0]["text"]


async def test_cancel_in_a_form_stops_the_form_without_a_ticket(wired):
    dispatcher = CollectingDispatcher()
    events = await ActionCancel().run(dispatcher, tracker("算了", intent="cancel", active_loop="repair_form",
                                                          slots={"repair_description": "灯坏了"}), DOMAIN)
    assert ActiveLoop(None) in events and SlotSet("repair_description", None) in events
    assert "取消本次报修" in dispatcher.messages[0]["text"]
    assert tickets(wired) == []


async def test_cancel_a_ticket_nobody_started(wired):
    await ActionSubmitRepairForm().run(CollectingDispatcher(), tracker(slots={
        "repair_description": "客厅灯不亮", "room": "3栋2单元501", "visit_time": "随时"}), DOMAIN)
    dispatcher = CollectingDispatcher()
    await ActionCancel().run(dispatcher, tracker("不用修了", intent="cancel"), DOMAIN)
    [ticket] = tickets(wired)
    assert ticket.status == "cancelled" and ticket.number in dispatcher.messages[0]["text"]
    dispatcher = CollectingDispatcher()
    await ActionCancel().run(dispatcher, tracker("取消", intent="cancel"), DOMAIN)
    assert "没有可以撤销" in dispatcher.messages[0]["text"]


async def test_cancel_asks_which_when_several_and_refuses_others_tickets(wired):
    for description in ("客厅灯不亮", "门锁坏了"):
        await ActionSubmitRepairForm().run(CollectingDispatcher(), tracker(slots={
            "repair_description": description, "room": "3栋2单元501", "visit_time": "随时"}), DOMAIN)
    first, second = tickets(wired)
    dispatcher = CollectingDispatcher()
    await ActionCancel().run(dispatcher, tracker("取消", intent="cancel"), DOMAIN)
    assert first.number in dispatcher.messages[0]["text"] and second.number in dispatcher.messages[0]["text"]
    dispatcher = CollectingDispatcher()
    await ActionCancel().run(dispatcher, tracker("取消", intent="cancel", sender="oSomeoneElse",
                                                 entities=[{"entity": "ticket_number", "value": first.number}]), DOMAIN)
    assert "没有找到" in dispatcher.messages[0]["text"]
    naming_the_first = tracker("取消", intent="cancel", entities=[{"entity": "ticket_number", "value": first.number}])
    await ActionCancel().run(CollectingDispatcher(), naming_the_first, DOMAIN)
    assert [t.status for t in tickets(wired)] == ["cancelled", "new"]


async def test_suggestion_and_praise_are_recorded(wired):
    dispatcher = CollectingDispatcher()
    await ActionRecordSuggestion().run(dispatcher, tracker("建议多装几个充电桩", intent="suggestion"), DOMAIN)
    await ActionRecordPraise().run(dispatcher, tracker("维修师傅很专业", intent="praise"), DOMAIN)
    suggestion, praise = tickets(wired)
    assert (suggestion.kind, suggestion.description) == ("suggestion", "建议多装几个充电桩")
    assert (praise.kind, praise.description) == ("praise", "维修师傅很专业")
    assert suggestion.number in dispatcher.messages[0]["text"] and "个工作日内" in dispatcher.messages[0]["text"]
    assert praise.number in dispatcher.messages[1]["text"]


async def test_store_down_gets_an_apology_and_no_half_written_case(tmp_path: Path, company):
    broken = TicketStore(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no tables: every write fails
    runtime.configure(broken, company)
    dispatcher = CollectingDispatcher()
    events = await ActionSubmitRepairForm().run(dispatcher, tracker(slots={
        "repair_description": "客厅灯不亮", "room": "3栋2单元501", "visit_time": "随时"}), DOMAIN)
    assert dispatcher.messages[0]["response"] == "utter_store_unavailable"
    assert "last_ticket_number" not in slot_events(events)
    with broken.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type='table'").scalar() == 0
    broken.dispose()


async def test_complaint_without_a_place_does_not_borrow_the_home_room(wired):
    await ActionSubmitRepairForm().run(CollectingDispatcher(), tracker(slots={
        "repair_description": "客厅灯不亮", "room": "3栋2单元501", "visit_time": "随时"}), DOMAIN)
    await ActionSubmitComplaintForm().run(CollectingDispatcher(), tracker(slots={
        "complaint_description": "客服电话一直没人接", "complaint_location": "不涉及",
        "complaint_demand": "希望有人接电话"}), DOMAIN)
    repair, complaint = tickets(wired)
    assert repair.room == "3栋2单元501" and complaint.room is None
    assert "地点" not in complaint.description


async def test_bound_resident_gets_the_room_prefilled(wired, rules, tmp_path):
    from bot.cases.residents import bind_resident, import_roster
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone\n7号楼1202,周七,13655556666\n", encoding="utf-8")
    with wired.transaction() as s:
        import_roster(s, roster, projects={rules.code}, default_project=rules.code)
        bind_resident(s, rules, openid=OPENID, room="7栋1202", phone="13655556666", channel="wechat")
    events = await ValidateRepairForm().run(
        CollectingDispatcher(), tracker("客厅灯不亮", intent="report_repair", slots={"requested_slot": None}), DOMAIN)
    assert slot_events(events)["room"] == "7栋1202"
    dispatcher = CollectingDispatcher()
    await ActionSubmitComplaintForm().run(dispatcher, tracker(slots={
        "complaint_description": "客服电话一直没人接", "complaint_location": "不涉及",
        "complaint_demand": "希望有人接电话"}), DOMAIN)
    [complaint] = tickets(wired)
    assert complaint.room == "7栋1202"


async def test_unbound_resident_is_asked_for_the_room(wired):
    events = await ValidateRepairForm().run(
        CollectingDispatcher(), tracker("客厅灯不亮", intent="report_repair", slots={"requested_slot": None}), DOMAIN)
    assert "room" not in slot_events(events)


async def test_a_late_survey_answer_outside_the_form_finds_the_open_survey(wired, rules):
    """Rasa's session expired before the resident answered: the survey_answer intent still lands."""
    from actions.survey import ActionAnswerSurvey
    from bot.cases import surveys
    from bot.cases.tickets import open_repair_ticket, resolve_ticket
    with wired.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid=OPENID, description="厨房灯不亮", room="3栋2单元501",
                                    visit_time=None, channel="wechat")
        resolve_ticket(s, rules, ticket, actor="staff:wang", channel="console", note="换了灯管")
        survey = surveys.callback_survey_for(s, ticket, ticket.resolved_at.isoformat(), ticket.resolved_at)
        survey.status, survey.sent_at = "sent", ticket.resolved_at
        number = ticket.number
    dispatcher = CollectingDispatcher()
    await ActionAnswerSurvey().run(dispatcher, tracker("4分，挺好的", intent="survey_answer"), DOMAIN)
    assert "已办结" in dispatcher.messages[0]["text"] and number in dispatcher.messages[0]["text"]
    with wired.transaction() as s:
        assert s.execute(select(Ticket.status).where(Ticket.number == number)).scalar_one() == "closed"
    # Another resident's "5分" finds no survey of theirs: thanked, nothing changed.
    dispatcher = CollectingDispatcher()
    await ActionAnswerSurvey().run(dispatcher, tracker("5分", intent="survey_answer", sender="oSomebodyElse"), DOMAIN)
    assert "谢谢" in dispatcher.messages[0]["text"]
