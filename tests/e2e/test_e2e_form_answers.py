"""End to end (issue 13): a form's answer is never hijacked, an emergency jumps the queue,
rooms are read as a person reads them, complaints about our slowness chase the repair.

Each answer below sounds like another request; the real model and action server must
still take it as the answer to the question just asked."""
from __future__ import annotations

import pytest

from tests.live import LiveStack

pytestmark = pytest.mark.e2e


def test_a_demand_that_sounds_like_a_status_query_is_the_demand(live_stack: LiveStack):
    sender = "oE2eAnswerDemand"
    assert "哪里" in " ".join(live_stack.say(sender, "我要投诉，前台的工作人员态度很差还骂人"))
    assert "诉求" in " ".join(live_stack.say(sender, "物业服务中心"))
    [confirmation] = live_stack.say(sender, "今天就派人来修 并且给个解释")
    [ticket] = live_stack.tickets_of(sender)
    assert ticket.kind == "complaint" and ticket.number in confirmation
    assert ticket.demand == "今天就派人来修 并且给个解释"


def test_a_visit_time_that_sounds_like_a_question_is_the_visit_time(live_stack: LiveStack):
    sender = "oE2eAnswerVisit"
    live_stack.say(sender, "客厅的灯不亮了")
    assert "什么时候上门" in " ".join(live_stack.say(sender, "8栋1单元1101"))
    [confirmation] = live_stack.say(sender, "下午两点后都有人在家 师傅来之前打个电话")
    [ticket] = live_stack.tickets_of(sender)
    assert ticket.visit_time == "下午两点后都有人在家 师傅来之前打个电话" and ticket.number in confirmation


def test_what_is_broken_told_like_a_status_query_is_the_description(live_stack: LiveStack):
    sender = "oE2eAnswerBroken"
    assert "哪里坏了" in " ".join(live_stack.say(sender, "我要报修"))
    assert "房号" in " ".join(live_stack.say(sender, "上次报的水管到现在还在滴水 怎么回事"))
    live_stack.say(sender, "3栋2单元501")
    live_stack.say(sender, "随时")
    [ticket] = live_stack.tickets_of(sender)
    assert ticket.description == "上次报的水管到现在还在滴水 怎么回事"


def test_a_way_out_still_leaves_the_form(live_stack: LiveStack):
    sender = "oE2eAnswerCancel"
    live_stack.say(sender, "我要投诉，垃圾三天没人收了")
    live_stack.say(sender, "5栋")
    assert "取消" in " ".join(live_stack.say(sender, "算了不投诉了"))
    assert live_stack.tickets_of(sender) == []


def test_an_emergency_told_instead_of_the_demand_jumps_the_queue(live_stack: LiveStack):
    sender = "oE2eAnswerFire"
    live_stack.say(sender, "我要投诉，楼道里堆满了杂物没人清理")
    live_stack.say(sender, "7栋1单元")
    replies = " ".join(live_stack.say(sender, "你们快来吧 楼道里冒烟了 一股烧焦的味道"))
    [ticket] = live_stack.tickets_of(sender)
    assert (ticket.kind, ticket.priority) == ("repair", "emergency")
    assert ticket.number in replies and "119" in replies


def test_a_room_corrected_in_the_same_message_and_after_filing(live_stack: LiveStack):
    sender = "oE2eRoomFix"
    live_stack.say(sender, "卧室的门锁坏了，打不开")
    assert "什么时候上门" in " ".join(live_stack.say(sender, "3栋2单元501 哦不对 是502"))
    live_stack.say(sender, "明天下午")
    [ticket] = live_stack.tickets_of(sender)
    assert ticket.room == "3栋2单元502"
    answer = " ".join(live_stack.say(sender, "不对 是1502"))
    [ticket] = live_stack.tickets_of(sender)  # still one case: corrected, not filed again
    assert ticket.room == "3栋2单元1502" and ticket.number in answer
    assert [e.action for e in ticket.events].count("room_corrected") == 1


def test_a_complaint_about_a_slow_repair_chases_it(live_stack: LiveStack):
    sender = "oE2eSlowRepair"
    live_stack.say(sender, "厨房下水道堵了")
    live_stack.say(sender, "9栋2单元802")
    live_stack.say(sender, "随时")
    live_stack.say(sender, "我要投诉你们维修部，报修两周了都没人来")
    live_stack.say(sender, "9栋2单元802")
    [confirmation] = live_stack.say(sender, "今天必须派人来")
    repair, complaint = sorted(live_stack.tickets_of(sender), key=lambda t: t.number)
    assert (repair.kind, complaint.kind) == ("repair", "complaint")
    assert repair.number in confirmation
    assert "chased_by_complaint" in [e.action for e in repair.events]
