"""Actions for the unhappy paths: FAQ answers from the project file, referrals, asking for
a person midway, clarifying low-confidence messages, correcting the room."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.fallback import ActionDefaultAskAffirmation
from actions.human import ActionRequestHuman
from actions.knowledge import ActionAnswerFaq, ActionReferOutOfScope
from actions.repair import ValidateRepairForm
from bot.cases import context as runtime
from bot.core.company import Company
from bot.core.knowledge import parse_knowledge
from bot.db.models import Ticket, TicketEvent
from tests.unit.test_actions import DOMAIN, slot_events, tickets, tracker


@pytest.fixture(autouse=True)
def wired(sqlite_store, company):
    runtime.configure(sqlite_store, company)
    yield sqlite_store
    runtime.configure(None, None)


def faq_tracker(topic: str, text: str = "物业费怎么交") -> Tracker:
    t = tracker(text, intent="faq")
    t.latest_message["response_selector"] = {
        "faq": {"response": {"intent_response_key": topic, "confidence": 0.97}}}
    return t


async def test_faq_answer_is_the_project_template_filled_with_its_facts(rules):
    dispatcher = CollectingDispatcher()
    await ActionAnswerFaq().run(dispatcher, faq_tracker("faq/fee_standard"), DOMAIN)
    [message] = dispatcher.messages
    assert rules.knowledge.facts["fee_per_m2"] in message["text"]
    assert "{" not in message["text"]


async def test_editing_a_fact_changes_the_answer_without_retraining(rules):
    raw = {"facts": {**rules.knowledge.facts, "fee_per_m2": "3.15"}, "faq": dict(rules.knowledge.answers)}
    runtime.configure(runtime.get_store(), Company.of(replace(rules, knowledge=parse_knowledge(raw, {}))))
    dispatcher = CollectingDispatcher()
    await ActionAnswerFaq().run(dispatcher, faq_tracker("faq/fee_standard"), DOMAIN)
    assert "3.15" in dispatcher.messages[0]["text"]


async def test_an_unknown_faq_topic_gets_a_polite_answer_with_the_phone(rules):
    dispatcher = CollectingDispatcher()
    await ActionAnswerFaq().run(dispatcher, faq_tracker("faq/no_such_topic"), DOMAIN)
    assert rules.service_hours.phone in dispatcher.messages[0]["text"]


@pytest.mark.parametrize("text, department", [
    ("孩子明年入学去哪报名", "教育局"),
    ("我家宽带断了找谁", "运营商"),
    ("社保卡丢了怎么补", "社保"),
])
async def test_out_of_scope_requests_are_referred_to_the_right_body(text: str, department: str):
    dispatcher = CollectingDispatcher()
    await ActionReferOutOfScope().run(dispatcher, tracker(text, intent="out_of_scope"), DOMAIN)
    assert department in dispatcher.messages[0]["text"]


async def test_other_out_of_scope_messages_get_the_general_referral(rules):
    dispatcher = CollectingDispatcher()
    await ActionReferOutOfScope().run(dispatcher, tracker("讲个笑话吧", intent="out_of_scope"), DOMAIN)
    assert dispatcher.messages[0]["text"] == rules.knowledge.referral_default and "12345" in rules.knowledge.referral_default


async def test_asking_for_a_person_midway_stops_the_form_and_hands_over_what_was_said(wired):
    slots = {"repair_description": "厨房下水道堵了", "room": "3栋2单元501", "requested_slot": "visit_time"}
    dispatcher = CollectingDispatcher()
    events = await ActionRequestHuman().run(
        dispatcher, tracker("转人工", intent="request_human", slots=slots, active_loop="repair_form"), DOMAIN)
    assert [e["name"] for e in events if e["event"] == "active_loop"] == [None]
    assert slot_events(events)["repair_description"] is None
    [ticket] = tickets(wired)
    assert ticket.kind == "enquiry" and "厨房下水道堵了" in ticket.description and "3栋2单元501" in ticket.description
    assert ticket.number in dispatcher.messages[0]["text"]

    # Asking again while nobody has picked it up yet: the same case, one more event.
    again = CollectingDispatcher()
    await ActionRequestHuman().run(again, tracker("怎么还没人理我，转人工", intent="request_human"), DOMAIN)
    assert len(tickets(wired)) == 1 and ticket.number in again.messages[0]["text"]
    with wired.transaction() as s:
        actions = s.execute(select(TicketEvent.action).join(Ticket).where(Ticket.number == ticket.number)).scalars()
        assert list(actions) == ["created", "escalated", "asked_again"]


async def test_low_confidence_offers_the_likeliest_requests_in_words_the_resident_can_type_back():
    t = tracker("那个东西又不行了", intent="nlu_fallback")
    t.latest_message["intent_ranking"] = [
        {"name": "nlu_fallback", "confidence": 0.45}, {"name": "greet", "confidence": 0.2},
        {"name": "report_repair", "confidence": 0.18}, {"name": "file_complaint", "confidence": 0.1},
        {"name": "check_status", "confidence": 0.05}]
    dispatcher = CollectingDispatcher()
    await ActionDefaultAskAffirmation().run(dispatcher, t, DOMAIN)
    [message] = dispatcher.messages
    assert "“报修”" in message["text"] and "“投诉”" in message["text"] and "查询进度" not in message["text"]
    assert [b["payload"] for b in message["buttons"]] == ["/report_repair", "/file_complaint", "/out_of_scope"]


async def test_low_confidence_without_a_candidate_asks_to_rephrase():
    t = tracker("嗯嗯啊", intent="nlu_fallback")
    t.latest_message["intent_ranking"] = [{"name": "greet", "confidence": 0.3}]
    dispatcher = CollectingDispatcher()
    await ActionDefaultAskAffirmation().run(dispatcher, t, DOMAIN)
    assert dispatcher.messages[0]["response"] == "utter_ask_rephrase"


def correction_tracker(text: str, extracted: dict[str, Any]) -> Tracker:
    """The form asked for the visit time; this turn's extraction put `extracted` in the slots."""
    before = {"repair_description": "卧室门锁坏了", "room": "3栋2单元501", "requested_slot": "visit_time"}
    t = tracker(text, intent="deny", slots={**before, **extracted}, active_loop="repair_form")
    t.events = [{"event": "slot", "name": "room", "value": "3栋2单元501"},
                {"event": "user", "text": text}]
    t.events += [{"event": "slot", "name": name, "value": value} for name, value in extracted.items()]
    return t


@pytest.mark.parametrize("text, extracted", [
    ("不对，是502", {"visit_time": "不对，是502"}),
    ("不对，是3栋2单元502", {"visit_time": "不对，是3栋2单元502", "room": "3栋2单元502"}),
])
async def test_correcting_the_room_while_asked_for_the_visit_time(text: str, extracted: dict[str, Any]):
    dispatcher = CollectingDispatcher()
    events = await ValidateRepairForm().run(dispatcher, correction_tracker(text, extracted), DOMAIN)
    slots = slot_events(events)
    assert slots["room"] == "3栋2单元502" and slots["visit_time"] is None
    assert [m["text"] for m in dispatcher.messages if m.get("text")] == ["好的，房号已更正为 3栋2单元502。"]


async def test_a_visit_time_is_not_mistaken_for_a_correction():
    events = await ValidateRepairForm().run(
        CollectingDispatcher(), correction_tracker("明天上午10点以后", {"visit_time": "明天上午10点以后"}), DOMAIN)
    assert slot_events(events)["visit_time"] == "明天上午10点以后" and "room" not in slot_events(events)
