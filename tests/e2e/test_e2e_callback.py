"""Callback surveys end to end: a repair over WeChat, staff mark it done through the staff
API, the real worker process opens the survey in the resident's real Rasa conversation and
delivers it through the fake WeChat API, and the resident's answer is read as the answer."""
from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta
from typing import AsyncIterator

import pytest
from sqlalchemy import select

from bot.core.clock import to_local
from bot.db import queue
from bot.db.models import Job, StaffAlert, Survey, SurveyScore, Ticket
from bot.settings import PROJECT_ROOT
from tests.e2e.test_e2e_wechat import WeChatStack, _stack
from tests.fixtures import TEST_PROJECTS_DIR
from tests.live import staff_member
from tests.wechat_fakes import APP_ID, APP_SECRET

pytestmark = pytest.mark.e2e

STAFF_TOKEN = "callback-e2e-staff-token"
STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}


@pytest.fixture
async def stack(live_stack, two_projects) -> AsyncIterator[WeChatStack]:
    staff_member(live_stack.store, "E2E-WANG", "王师傅", roles=("agent",), projects=("default",), token=STAFF_TOKEN)
    async for s in _stack(live_stack, 4.0, two_projects):
        yield s


async def run_worker(stack: WeChatStack, now: datetime, rules) -> str:
    """`python -m bot worker --once --now …` against the live stack's store, Rasa and the fake WeChat API."""
    env = dict(os.environ, DATABASE_URL=stack.live.store.url, WECHAT_API_BASE_URL=stack.api_url,
               WECHAT_APP_ID=APP_ID, WECHAT_APP_SECRET=APP_SECRET, RASA_URL=stack.live.rasa_url,
               RASA_AUTH_TOKEN=stack.live.rasa_token, ACTION_SERVER_URL=stack.live.actions_url, PYTHONUNBUFFERED="1",
               PROJECTS_DIR=str(TEST_PROJECTS_DIR))
    local = to_local(now, rules.timezone).replace(tzinfo=None).isoformat(timespec="seconds")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "worker", "--once", "--now", local,
                                                cwd=PROJECT_ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    output = (await proc.communicate())[0].decode()
    assert proc.returncode == 0, output
    return output


def due_of(stack: WeChatStack, ticket: Ticket, kind: str) -> datetime:
    """When the worker will run this job (callbacks avoid the night, so it depends on the hour)."""
    with stack.live.store.transaction() as s:
        return s.execute(select(Job.due_at).where(Job.ticket_id == ticket.id, Job.kind == kind)).scalar_one()


async def repaired(stack: WeChatStack, openid: str) -> Ticket:
    """A repair reported over WeChat and marked done by staff through the staff API."""
    assert "哪里坏了" in await stack.say(openid, "我要报修")
    assert "房号" in await stack.say(openid, "卫生间的下水道堵住了")
    assert "什么时候" in await stack.say(openid, "3栋2单元501")
    assert "工单号" in await stack.say(openid, "明天上午")
    [ticket] = stack.tickets_of(openid)
    url = f"{stack.staff_url}/api/tickets/{ticket.number}/resolve"
    async with stack.http.post(url, json={"note": "已疏通下水道", "staff": "wang"}, headers=STAFF) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["status"] == "resolved"
    [ticket] = stack.tickets_of(openid)
    return ticket


