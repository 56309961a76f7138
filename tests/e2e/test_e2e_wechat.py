"""WeChat end to end: tests play WeChat's servers against the real gateway, the real
Rasa server and the real action server. WeChat's API is a loopback fake that records
customer-service messages; a proxy in front of Rasa can slow it down or cut it off."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app.gateway import create_app, create_staff_app
from bot.channels.wechat.models import InboundMessage, OutboundMessage
from bot.db.models import Resident, Ticket
from tests.live import LiveStack, record_replies
from tests.unit.test_wechat_gateway import gateway_settings
from tests.wechat_fakes import FakeWeChatApi, RasaProxy, WeChatServers, event_xml, new_msg_id, text_xml, voice_xml

pytestmark = pytest.mark.e2e


@dataclass
class WeChatStack:
    live: LiveStack
    wechat: WeChatServers
    api: FakeWeChatApi
    rasa: RasaProxy
    http: aiohttp.ClientSession
    api_url: str = ""
    staff_url: str = ""  # the staff API's own listener

    async def say(self, openid: str, text: str, msg_id: int | None = None) -> str | None:
        push = await self.wechat.push(self.http, text_xml(openid, text, msg_id=msg_id))
        assert push.status == 200
        record_replies([push.reply or ""])
        return push.reply

    async def pushed(self, openid: str, count: int, timeout: float = 30.0) -> list[str]:
        for _ in range(int(timeout / 0.1)):
            if len(self.api.texts_to(openid)) >= count:
                break
            await asyncio.sleep(0.1)
        return self.api.texts_to(openid)

    def tickets_of(self, openid: str) -> list[Ticket]:
        return self.live.tickets_of(openid)


async def _stack(live: LiveStack, budget: float, company, **overrides) -> AsyncIterator[WeChatStack]:  # type: ignore
    api, proxy = FakeWeChatApi(), RasaProxy(live.rasa_url)
    api_url, proxy_url = await api.start(), await proxy.start()
    settings = gateway_settings(live.store.url, api_url, proxy_url, action_server_url=live.actions_url,
                                rasa_auth_token=live.rasa_token, passive_reply_budget=budget, **overrides)
    server = TestServer(create_app(settings, company), host="127.0.0.1")
    staff = TestServer(create_staff_app(settings, company), host="127.0.0.1")
    await server.start_server()
    await staff.start_server()
    async with aiohttp.ClientSession() as http:
        yield WeChatStack(live, WeChatServers(str(server.make_url("")), safe_mode=True), api, proxy, http, api_url,
                          str(staff.make_url("")).rstrip("/"))
    await staff.close()
    await server.close()
    await proxy.close()
    await api.close()


@pytest.fixture
async def stack(live_stack, two_projects) -> AsyncIterator[WeChatStack]:
    async for s in _stack(live_stack, 4.0, two_projects):
        yield s


@pytest.fixture
async def impatient_stack(live_stack, two_projects) -> AsyncIterator[WeChatStack]:
    async for s in _stack(live_stack, 1.0, two_projects):
        yield s


async def test_repair_conversation_in_safe_mode(stack: WeChatStack):
    openid = "oWxRepair000001"
    welcome = (await stack.wechat.push(stack.http, event_xml(openid, "subscribe"))).reply
    assert "欢迎关注" in welcome
    assert "哪里坏了" in await stack.say(openid, "我要报修")
    assert "房号" in await stack.say(openid, "阳台的地漏堵了，水排不下去")
    assert "什么时候上门" in await stack.say(openid, "5-1-302")
    confirmation = await stack.say(openid, "明天下午两点以后")
    [ticket] = stack.tickets_of(openid)
    assert ticket.number in confirmation and "地址：5栋1单元302" in confirmation
    assert (ticket.channel, ticket.room, ticket.visit_time) == ("wechat", "5栋1单元302", "明天下午两点以后")
    assert stack.api.messages == []  # every answer fitted the passive window


async def test_voice_and_menu_reach_the_assistant(stack: WeChatStack):
    openid = "oWxVoiceMenu001"
    push = await stack.wechat.push(stack.http, voice_xml(openid, "我要报修"))
    assert "哪里坏了" in push.reply
    await stack.say(openid, "算了")
    push = await stack.wechat.push(stack.http, event_xml(openid, "CLICK", "MENU_MY_TICKETS"))
    assert "没有正在处理" in push.reply


async def test_redeliveries_make_one_ticket_and_one_answer(stack: WeChatStack):
    openid = "oWxRetry0000001"
    await stack.say(openid, "我要报修")
    await stack.say(openid, "厨房水龙头坏了")
    await stack.say(openid, "3栋2单元501")
    msg_id = new_msg_id()
    stack.rasa.delay = 1.0  # the last step takes a while: WeChat gets impatient and redelivers
    first = asyncio.create_task(stack.say(openid, "随时都可以", msg_id=msg_id))
    await asyncio.sleep(0.4)
    second = asyncio.create_task(stack.say(openid, "随时都可以", msg_id=msg_id))
    replies = [await first, await second]
    stack.rasa.delay = 0
    replies.append(await stack.say(openid, "随时都可以", msg_id=msg_id))  # after it was answered
    await asyncio.sleep(1.0)
    answers = [r for r in replies if r] + stack.api.texts_to(openid)
    [ticket] = stack.tickets_of(openid)
    assert len(answers) == 1 and ticket.number in answers[0]
    with stack.live.store.transaction() as s:
        rows = s.execute(select(InboundMessage).where(InboundMessage.dedupe_key == f"msgid:{msg_id}")).scalars().all()
        assert len(rows) == 1 and rows[0].status == "answered" and rows[0].attempts == 1


async def test_slow_assistant_gets_success_then_exactly_one_pushed_answer(impatient_stack: WeChatStack):
    stack = impatient_stack
    openid = "oWxSlow00000001"
    stack.rasa.delay = 2.5  # beyond the 1 s budget
    started = time.monotonic()
    reply = await stack.say(openid, "你好")
    assert reply is None and time.monotonic() - started < 2.0  # "success" within the budget
    [pushed] = await stack.pushed(openid, 1)
    assert "报修" in pushed
    await asyncio.sleep(1.0)
    assert stack.api.texts_to(openid) == [pushed]
    with stack.live.store.transaction() as s:
        row = s.execute(select(InboundMessage).where(InboundMessage.openid == openid)).scalar_one()
        assert (row.status, row.delivery) == ("answered", "custom")
        assert s.execute(select(OutboundMessage).where(OutboundMessage.openid == openid)).scalar_one().status == "sent"


async def test_assistant_down_then_back(impatient_stack: WeChatStack):
    stack = impatient_stack
    openid = "oWxDown00000001"
    stack.rasa.down = True
    assert "已经收到" in await stack.say(openid, "你好")
    await asyncio.sleep(0.6)
    assert stack.api.texts_to(openid) == []
    stack.rasa.down = False
    [answer] = await stack.pushed(openid, 1)
    assert "报修" in answer
    # The push goes out first, then the inbound row is marked: give that a moment.
    for _ in range(50):
        with stack.live.store.transaction() as s:
            row = s.execute(select(InboundMessage).where(InboundMessage.openid == openid)).scalar_one()
            if row.status != "waiting":
                break
        await asyncio.sleep(0.1)
    assert (row.status, row.delivery) == ("answered", "custom")


async def test_fifty_residents_at_once_get_their_own_answers(stack: WeChatStack):
    residents = [(f"oWxCrowd{n:07d}", f"{n}栋1单元101") for n in range(1, 51)]

    async def report(openid: str, room: str) -> str | None:
        return await stack.say(openid, f"我家{room}卫生间水管漏水了")

    passive = await asyncio.gather(*(report(o, r) for o, r in residents))
    for (openid, room), reply in zip(residents, passive):
        answers = [reply] if reply else await stack.pushed(openid, 1, timeout=60)
        [ticket] = stack.tickets_of(openid)
        assert len(answers) == 1, openid
        assert ticket.room == room and ticket.priority == "emergency"
        assert ticket.number in answers[0] and f"地址：{room}" in answers[0]
    with stack.live.store.transaction() as s:
        crowd = s.execute(select(Resident).where(Resident.openid.like("oWxCrowd%"))).scalars().all()
        assert len(crowd) == 50
