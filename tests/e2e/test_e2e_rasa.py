"""End to end: the real Rasa server and the real action server, talking over HTTP.

Nothing here is mocked: the trained model, the action server process and the ticket
store (a SQLite file) are the ones `make run` uses, on free loopback ports.
"""
from __future__ import annotations

import pytest

from tests.live import LiveStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(live_stack: LiveStack) -> LiveStack:
    return live_stack


def test_whole_repair_conversation(stack: LiveStack):
    sender = "oE2eRepair0001"
    assert "报修" in " ".join(stack.say(sender, "你好"))
    assert "哪里坏了" in " ".join(stack.say(sender, "我要报修"))
    assert "房号" in " ".join(stack.say(sender, "卫生间的水龙头一直滴水，关不紧"))
    assert "什么时候上门" in " ".join(stack.say(sender, "3栋2单元501"))
    [confirmation] = stack.say(sender, "明天上午")
    [ticket] = stack.tickets_of(sender)
    assert ticket.number.startswith("BX") and ticket.number in confirmation
    assert "24 小时内修好" in confirmation
    assert (ticket.kind, ticket.status, ticket.priority) == ("repair", "new", "normal")
    assert (ticket.room, ticket.visit_time, ticket.channel) == ("3栋2单元501", "明天上午", "rest")
    assert ticket.description == "卫生间的水龙头一直滴水，关不紧"
    assert [(e.action, e.to_status, e.actor) for e in ticket.events] == [("created", "new", "resident")]
    assert ticket.number in " ".join(stack.say(sender, "查询进度"))


def test_emergency_repair_skips_the_appointment(stack: LiveStack):
    sender = "oE2eEmergency01"
    assert "房号" in " ".join(stack.say(sender, "电梯困人了，有人被困在电梯里，快来人"))
    replies = " ".join(stack.say(sender, "7号楼1202"))
    [ticket] = stack.tickets_of(sender)
    assert ticket.priority == "emergency" and ticket.visit_time is None and ticket.room == "7栋1202"
    assert ticket.number in replies and "10 分钟内到场" in replies and "警铃" in replies


def test_whole_complaint_conversation(stack: LiveStack):
    sender = "oE2eComplaint01"
    assert "哪里" in " ".join(stack.say(sender, "我要投诉，楼上每天半夜装修，吵得根本睡不着"))
    assert "诉求" in " ".join(stack.say(sender, "6栋2单元301"))
    [confirmation] = stack.say(sender, "希望物业出面让他们晚上别再施工")
    [ticket] = stack.tickets_of(sender)
    assert ticket.number.startswith("TS") and ticket.number in confirmation
    assert (ticket.kind, ticket.priority, ticket.room) == ("complaint", "urgent", "6栋2单元301")
    assert ticket.description == "我要投诉，楼上每天半夜装修，吵得根本睡不着"
    assert ticket.demand == "希望物业出面让他们晚上别再施工"
    assert [(e.action, e.result) for e in ticket.events] == [("created", "priority=urgent"), ("tier_reason", ""),
                                                             ("escalated", "urgent_complaint")]
    assert "半夜" in ticket.events[1].content  # why it is 紧急, for staff


def test_cancelling_midway_leaves_no_ticket(stack: LiveStack):
    sender = "oE2eCancel0001"
    stack.say(sender, "我要报修")
    assert "房号" in " ".join(stack.say(sender, "客厅的吊灯不亮了"))
    assert "取消" in " ".join(stack.say(sender, "算了，不修了"))
    assert stack.tickets_of(sender) == []
    assert "报修" in " ".join(stack.say(sender, "你好"))  # the conversation goes on normally


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "😀😀😀🙏",
    "My kitchen sink is leaking, can someone help?",
    "hello 我家 sink 坏了 help",
    "楼上" + "吵" * 5000,
    "住在三号楼二单元五零一",
    "<xml><a>&amp;</a></xml>",
])
def test_odd_input_gets_a_sensible_answer_and_no_stray_ticket(stack: LiveStack, text: str):
    sender = f"oE2eOdd{abs(hash(text)) % 10**8:08d}"
    replies = stack.say(sender, text)
    if text.strip():
        assert replies and all(reply.strip() for reply in replies)
    assert stack.tickets_of(sender) == []
    assert stack.actions.process.poll() is None
    assert replies == [] or any(ch >= "\u4e00" for ch in "".join(replies))  # answered in Chinese


def test_faq_in_the_middle_of_the_repair_form_then_the_form_goes_on(stack: LiveStack, rules):
    sender = "oE2eFaqMidForm1"
    assert "房号" in " ".join(stack.say(sender, "我要报修，客厅的灯不亮了"))
    answer = " ".join(stack.say(sender, "对了，物业费一个月多少钱一平米"))
    assert rules.knowledge.facts["fee_per_m2"] in answer and "房号" in answer  # answered, then asked again
    assert "什么时候上门" in " ".join(stack.say(sender, "8栋1单元1101"))
    stack.say(sender, "周六上午")
    [ticket] = stack.tickets_of(sender)
    assert (ticket.room, ticket.visit_time, ticket.description) == ("8栋1单元1101", "周六上午", "我要报修，客厅的灯不亮了")


def test_correcting_the_room_midway(stack: LiveStack):
    sender = "oE2eCorrection1"
    stack.say(sender, "卧室的门锁坏了，打不开")
    stack.say(sender, "3栋2单元501")
    answer = " ".join(stack.say(sender, "不对，是502"))
    assert "3栋2单元502" in answer and "什么时候上门" in answer
    stack.say(sender, "明天下午")
    [ticket] = stack.tickets_of(sender)
    assert (ticket.room, ticket.visit_time) == ("3栋2单元502", "明天下午")


def test_traditional_chinese_is_understood(stack: LiveStack):
    sender = "oE2eTraditional"
    assert "房号" in " ".join(stack.say(sender, "電梯壞了，有人被困在裡面"))
    stack.say(sender, "5棟1單元302")
    [ticket] = stack.tickets_of(sender)
    assert (ticket.priority, ticket.room) == ("emergency", "5栋1单元302")


def test_asking_for_a_person_midway_hands_the_case_to_staff(stack: LiveStack):
    sender = "oE2eHumanMidway"
    stack.say(sender, "我要投诉")
    stack.say(sender, "楼下的狗天天半夜叫")
    answer = " ".join(stack.say(sender, "别跟机器人说了，给我转人工"))
    [ticket] = stack.tickets_of(sender)
    assert ticket.kind == "enquiry" and ticket.number in answer and "楼下的狗天天半夜叫" in ticket.description
    assert "报修" in " ".join(stack.say(sender, "你好"))  # the complaint form is no longer waiting for answers


def test_a_request_for_another_public_body_gets_a_referral(stack: LiveStack):
    assert "教育局" in " ".join(stack.say("oE2eReferral001", "孩子明年上小学入学去哪报名"))


def test_low_confidence_is_clarified_and_the_request_goes_on(stack: LiveStack):
    sender = "oE2eClarify0001"
    # "/nlu_fallback" is what the FallbackClassifier turns a low-confidence message into.
    question = " ".join(stack.say(sender, "/nlu_fallback"))
    assert "换个说法" in question
    assert "哪里坏了" in " ".join(stack.say(sender, "我要报修"))  # the clarified request starts the form
    assert "房号" in " ".join(stack.say(sender, "客厅的灯不亮了"))