async def test_repair_done_callback_two_points_reopens_the_case(stack: WeChatStack, rules):
    openid = "oWxCallback0001"
    ticket = await repaired(stack, openid)
    assert ticket.callback_due_at == ticket.resolved_at + timedelta(hours=24)
    pushed_before = len(stack.api.texts_to(openid))

    # Two hours after completion (or the next morning, if that falls in the night) the callback goes out.
    callback_at = due_of(stack, ticket, queue.SATISFACTION_CALLBACK)
    assert ticket.resolved_at + timedelta(hours=2) <= callback_at <= ticket.callback_due_at
    # Just before: nothing for this resident (the store is shared with other tests' jobs).
    await run_worker(stack, callback_at - timedelta(minutes=5), rules)
    assert len(stack.api.texts_to(openid)) == pushed_before
    with stack.live.store.transaction() as s:
        assert s.execute(select(Job.status).where(Job.ticket_id == ticket.id,
                                                  Job.kind == queue.SATISFACTION_CALLBACK)).scalar_one() == "pending"
    await run_worker(stack, callback_at + timedelta(minutes=1), rules)
    survey_messages = stack.api.texts_to(openid)[pushed_before:]
    assert len(survey_messages) == 1
    question = survey_messages[0]
    assert ticket.number in question and "响应速度、服务态度、处理质量" in question and "1–5" in question

    # The resident's next message is read as the answer, though the model would call it a complaint.
    answer = await stack.say(openid, "2分，没修好")
    assert "重新打开" in answer and ticket.number in answer
    print(f"\n[worker → 客服消息] {question}\n[居民] 2分，没修好\n[助手] {answer}")
    [ticket] = stack.tickets_of(openid)
    assert ticket.status == "reopened"
    with stack.live.store.transaction() as s:
        survey = s.execute(select(Survey).where(Survey.ticket_id == ticket.id)).scalar_one()
        assert (survey.status, survey.overall_score, survey.verdict, survey.comment) == \
            ("answered", 2, "dissatisfied", "没修好")
        alerts = s.execute(select(StaffAlert).where(StaffAlert.ticket_id == ticket.id)).scalars().all()
        assert [a.reason for a in alerts] == ["dissatisfied"]
    actions = [e.action for e in ticket.events]
    assert actions[-4:] == ["notified", "survey_answer", "status", "escalated"]

    # A day later the reminder and the callback deadline check find the survey answered: no message.
    await run_worker(stack, callback_at + timedelta(hours=26), rules)
    assert len(stack.api.texts_to(openid)) == pushed_before + 1


async def test_scores_then_a_comment_close_the_case(stack: WeChatStack, rules):
    openid = "oWxCallback0002"
    ticket = await repaired(stack, openid)
    await run_worker(stack, due_of(stack, ticket, queue.SATISFACTION_CALLBACK) + timedelta(minutes=1), rules)
    scored = await stack.say(openid, "5 5 4")
    assert "谢谢您的评分" in scored
    closed = await stack.say(openid, "师傅很专业，谢谢")
    assert "已办结" in closed
    print(f"\n[居民] 5 5 4\n[助手] {scored}\n[居民] 师傅很专业，谢谢\n[助手] {closed}")
    [ticket] = stack.tickets_of(openid)
    assert ticket.status == "closed"
    with stack.live.store.transaction() as s:
        survey = s.execute(select(Survey).where(Survey.ticket_id == ticket.id)).scalar_one()
        scores = {r.dimension: r.score for r in
                  s.execute(select(SurveyScore).where(SurveyScore.survey_id == survey.id)).scalars()}
        assert scores == {"response": 5, "attitude": 5, "quality": 4}
        assert survey.comment == "师傅很专业，谢谢" and survey.verdict == "satisfied"
    # After the survey, the conversation is the assistant again.
    assert "哪里坏了" in await stack.say(openid, "我要报修")


async def test_unanswered_survey_is_reminded_once_then_closed(stack: WeChatStack, rules):
    openid = "oWxCallback0003"
    ticket = await repaired(stack, openid)
    sent_at = due_of(stack, ticket, queue.SATISFACTION_CALLBACK) + timedelta(minutes=1)
    await run_worker(stack, sent_at, rules)
    before = len(stack.api.texts_to(openid))
    remind_at, close_at = due_of(stack, ticket, queue.SURVEY_REMINDER), due_of(stack, ticket, queue.SURVEY_CLOSE)
    assert abs(close_at - (sent_at + timedelta(hours=48))) < timedelta(seconds=1)  # --now has whole seconds
    await run_worker(stack, remind_at + timedelta(minutes=1), rules)
    reminders = stack.api.texts_to(openid)[before:]
    assert len(reminders) == 1 and "还在等您的评价" in reminders[0]
    await run_worker(stack, remind_at + timedelta(hours=2), rules)
    assert len(stack.api.texts_to(openid)) == before + 1  # one reminder only
    await run_worker(stack, close_at + timedelta(minutes=1), rules)
    [ticket] = stack.tickets_of(openid)
    assert ticket.status == "closed" and ticket.events[-1].result == "callback: no answer"
    # The survey is over in the conversation too: a new message is a new request.
    assert "哪里坏了" in await stack.say(openid, "我要报修")
