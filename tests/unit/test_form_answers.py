"""A form's free-text question takes the next message as its answer, whatever the model
thinks it is; only a way out (cancel, a person) leaves, and an emergency jumps the queue."""
from __future__ import annotations

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.complaint import ActionSubmitComplaintForm, ValidateComplaintForm
from actions.repair import ActionSubmitRepairForm, ValidateRepairForm
from actions.survey import ActionSubmitSurvey
from tests.unit.test_actions import DOMAIN, OPENID, slot_events, tickets, tracker, wired  # noqa: F401 (fixture)
from tests.unit.test_surveys import resolved_repair

# Real answers that sound like another request, with what the model might call them.
DEMANDS = [
    ("今天就派人来修 并且给个解释", "check_status"),
    ("给我一个说法，什么时候能处理好", "check_status"),
    ("物业费这个月能不能减免", "faq"),
    ("谢谢你们尽快处理就行", "thank"),
    ("好好管管你们的保安", "file_complaint"),
    ("希望以后别再这样了，不然我取消续约", "cancel"),
    ("让经理给我打个电话解释清楚", "request_human"),
    ("你好，我希望他们当面道歉", "greet"),
]
VISIT_TIMES = [
    ("下午两点后都有人在家 师傅来之前打个电话", "check_status"),
    ("明天上午吧 谢谢", "thank"),
    ("周末都行 再见", "goodbye"),
    ("什么时候都行 越快越好", "faq"),
]


def asked(slot: str, text: str, intent: str, form: str, **slots):
    return tracker(text, intent=intent, slots={"requested_slot": slot, **slots}, active_loop=form)


@pytest.mark.parametrize(("text", "intent"), DEMANDS)
async def test_a_complaint_demand_is_the_next_message_whatever_the_model_calls_it(text, intent):
    events = await ValidateComplaintForm().run(CollectingDispatcher(), asked(
        "complaint_demand", text, intent, "complaint_form",
        complaint_description="保安态度很差还骂人", complaint_location="南门岗亭"), DOMAIN)
    assert slot_events(events)["complaint_demand"] == text


@pytest.mark.parametrize(("text", "intent"), VISIT_TIMES)
async def test_a_visit_time_is_the_next_message_whatever_the_model_calls_it(text, intent):
    events = await ValidateRepairForm().run(CollectingDispatcher(), asked(
        "visit_time", text, intent, "repair_form", repair_description="客厅灯不亮", room="3栋2单元501"), DOMAIN)
    assert slot_events(events)["visit_time"] == text


async def test_what_happened_is_the_next_message_even_when_it_sounds_like_a_status_query():
    text = "我报修三次了到现在都没人来 到底什么时候来"
    events = await ValidateComplaintForm().run(CollectingDispatcher(), asked(
        "complaint_description", text, "check_status", "complaint_form"), DOMAIN)
    assert slot_events(events)["complaint_description"] == text


@pytest.mark.parametrize(("text", "intent"), [("取消", "cancel"), ("算了不投诉了", "cancel"),
                                              ("转人工", "request_human"), ("我要找真人客服", "request_human"),
                                              ("别跟机器人说了，给我转人工", "request_human")])
async def test_a_way_out_leaves_the_question_unanswered(text, intent):
    """Nothing is filled, so the form rejects and the cancel / human rules take over."""
    events = await ValidateComplaintForm().run(CollectingDispatcher(), asked(
        "complaint_demand", text, intent, "complaint_form",
        complaint_description="垃圾三天没人收", complaint_location="5栋"), DOMAIN)
    assert "complaint_demand" not in slot_events(events)


async def test_an_emergency_while_asked_the_visit_time_jumps_the_queue(sqlite_store):
    form = ValidateRepairForm()
    dispatcher = CollectingDispatcher()
    events = await form.run(dispatcher, asked("visit_time", "等等 现在水管爆了 水哗哗往外喷", "report_repair",
                                              "repair_form", repair_description="卫生间墙上有点渗水",
                                              room="3栋2单元501"), DOMAIN)
    filled = slot_events(events)
    assert "visit_time" not in filled or filled["visit_time"] is None
    assert filled["repair_description"] == "卫生间墙上有点渗水；等等 现在水管爆了 水哗哗往外喷"
    # Nobody waits for an appointment: the form goes straight to filing an emergency.
    assert filled["requested_slot"] is None
    await ActionSubmitRepairForm().run(CollectingDispatcher(), tracker(slots={
        "repair_description": filled["repair_description"], "room": "3栋2单元501"}), DOMAIN)
    [ticket] = tickets(sqlite_store)
    assert ticket.priority == "emergency"


async def test_an_emergency_in_a_complaint_answer_becomes_an_emergency_repair(sqlite_store):
    events = await ValidateComplaintForm().run(CollectingDispatcher(), asked(
        "complaint_demand", "你们快来吧 楼道里冒烟了 一股烧焦的味道", "report_repair", "complaint_form",
        complaint_description="楼道堆满杂物没人清理", complaint_location="7栋1单元"), DOMAIN)
    filled = slot_events(events)
    assert "冒烟" in filled["complaint_description"] and filled["requested_slot"] is None
    dispatcher = CollectingDispatcher()
    await ActionSubmitComplaintForm().run(dispatcher, tracker(slots={
        "complaint_description": filled["complaint_description"], "complaint_location": "7栋1单元"}), DOMAIN)
    [ticket] = tickets(sqlite_store)
    assert (ticket.kind, ticket.priority) == ("repair", "emergency")


async def test_life_risk_advice_comes_before_the_room_question_and_is_not_repeated(sqlite_store):
    dispatcher = CollectingDispatcher()
    await ValidateRepairForm().run(dispatcher, tracker("厨房一股很浓的煤气味", intent="report_repair",
                                                       slots={"requested_slot": None}, active_loop="repair_form"),
                                   DOMAIN)
    [advice] = [m["text"] for m in dispatcher.messages if m.get("text")]
    assert "燃气总阀" in advice
    said = tracker(slots={"repair_description": "厨房一股很浓的煤气味", "room": "3栋2单元501"})
    said.events.append({"event": "bot", "text": advice})
    dispatcher = CollectingDispatcher()
    await ActionSubmitRepairForm().run(dispatcher, said, DOMAIN)
    confirmation = dispatcher.messages[0]["text"]
    assert confirmation.startswith("紧急报修已登记") and "燃气总阀" not in confirmation


async def test_an_emergency_in_a_survey_answer_opens_an_emergency_repair(sqlite_store, rules):
    ticket_id, survey_id = resolved_repair(sqlite_store, rules, OPENID)
    dispatcher = CollectingDispatcher()
    await ActionSubmitSurvey().run(dispatcher, tracker(slots={
        "survey_id": str(survey_id), "survey_reply": "不满意 刚修完又爆了 水喷得到处都是", "survey_comment": "-"}),
        DOMAIN)
    emergency = [t for t in tickets(sqlite_store) if t.priority == "emergency"]
    assert len(emergency) == 1 and emergency[0].room == "3栋2单元501" and emergency[0].id != ticket_id
    assert emergency[0].number in dispatcher.messages[0]["text"]
