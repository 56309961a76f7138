"""Emergencies read from what residents describe (issue 13, item 1): the labelled tables,
and each behaviour on its own — look-alikes, negation, resolved and past states, what-ifs,
people at risk, the advice that comes first only when life is at risk, the reason staff see."""
from __future__ import annotations

import sys
from dataclasses import replace

import pytest
import yaml
from sqlalchemy import select

from bot.cases.tickets import open_repair_ticket, urgency_reason
from bot.channels.telegram.cards import ticket_lines
from bot.core import replies
from bot.core.kinds import Priority
from bot.core.rules import parse_rules
from bot.core.urgency import LEARNED, assess
from bot.db.models import Ticket
from bot.settings import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
from evaluate_urgency import load_table, score  # noqa: E402


def test_the_development_table_meets_the_targets(rules):
    scores = score(load_table("descriptions"), rules.urgency)
    assert scores.rows >= 150
    assert scores.recall >= 0.98, scores.missed
    assert scores.false_life_alarms == []  # nobody is sent out of their home for nothing
    assert scores.hazard_right >= 0.95 * scores.found


# Floors against regressions, below what was measured; the values are reported by make eval.
# `final` was never used to change a cue: its recall is what to expect of new phrasings.
@pytest.mark.parametrize("table,recall_floor", [("fresh", 0.95), ("unseen", 0.95), ("holdout", 0.95), ("final", 0.6)])
def test_tables_written_apart_never_raise_a_false_fire_or_gas_alarm(rules, table, recall_floor):
    scores = score(load_table(table), rules.urgency)
    assert scores.false_life_alarms == []
    assert scores.recall >= recall_floor, scores.missed


@pytest.mark.parametrize("text", ["热水器打不着火", "燃气灶点不着火", "灶的火力太小", "电梯广告屏不亮",
                                  "手机没电了", "楼道有人抽烟", "空调漏气了", "孩子发烧了", "我很困扰"])
def test_look_alikes_are_not_emergencies(rules, text):
    assert not assess(text, rules.urgency).emergency


@pytest.mark.parametrize("text", ["没有漏水，就是下水慢", "之前漏水的地方已经不漏了", "上次漏水修好了",
                                  "如果漏水了找谁", "燃气味已经没有了", "去年被困过一次电梯"])
def test_negated_resolved_past_and_hypothetical_hazards_do_not_count(rules, text):
    assert not assess(text, rules.urgency).emergency


def test_the_past_does_not_hide_what_happens_again_now(rules):
    urgency = assess("上次漏水修好了，今天又开始漏", rules.urgency)
    assert (urgency.emergency, urgency.hazard) == (True, "water")


def test_people_at_risk_make_a_hazard_a_danger_to_life(rules):
    assert assess("家里停电了", rules.urgency).life_risk is False
    urgency = assess("家里停电了，老人用制氧机", rules.urgency)
    assert (urgency.hazard, urgency.life_risk, urgency.at_risk) == ("power", True, "老人")


def test_a_person_in_danger_is_an_emergency_without_a_hazard(rules):
    urgency = assess("花园里有个老人摔倒了起不来", rules.urgency)
    assert (urgency.emergency, urgency.hazard, urgency.life_risk) == (True, "person", True)
    assert "120" in urgency.advice


def test_described_hazards_are_found_without_their_names(rules):
    assert assess("一进厨房就闻到一股臭鸡蛋的味道", rules.urgency).hazard == "gas"
    assert assess("电梯卡在两层中间不动了，我妈在里面", rules.urgency).hazard == "trapped"
    assert assess("楼上往我家天花板滴水，敲门没人应", rules.urgency).hazard == "water"
    assert assess("單元門口一股瓦斯味", rules.urgency).hazard == "gas"  # Traditional input


def test_the_explanation_names_the_hazard_the_words_and_who_is_at_risk(rules):
    text = assess("厨房有很重的燃气味，我奶奶在家", rules.urgency).explain()
    assert "燃气泄漏" in text and "燃气味" in text and "奶奶" in text and "危及人身安全" in text


