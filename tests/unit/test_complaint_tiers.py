"""Complaint tiers weighed like a senior clerk (issue 13, item 4): each signal one by one,
the strongest wins, the reason stored on the case and shown to staff."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.cases.tickets import open_complaint_ticket, tier_reason
from bot.channels.telegram.cards import ticket_lines
from bot.core.kinds import Priority
from bot.core.rules import parse_rules
from bot.core.triage import weigh_complaint
from bot.db.models import Ticket
from tests.unit.test_rules import raw_rules


@pytest.mark.parametrize("text,tier,label", [
    ("这栋楼好多户都被吵得睡不着，我们要联名投诉", Priority.MAJOR, "多户受影响"),
    ("再不处理我就打12345", Priority.MAJOR, "扬言向外投诉或曝光"),
    ("我要把这事发到抖音上让大家看看", Priority.MAJOR, "扬言向外投诉或曝光"),
    ("我已经找了律师，准备起诉你们", Priority.MAJOR, "扬言向外投诉或曝光"),
    ("保安和业主动手了", Priority.MAJOR, "人身安全"),
    ("楼道地滑，我妈摔了一跤", Priority.MAJOR, "人身安全"),
    ("这个问题我报了三次都没人来", Priority.URGENT, "多次反映未解决"),
    ("拖了两个月了", Priority.URGENT, "多次反映未解决"),
    ("我录了视频，前台的态度你们自己看", Priority.URGENT, "已取证"),
    ("家里有孕妇，楼上天天装修", Priority.URGENT, "涉及老人小孩等"),
    ("半夜还在施工", Priority.URGENT, "持续影响或急需处理"),
    ("保洁没有打扫楼道", Priority.GENERAL, None),
])
def test_each_signal_raises_the_tier_and_says_why(rules, text, tier, label):
    weight = weigh_complaint(text, rules.triage)
    assert weight.tier is tier
    assert (label in weight.explain()) if label else weight.reasons == ()


def test_the_angry_front_desk_complaint_is_major_with_every_reason(rules):
    text = ("前台那个女的态度极其恶劣，对我大吼大叫，我全程录了视频，今天不给我个说法我就打12345，"
            "再把视频发到网上")
    weight = weigh_complaint(text, rules.triage)
    assert weight.tier is Priority.MAJOR
    assert "扬言向外投诉或曝光" in weight.explain() and "已取证" in weight.explain()


def test_negated_signals_and_phone_numbers_do_not_count(rules):
    assert weigh_complaint("还好没有人受伤，就是垃圾没清", rules.triage).tier is Priority.GENERAL
    assert weigh_complaint("垃圾没清，我电话13812345678", rules.triage).tier is Priority.GENERAL


def test_traditional_input_is_weighed_the_same(rules):
    assert weigh_complaint("再不處理我就找媒體曝光", rules.triage).tier is Priority.MAJOR


def test_a_project_adds_its_own_signal_and_old_word_lists_still_count():
    raw = raw_rules()
    raw["triage"]["complaint_signals"]["pets"] = {"label": "恶犬伤人风险", "tier": "major", "cues": ["没拴绳"]}
    raw["triage"]["urgent_complaint_keywords"] = ["漏雨"]
    rules = parse_rules(raw)
    assert weigh_complaint("楼下的大狗天天没拴绳", rules.triage).tier is Priority.MAJOR
    assert weigh_complaint("车库漏雨", rules.triage).tier is Priority.URGENT


def test_an_unknown_tier_is_refused_naming_the_signal():
    raw = raw_rules()
    raw["triage"]["complaint_signals"]["pets"] = {"tier": "huge", "cues": ["狗"]}
    with pytest.raises(ValueError, match="complaint_signals.pets.tier"):
        parse_rules(raw)


def test_staff_see_why_the_complaint_has_its_tier(store, rules):
    with store.transaction() as s:
        number = open_complaint_ticket(s, rules, openid="oTierCard", description="物业不作为，我要找记者曝光",
                                       demand="给个说法", room="3栋2单元501", channel="wechat").number
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert ticket.priority == Priority.MAJOR.value
        assert "扬言向外投诉或曝光" in tier_reason(ticket)
        assert any(line.startswith("定级依据：扬言向外投诉或曝光") for line in ticket_lines(ticket, rules))
