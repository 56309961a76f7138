"""A full handoff loop: resident on WeChat → 转人工 → card in the Telegram staff group →
接单 → the staff member's reply reaches the resident through the fake WeChat API → the
resident answers → staff see it in Telegram → 办结 → the callback is scheduled and the
resident is back with the assistant. Real gateway, Rasa, action server, staff bot and worker."""
from __future__ import annotations

import asyncio
from datetime import timezone
from typing import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from bot.assistant.client import AssistantClient
from bot.channels.telegram.app import create_application, serve
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.delivery import WeChatResidentChannel
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.company import Company
from bot.db import queue
from bot.db.models import Job, Ticket
from bot.settings import Settings
from bot.worker.handlers import Context
from bot.worker.loop import Worker
from tests.e2e.test_e2e_wechat import WeChatStack, _stack
from tests.live import staff_member
from tests.telegram_fakes import BOT_TOKEN, STAFF_CHAT, FakeTelegram, user
from tests.wechat_fakes import APP_ID, APP_SECRET

pytestmark = pytest.mark.e2e

WANG = user(1001, "王磊")
TRANSCRIPT: list[str] = []


@pytest.fixture
async def stack(live_stack, two_projects) -> AsyncIterator[WeChatStack]:
    async for s in _stack(live_stack, 4.0, two_projects):
        yield s


@pytest.fixture
async def telegram(live_stack, rules) -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    url = await fake.start()
    settings = Settings(database_url=live_stack.store.url, telegram_bot_token=BOT_TOKEN, telegram_api_base_url=url,
                        staff_chat_id=STAFF_CHAT)
    staff_member(live_stack.store, "E2E-TG1001", WANG["first_name"], projects=("default",),
                 telegram_user_id=WANG["id"])
    stop = asyncio.Event()
    # The deployment-wide STAFF_CHAT stands in for the project's own group here.
    task = asyncio.create_task(serve(create_application(settings, Company.of(rules), live_stack.store), stop,
                                     feed_interval=0.1))
    yield fake
    stop.set()
    await asyncio.wait_for(task, 30)
    await fake.close()


async def run_worker(stack: WeChatStack, rules) -> None:
    """The real worker code, on the real clock, once (what `python -m bot worker` does each round)."""
    async with aiohttp.ClientSession() as http:
        company = Company.of(rules)
        ctx = Context(stack.live.store, company,
                      WeChatResidentChannel(WeChatApi(http, stack.live.store, stack.api_url, APP_ID, APP_SECRET),
                                            stack.live.store, company),
                      AssistantClient(http, stack.live.rasa_url, stack.live.actions_url, stack.live.rasa_token))
        await Worker(ctx, "e2e-worker", clock=utcnow).run_due()


async def resident_gets(stack: WeChatStack, openid: str, rules, count: int) -> list[str]:
    await run_worker(stack, rules)
    texts = await stack.pushed(openid, count, timeout=10)
    assert len(texts) == count, texts
    return texts


async def test_full_handoff_loop(stack: WeChatStack, telegram: FakeTelegram, rules):
    openid = "oWxHandoff00001"
    log = TRANSCRIPT

    async def resident(text: str) -> str | None:
        answer = await stack.say(openid, text)
        log.append(f"居民（微信）：{text}")
        if answer:
            log.append(f"助手：{answer}")
        return answer

    asked_at = utcnow()
    answer = await resident("我要找人工客服")
    [ticket] = stack.tickets_of(openid)
    number = ticket.number
    # In service hours staff call back soon, outside them tomorrow morning: whichever it was.
    said = answer.split("\n\n")[0]  # a first contact also gets the binding prompt after it
    assert said in {replies.human_requested(number, rules, moment.replace(tzinfo=timezone.utc))
                    for moment in (asked_at, utcnow())}

    card = await telegram.wait_for_sent(lambda m: number in m["text"] and m.get("reply_markup"))
    log.append(f"员工群卡片：{card['text']}  [接单][回复][办结]")
    await telegram.wait_for_answer(telegram.press(WANG, card, f"claim:{number}"))
    log.append("王磊 点击【接单】")
    [joined] = await resident_gets(stack, openid, rules, 1)
    assert "王磊" in joined and number in joined
    log.append(f"→ 居民收到（客服消息）：{joined}")

    await telegram.wait_for_answer(telegram.press(WANG, card, f"reply:{number}"))
    prompt = await telegram.wait_for_sent(lambda m: m["text"].startswith("请直接回复本条消息，输入要发给居民的话"))
    telegram.reply(WANG, prompt, "您好，我是王磊，请问具体是什么问题？")
    log.append("王磊 点击【回复】：您好，我是王磊，请问具体是什么问题？")
    await telegram.wait_for_sent(lambda m: m["text"] == f"已发送给居民（{number}）。")
    texts = await resident_gets(stack, openid, rules, 2)
    assert texts[1] == "【客服王磊】您好，我是王磊，请问具体是什么问题？"
    log.append(f"→ 居民收到（客服消息）：{texts[1]}")

    # The resident's answer goes to the staff member, not to the assistant: no automatic reply.
    assert await resident("卫生间天花板一直在渗水，楼上没人在家") is None
    relayed = await telegram.wait_for_sent(lambda m: m["text"] == f"【{number}】居民：卫生间天花板一直在渗水，楼上没人在家")
    log.append(f"员工群收到：{relayed['text']}")
    telegram.reply(WANG, relayed, "好的，维修师傅十分钟内上门查看")
    log.append("王磊 回复这条消息：好的，维修师傅十分钟内上门查看")
    for _ in range(200):  # the bot confirms each reply it passed on
        if sum(m["text"] == f"已发送给居民（{number}）。" for m in telegram.sent) == 2:
            break
        await asyncio.sleep(0.05)
    texts = await resident_gets(stack, openid, rules, 3)
    assert texts[2] == "【客服王磊】好的，维修师傅十分钟内上门查看"
    log.append(f"→ 居民收到（客服消息）：{texts[2]}")

    await telegram.wait_for_answer(telegram.press(WANG, card, f"resolve:{number}"))
    prompt = await telegram.wait_for_sent(lambda m: m["text"].startswith("请直接回复本条消息，写明处理结果"))
    telegram.reply(WANG, prompt, "楼上水管接头松动，已紧固，渗水已止住")
    log.append("王磊 点击【办结】：楼上水管接头松动，已紧固，渗水已止住")
    await telegram.wait_for_sent(lambda m: m["text"].startswith(f"工单 {number} 已办结"))
    texts = await resident_gets(stack, openid, rules, 4)
    assert number in texts[3] and "智能助手" in texts[3]
    log.append(f"→ 居民收到（客服消息）：{texts[3]}")

    [ticket] = stack.tickets_of(openid)
    assert ticket.status == "resolved" and ticket.assignee == "王磊"
    actions = [e.action for e in ticket.events]
    for expected in ("created", "escalated", "claimed", "staff_reply", "resident_message", "notified"):
        assert expected in actions
    with stack.live.store.transaction() as s:
        callback = s.execute(select(Job).where(Job.ticket_id == ticket.id,
                                               Job.kind == queue.SATISFACTION_CALLBACK)).scalar_one()
        assert callback.status == "pending" and callback.due_at > ticket.resolved_at

    # Back with the assistant.
    assert "不客气" in await resident("谢谢")
    with stack.live.store.transaction() as s:
        assert s.execute(select(Ticket.status).where(Ticket.number == number)).scalar_one() == "resolved"
    print("\n".join(log))
