"""The real python-telegram-bot application against a fake Telegram Bot API on loopback."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime
from typing import AsyncIterator

import pytest
from sqlalchemy import select

from bot.cases.residents import bind_resident, import_roster
from bot.cases.staff_directory import add_staff, disable_staff
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket, request_human
from bot.channels.telegram.app import create_application, serve
from bot.core.company import Company, load_company
from bot.db.models import AuditEntry, StaffAlert, Ticket
from bot.settings import PROJECT_ROOT, Settings
from tests.telegram_fakes import BOT_TOKEN, HEAD_CHAT, STAFF_CHAT, FakeTelegram, eventually, user

WANG, LI, STRANGER = user(1001, "王磊"), user(1002, "李娜"), user(6666, "路人")
ZHANG, GONE = user(1003, "张伟"), user(1004, "离职的人")  # of the other project; disabled
NOON = datetime(2026, 11, 26, 4, 0)
CS_CHAT = -100777777  # the company customer-service department


def add_telegram_staff(store, company: Company) -> None:  # type: ignore[no-untyped-def]
    with store.transaction() as s:
        for who, project in ((WANG, "default"), (LI, "default"), (ZHANG, "binjiang"), (GONE, "default")):
            add_staff(s, name=who["first_name"], employee_number=f"TG{who['id']}", roles=["agent"], projects=[project],
                      telegram_user_id=who["id"], known_projects=company.codes)
        disable_staff(s, f"TG{GONE['id']}")


@pytest.fixture
async def telegram(sqlite_store, rules, tmp_path) -> AsyncIterator[tuple[FakeTelegram, object]]:
    fake = FakeTelegram()
    url = await fake.start()
    settings = Settings(database_url=sqlite_store.url, telegram_bot_token=BOT_TOKEN, telegram_api_base_url=url,
                        staff_chat_id=STAFF_CHAT, project_head_chat_id=HEAD_CHAT)
    company = Company.of(rules, replace(rules, code="binjiang", name="滨江花园"))
    add_telegram_staff(sqlite_store, company)
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone\n3栋2单元501,张三,13812345678\n", encoding="utf-8")
    with sqlite_store.transaction() as s:
        import_roster(s, roster, projects=company.codes, default_project="default")
        bind_resident(s, rules, openid="oTgResident1", room="3栋2单元501", phone="13812345678", channel="wechat")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(create_application(settings, company, sqlite_store), stop, feed_interval=0.1))
    yield fake, sqlite_store
    stop.set()
    await asyncio.wait_for(task, 30)
    await fake.close()


def card_for(fake: FakeTelegram, number: str, chat: int = STAFF_CHAT):  # type: ignore[no-untyped-def]
    return fake.wait_for_sent(lambda m: m["chat"]["id"] == chat and number in m["text"] and m.get("reply_markup"))


async def test_cards_carry_the_case_with_a_masked_phone_and_three_buttons(telegram, rules):
    fake, store = telegram
    with store.transaction() as s:
        number = open_repair_ticket(s, rules, openid="oTgResident1", description="电梯困人了，快来",
                                    room="3栋2单元501", visit_time=None, channel="wechat").number
    card = await card_for(fake, number)
    text = card["text"]
    assert text.startswith("【紧急报修】") and "报修 · 紧急" in text and "3栋2单元501" in text
    assert "138****5678" in text and "13812345678" not in text and "时限：" in text
    buttons = card["reply_markup"]["inline_keyboard"][0]
    assert [(b["text"], b["callback_data"]) for b in buttons] == [
        ("接单", f"claim:{number}"), ("回复", f"reply:{number}"), ("办结", f"resolve:{number}")]

    def all_marked_posted() -> bool:
        with store.transaction() as s:
            return all(a.notified_at for a in s.execute(select(StaffAlert)).scalars())

    # The bot marks an alert posted right after Telegram accepted the card: wait for that.
    await eventually(all_marked_posted, "every alert marked as posted")


async def test_major_complaints_also_reach_the_project_head(telegram, rules):
    fake, store = telegram
    with store.transaction() as s:
        number = open_complaint_ticket(s, rules, openid="oTgResident1", description="保安打人，有人受伤了",
                                       demand="严肃处理", room=None, channel="wechat").number
    assert "【重大投诉】" in (await card_for(fake, number, HEAD_CHAT))["text"]
    await card_for(fake, number, STAFF_CHAT)


async def test_two_staff_press_claim_at_once_one_owner(telegram, rules):
    fake, store = telegram
    with store.transaction() as s:
        number = request_human(s, rules, openid="oTgResident1", context="居民原话：转人工", channel="wechat").number
    card = await card_for(fake, number)
    first = fake.press(WANG, card, f"claim:{number}")
    second = fake.press(LI, card, f"claim:{number}")
    answers = [await fake.wait_for_answer(first), await fake.wait_for_answer(second)]
    won = [a for a in answers if a.get("text", "").startswith("已接单")]
    lost = [a for a in answers if "已由" in a.get("text", "")]
    assert len(won) == 1 and len(lost) == 1
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        owner = ticket.assignee
        assert [e.action for e in ticket.events].count("claimed") == 1
    assert lost[0]["text"] == f"工单 {number} 已由 {owner} 接单"
    await fake.wait_for_sent(lambda m: m["text"].startswith(f"✅ {owner} 已接单 {number}"))


async def test_an_unauthorised_press_changes_nothing(telegram, rules, caplog):
    fake, store = telegram
    with store.transaction() as s:
        number = request_human(s, rules, openid="oTgResident1", context="居民原话：找人工", channel="wechat").number
    card = await card_for(fake, number)
    with caplog.at_level(logging.WARNING, logger="bot.channels.telegram.app"):
        for action in ("claim", "resolve", "reply"):
            answer = await fake.wait_for_answer(fake.press(STRANGER, card, f"{action}:{number}"))
            assert "无权" in answer["text"] and answer.get("show_alert") is True
        answer = await fake.wait_for_answer(fake.press(GONE, card, f"claim:{number}"))  # disabled: no longer staff
        assert "无权" in answer["text"]
    assert any("refused user id 6666" in r.getMessage() for r in caplog.records)
    assert any("refused user id 1004" in r.getMessage() for r in caplog.records)
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert (ticket.assignee_id, ticket.status) == (None, "new")
        assert [e.action for e in ticket.events] == ["created", "escalated"]


async def test_commands_list_my_cases_unclaimed_ones_and_show_a_ticket(telegram, rules):
    fake, store = telegram
    with store.transaction() as s:
        mine = request_human(s, rules, openid="oTgResident1", context="居民原话：转人工", channel="wechat").number
        waiting = open_repair_ticket(s, rules, openid="oTgOther", description="楼道漏水了", room="5栋",
                                     visit_time=None, channel="wechat").number
    card = await card_for(fake, mine)
    await fake.wait_for_answer(fake.press(WANG, card, f"claim:{mine}"))
    fake.command(WANG, "/mine")
    listing = await fake.wait_for_sent(lambda m: m["text"].startswith("我的在办工单"))
    assert mine in listing["text"] and waiting not in listing["text"]
    fake.command(LI, "/unclaimed")
    listing = await fake.wait_for_sent(lambda m: m["text"].startswith("待接单工单"))
    assert waiting in listing["text"] and mine not in listing["text"]
    fake.command(LI, f"/ticket {mine}")
    view = await fake.wait_for_sent(lambda m: m["text"].startswith(f"工单：{mine}") and "最近记录" in m["text"])
    assert "接单人 王磊" in view["text"] and "138****5678" in view["text"]
    fake.command(STRANGER, f"/ticket {mine}")
    await fake.wait_for_sent(lambda m: m["text"] == "您不在值班名单中，无权查看。")


async def test_a_forged_button_is_refused_politely(telegram, rules):
    fake, store = telegram
    with store.transaction() as s:
        number = request_human(s, rules, openid="oTgResident1", context="转人工", channel="wechat").number
    card = await card_for(fake, number)
    answer = await fake.wait_for_answer(fake.press(WANG, card, "delete:everything"))
    assert answer["text"] == "无法识别的操作。"
    answer = await fake.wait_for_answer(fake.press(WANG, card, "claim:BX19990101-0001"))
    assert answer["text"] == "没有找到工单 BX19990101-0001"
    with store.transaction() as s:
        assert s.execute(select(Ticket).where(Ticket.number == number)).scalar_one().assignee_id is None


async def test_the_bot_token_never_reaches_the_log(sqlite_store, rules, caplog):
    # The Bot API URL carries the token, and httpx logs every request URL at INFO.
    caplog.set_level(logging.INFO)
    fake = FakeTelegram()
    url = await fake.start()
    settings = Settings(database_url=sqlite_store.url, telegram_bot_token=BOT_TOKEN, telegram_api_base_url=url,
                        staff_chat_id=STAFF_CHAT)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(create_application(settings, Company.of(rules), sqlite_store), stop,
                                     feed_interval=0.1))
    try:
        with sqlite_store.transaction() as s:
            number = request_human(s, rules, openid="oTgTokenCheck", context="转人工", channel="wechat").number
        await card_for(fake, number)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await fake.close()
    ours = [r for r in caplog.records if r.name != "aiohttp.access"]  # that one is the fake Telegram's server
    assert any(r.name.startswith("bot.") for r in ours), "nothing of ours logged at INFO: the check proves nothing"
    assert all(BOT_TOKEN not in r.getMessage() for r in ours)


async def test_staff_of_another_project_are_refused_and_the_refusal_is_audited(telegram, rules):
    fake, store = telegram
    with store.transaction() as s:
        number = request_human(s, rules, openid="oTgResident1", context="居民原话：转人工", channel="wechat").number
    card = await card_for(fake, number)
    answer = await fake.wait_for_answer(fake.press(ZHANG, card, f"claim:{number}"))
    assert "无权处理" in answer["text"] and answer.get("show_alert") is True
    fake.command(ZHANG, f"/ticket {number}")
    await fake.wait_for_sent(lambda m: m["text"].startswith("您无权处理这张工单"))
    fake.command(ZHANG, "/unclaimed")
    listing = await fake.wait_for_sent(lambda m: m["text"].startswith("待接单工单"))
    assert number not in listing["text"]
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert (ticket.assignee_id, ticket.status) == (None, "new")
        refused = s.execute(select(AuditEntry).where(AuditEntry.ticket_number == number,
                                                     AuditEntry.allowed.is_(False))).scalars().all()
        assert [(r.staff_name, r.action, r.interface) for r in refused] == [
            ("张伟", "act_on_case", "telegram"), ("张伟", "view_case", "telegram")]
    # Their own colleague claims it; the timeline names the staff member.
    answer = await fake.wait_for_answer(fake.press(WANG, card, f"claim:{number}"))
    assert answer["text"].startswith("已接单")
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert ticket.assignee == "王磊" and ticket.assignee_id.startswith("staff:")


async def test_each_project_s_cases_go_to_its_own_groups_and_major_ones_to_the_company(sqlite_store, rules):
    fake = FakeTelegram()
    url = await fake.start()
    company = replace(load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects"),
                      cs_chat_id=CS_CHAT)
    settings = Settings(database_url=sqlite_store.url, telegram_bot_token=BOT_TOKEN, telegram_api_base_url=url,
                        staff_chat_id=STAFF_CHAT, project_head_chat_id=HEAD_CHAT)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(create_application(settings, company, sqlite_store), stop, feed_interval=0.1))
    binjiang = company.rules("binjiang")
    try:
        with sqlite_store.transaction() as s:
            ours = request_human(s, company.rules("default"), openid="oTgA", context="转人工", channel="wechat").number
            theirs = request_human(s, binjiang, openid="oTgB", context="转人工", channel="wechat").number
            major = open_complaint_ticket(s, binjiang, openid="oTgB2", description="保安打人，有人受伤了",
                                          demand="严肃处理", room=None, channel="wechat").number
        await card_for(fake, ours, -1001)
        await card_for(fake, theirs, -2001)
        for chat in (-2001, -2002, CS_CHAT):  # staff group, project head, company customer service
            await card_for(fake, major, chat)

        def posted() -> bool:
            with sqlite_store.transaction() as s:
                return all(a.notified_at for a in s.execute(select(StaffAlert)).scalars())

        await eventually(posted, "every alert posted")
        chats_of = {number: {m["chat"]["id"] for m in fake.sent if number in m.get("text", "")}
                    for number in (ours, theirs)}
        assert chats_of == {ours: {-1001}, theirs: {-2001}}  # never to the other project's group
        assert STAFF_CHAT not in {m["chat"]["id"] for m in fake.sent}  # projects with groups use their own
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await fake.close()