def test_advice_comes_first_only_when_life_is_at_risk(store, rules):
    with store.transaction() as s:
        gas = open_repair_ticket(s, rules, openid="oUrgGas", description="闻到很重的煤气味", room="3栋2单元501",
                                 visit_time=None, channel="wechat")
        water = open_repair_ticket(s, rules, openid="oUrgWater", description="厨房水管爆了", room="3栋2单元502",
                                   visit_time=None, channel="wechat")
        heater = open_repair_ticket(s, rules, openid="oUrgHeater", description="热水器打不着火", room="3栋2单元503",
                                    visit_time="明天上午", channel="wechat")
        said = {t.description: replies.repair_confirmation(t, rules) for t in (gas, water, heater)}
    assert said["闻到很重的煤气味"].startswith("请先关闭燃气总阀")
    first, *rest = said["厨房水管爆了"].splitlines()
    assert first.startswith("紧急报修已登记") and any("总水阀" in line for line in rest)
    # Said once: when the form already gave the advice, the confirmation starts with the number.
    gas_again = replies.repair_confirmation(gas, rules, advice_given=True)
    assert gas_again.startswith("紧急报修已登记") and "燃气总阀" not in gas_again
    assert heater.priority == Priority.NORMAL.value
    assert "119" not in said["热水器打不着火"] and "离开" not in said["热水器打不着火"]


def test_staff_see_why_a_case_is_urgent(store, rules):
    with store.transaction() as s:
        number = open_repair_ticket(s, rules, openid="oUrgCard", description="电梯门打不开，里面有个老人",
                                    room="5栋1单元", visit_time=None, channel="wechat").number
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert ticket.priority == Priority.EMERGENCY.value
        assert "有人被困" in urgency_reason(ticket)
        assert any(line.startswith("紧急原因：有人被困") for line in ticket_lines(ticket, rules))


@pytest.mark.parametrize(("text", "hazard"), [
    ("然气味好重 厨房", "gas"),  # a homophone typo
    ("厨房着伙了快来人", "fire"),
    ("部升降机困咗人呀", "trapped"),  # Cantonese
    ("电梯里灯灭了也不动 我和女儿在里面", "trapped"),  # 灭了 ends a fire, not a stuck lift
    ("做饭时火被汤浇灭了 现在满屋子煤气味", "gas"),
    ("漏水了 快来", "water"),  # a space is a clause break
])
def test_typos_dialect_and_hazard_specific_resolved_words(rules, text, hazard):
    assert assess(text, rules.urgency).hazard == hazard


@pytest.mark.parametrize("text", [
    "火已经灭了，就是墙熏黑了，想找人来刷一下",
    "家里跳闸了，我自己推上去就好了",
    "卧室有一个插座没电了，其他都正常",
    "冰箱底下漏了一小滩水",
    "电梯困人演练是明天吗",
])
def test_over_small_or_only_a_drill_is_not_an_emergency(rules, text):
    assert not assess(text, rules.urgency).emergency


def test_the_learned_reader_recognises_what_no_cue_lists(rules):
    """Told in words no cue lists, an emergency is still sent someone quickly, with calm
    advice and the n-grams that decided it; it names no hazard, so nobody is told to evacuate."""
    text = "我刚下班推开门 一屋子水 拖鞋都漂起来了 不知道哪里漏的"
    cues_only = replace(rules.urgency, reader=None)
    assert not assess(text, cues_only).emergency
    urgency = assess(text, rules.urgency)
    assert urgency.emergency and urgency.hazard == LEARNED and not urgency.life_risk and not urgency.certain
    assert urgency.cue and "119" not in urgency.advice and urgency.advice == rules.urgency.reader_advice
    assert "疑似紧急" in urgency.explain()


def test_the_learned_reader_skips_what_is_over_or_only_a_question(rules):
    for text in ("上次一屋子水 拖鞋都漂起来了 后来修好了", "如果家里一屋子水 拖鞋都漂起来了怎么办"):
        assert not assess(text, rules.urgency).emergency


def test_a_project_without_examples_has_no_learned_reader(rules):
    raw = yaml.safe_load((PROJECT_ROOT / "project" / "default.yml").read_text(encoding="utf-8"))
    assert parse_rules(raw, PROJECT_ROOT / "project").urgency.reader is not None
    raw["urgency"].pop("learned")
    assert parse_rules(raw, PROJECT_ROOT / "project").urgency.reader is None


@pytest.mark.parametrize("table", ["blind2", "blind3"])
def test_the_blind_tables_with_the_reader(rules, table):
    """Written blind, never learned from (see each file's header for its first reading).
    Floors against regressions; make eval reports the values."""
    scores = score(load_table(table), rules.urgency)
    assert scores.recall >= 0.95, scores.missed
    assert scores.false_life_alarms == []
