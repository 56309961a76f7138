"""SLA deadlines, triage and per-project configuration."""
from datetime import datetime, timedelta

import pytest
import yaml

from bot.core.kinds import Priority, TicketKind
from bot.core.rules import parse_rules
from bot.core.sla import compute_due_at
from bot.core.triage import complaint_tier, repair_priority
from bot.settings import PROJECT_ROOT

FRIDAY_10_LOCAL_AS_UTC = datetime(2026, 11, 27, 2, 0)  # Fri 10:00 Asia/Shanghai


def raw_rules() -> dict:
    with open(PROJECT_ROOT / "project" / "default.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("text,expected", [
    ("厨房水管爆了，水一直喷", Priority.EMERGENCY),
    ("家里突然断电了", Priority.EMERGENCY),
    ("有人被困在电梯里", Priority.EMERGENCY),
    ("闻到很重的煤气味", Priority.EMERGENCY),
    ("配电箱冒烟", Priority.EMERGENCY),
    ("客厅灯不亮", Priority.NORMAL),
    ("门禁刷不开", Priority.NORMAL),
])
def test_repair_urgency(rules, text, expected):
    assert repair_priority(text, rules.urgency) is expected


@pytest.mark.parametrize("text,expected", [
    ("很多业主都有意见，要集体投诉", Priority.MAJOR),
    ("保安打人，有人受伤了", Priority.MAJOR),
    ("楼上半夜装修，严重影响休息", Priority.URGENT),
    ("保洁没打扫楼道", Priority.GENERAL),
])
def test_complaint_tier(rules, text, expected):
    assert complaint_tier(text, rules.triage) is expected


def test_repair_deadlines(rules):
    emergency = compute_due_at(TicketKind.REPAIR, Priority.EMERGENCY, FRIDAY_10_LOCAL_AS_UTC, rules)
    general = compute_due_at(TicketKind.REPAIR, Priority.NORMAL, FRIDAY_10_LOCAL_AS_UTC, rules)
    assert emergency - FRIDAY_10_LOCAL_AS_UTC == timedelta(minutes=10)
    assert general - FRIDAY_10_LOCAL_AS_UTC == timedelta(hours=24)


def test_general_complaint_skips_the_weekend(rules):
    due = compute_due_at(TicketKind.COMPLAINT, Priority.GENERAL, FRIDAY_10_LOCAL_AS_UTC, rules)
    assert due == datetime(2026, 12, 1, 2, 0)  # Tuesday 10:00 local: Mon + Tue are the 2 working days


def test_holidays_are_not_working_days():
    raw = raw_rules()
    raw["sla"]["holidays"] = ["2026-11-30"]
    rules = parse_rules(raw)
    due = compute_due_at(TicketKind.COMPLAINT, Priority.GENERAL, FRIDAY_10_LOCAL_AS_UTC, rules)
    assert due == datetime(2026, 12, 2, 2, 0)


def test_numbers_come_from_project_configuration():
    raw = raw_rules()
    raw["sla"]["emergency_repair_onsite_minutes"] = 30
    # A project with a boiler house adds its own hazard; the default rules know nothing of it.
    boiler = "锅炉房的压力表指针到红区了"
    assert repair_priority(boiler, parse_rules(raw_rules()).urgency) is Priority.NORMAL
    raw["urgency"]["hazards"]["boiler"] = {"label": "锅炉超压", "life_risk": True, "cues": ["压力表.{0,6}红区"]}
    rules = parse_rules(raw)
    due = compute_due_at(TicketKind.REPAIR, repair_priority(boiler, rules.urgency), FRIDAY_10_LOCAL_AS_UTC, rules)
    assert due - FRIDAY_10_LOCAL_AS_UTC == timedelta(minutes=30)


def test_special_groups_get_faster_deadlines(rules):
    normal = compute_due_at(TicketKind.REPAIR, Priority.NORMAL, FRIDAY_10_LOCAL_AS_UTC, rules)
    elderly = compute_due_at(TicketKind.REPAIR, Priority.NORMAL, FRIDAY_10_LOCAL_AS_UTC, rules,
                             resident_tags=["living_alone_elderly"])
    assert elderly - FRIDAY_10_LOCAL_AS_UTC == (normal - FRIDAY_10_LOCAL_AS_UTC) / 2


def test_praise_has_no_deadline(rules):
    assert compute_due_at(TicketKind.PRAISE, None, FRIDAY_10_LOCAL_AS_UTC, rules) is None
