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
    assert "24 小时内完成" in confirmation
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
    assert [e.action for e in ticket.events] == ["created"]


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
