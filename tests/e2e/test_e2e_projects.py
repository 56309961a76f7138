"""Two projects behind one official account, end to end: WeChat's pushes (a project's QR code
included) through the real gateway, the real Rasa server and action server. The same words
get each project's facts, deadlines and case records."""
from __future__ import annotations

from typing import AsyncIterator

import pytest

from bot.db.records import current_contact
from tests.e2e.test_e2e_wechat import WeChatStack, _stack
from tests.wechat_fakes import event_xml

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(live_stack, two_projects) -> AsyncIterator[WeChatStack]:
    async for s in _stack(live_stack, 4.0, two_projects):
        yield s


async def follow(stack: WeChatStack, openid: str, scene: str) -> str:
    push = await stack.wechat.push(stack.http, event_xml(openid, "subscribe", f"qrscene_{scene}" if scene else ""))
    assert push.status == 200
    return push.reply or ""


def project_of(stack: WeChatStack, openid: str) -> str | None:
    with stack.live.store.transaction() as session:
        resident = current_contact(session, openid)
        return resident.project if resident else None


async def test_the_same_words_get_each_project_s_facts_and_deadlines(stack: WeChatStack):
    binjiang, plain = "oE2eQrBinjiang01", "oE2eNoQrCode001"
    assert "欢迎来到滨江花园" in await follow(stack, binjiang, "binjiang")
    assert "欢迎关注" in await follow(stack, plain, "")
    assert (project_of(stack, binjiang), project_of(stack, plain)) == ("binjiang", "default")

    fee = {openid: await stack.say(openid, "物业费多少钱一平米") or "" for openid in (binjiang, plain)}
    assert "3.50" in fee[binjiang] and "2.30" not in fee[binjiang]
    assert "2.30" in fee[plain] and "3.50" not in fee[plain]

    for openid in (binjiang, plain):
        assert "哪里坏了" in (await stack.say(openid, "我要报修") or "")
        assert "房号" in (await stack.say(openid, "卫生间的灯不亮了") or "")
        assert "什么时候" in (await stack.say(openid, "6栋1单元1203") or "")
    confirmations = {openid: await stack.say(openid, "明天上午") or "" for openid in (binjiang, plain)}
    assert "12 小时内修好" in confirmations[binjiang] and "24 小时内修好" in confirmations[plain]
    [theirs], [ours] = stack.tickets_of(binjiang), stack.tickets_of(plain)
    assert (theirs.project, ours.project) == ("binjiang", "default")
    assert theirs.number != ours.number and theirs.number[:10] == ours.number[:10]  # one company-wide numbering


async def test_a_qr_code_for_no_project_is_refused_and_changes_nothing(stack: WeChatStack):
    openid = "oE2eQrUnknown01"
    reply = await follow(stack, openid, "atlantis")
    assert "欢迎关注" in reply and "atlantis" not in reply
    assert project_of(stack, openid) == "default"
    push = await stack.wechat.push(stack.http, event_xml(openid, "SCAN", "atlantis"))
    assert push.status == 200 and not push.reply
    assert project_of(stack, openid) == "default"
    # Their own project's code later does what it says.
    push = await stack.wechat.push(stack.http, event_xml(openid, "SCAN", "binjiang"))
    assert "滨江花园" in (push.reply or "") and project_of(stack, openid) == "binjiang"
