"""Reading survey answers, and what an answer does to its case."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.cases import surveys
from bot.cases.residents import bind_resident, import_roster
from bot.cases.surveys import Verdict, parse_answer
from bot.cases.tickets import open_repair_ticket, resolve_ticket
from bot.core.kinds import TicketStatus
from bot.db import queue
from bot.db.models import Job, StaffAlert, Survey, SurveyScore, Ticket

CALLBACK = [key for key, _label in surveys.CALLBACK_DIMENSIONS]
NOON = datetime(2026, 11, 26, 4, 0)


@pytest.mark.parametrize("text,scores,overall,verdict,comment", [
    ("5 5 4", {"response": 5, "attitude": 5, "quality": 4}, None, Verdict.SATISFIED, ""),
    ("5，4，5", {"response": 5, "attitude": 4, "quality": 5}, None, Verdict.SATISFIED, ""),
    ("五五四", {"response": 5, "attitude": 5, "quality": 4}, None, Verdict.SATISFIED, ""),
    ("响应速度4分，态度5分，质量3分", {"response": 4, "attitude": 5, "quality": 3}, None, Verdict.SATISFIED, ""),
    ("质量2分 态度5分", {"quality": 2, "attitude": 5}, None, Verdict.DISSATISFIED, ""),
    ("2分，没修好", {}, 2, Verdict.DISSATISFIED, "没修好"),
    ("4分 但是还在漏", {}, 4, Verdict.DISSATISFIED, "但是还在漏"),
    ("打5分，师傅很专业", {}, 5, Verdict.SATISFIED, "师傅很专业"),
    ("３", {}, 3, Verdict.NEUTRAL, ""),
    ("很满意", {}, None, Verdict.SATISFIED, "很满意"),
    ("不满意", {}, None, Verdict.DISSATISFIED, "不满意"),
    ("還沒修好", {}, None, Verdict.DISSATISFIED, "还没修好"),  # Traditional input
    ("十分满意", {}, None, Verdict.SATISFIED, "十分满意"),  # 十分 is "very", not a score
    ("一般吧", {}, None, Verdict.NEUTRAL, "一般吧"),
    ("502", {}, None, Verdict.UNCLEAR, "502"),  # a room number is not a score
    ("啥意思", {}, None, Verdict.UNCLEAR, "啥意思"),
])
def test_reading_answers(text, scores, overall, verdict, comment):
    answer = parse_answer(text, CALLBACK)
    assert (answer.scores, answer.overall, answer.verdict, answer.comment) == (scores, overall, verdict, comment)


def test_the_dissatisfied_threshold_is_configurable():
    assert parse_answer("3分", CALLBACK, dissatisfied_max=3).verdict is Verdict.DISSATISFIED
    assert parse_answer("3分", CALLBACK, dissatisfied_max=2).verdict is Verdict.NEUTRAL


def resolved_repair(store, rules, openid: str) -> tuple[int, int]:
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid=openid, description="卫生间下水道堵了", room="3栋2单元501",
                                    visit_time="明天上午", channel="wechat", now=NOON)
        resolve_ticket(s, rules, ticket, actor="staff:wang", channel="console", note="疏通了下水道",
                       now=NOON + timedelta(hours=3))
        survey = surveys.callback_survey_for(s, ticket, ticket.resolved_at.isoformat(), NOON + timedelta(hours=5))
        survey.status, survey.sent_at = "sent", NOON + timedelta(hours=5)
        return ticket.id, survey.id


def test_resolving_schedules_the_callback_two_hours_later_and_a_deadline_check(store, rules):
    ticket_id, _ = resolved_repair(store, rules, "oResolve1")
    with store.transaction() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket.callback_due_at == NOON + timedelta(hours=27)
        jobs = {j.kind: j.due_at for j in s.execute(select(Job).where(Job.ticket_id == ticket_id)).scalars()
                if j.kind != queue.SLA_CHECK or j.payload.get("deadline") == "callback"}
        assert jobs == {queue.SATISFACTION_CALLBACK: NOON + timedelta(hours=5),
                        queue.SLA_CHECK: NOON + timedelta(hours=27)}


def test_satisfied_answer_closes_the_case_and_keeps_each_score(store, rules):
    ticket_id, survey_id = resolved_repair(store, rules, "oHappy1")
    with store.transaction() as s:
        survey = s.get(Survey, survey_id)
        outcome = surveys.record_answer(s, rules, survey, parse_answer("5 4 5", CALLBACK), text="5 4 5",
                                        channel="wechat", now=NOON + timedelta(hours=6))
    assert outcome is surveys.Outcome.CLOSED
    with store.transaction() as s:
        assert s.get(Ticket, ticket_id).status == "closed"
        rows = s.execute(select(SurveyScore).where(SurveyScore.survey_id == survey_id)).scalars()
        scores = {r.dimension: r.score for r in rows}
        assert scores == {"response": 5, "attitude": 4, "quality": 5}
        assert s.get(Survey, survey_id).verdict == "satisfied"


def test_low_score_reopens_alerts_staff_and_sets_a_fresh_deadline(store, rules):
    ticket_id, survey_id = resolved_repair(store, rules, "oUnhappy1")
    answered = NOON + timedelta(hours=6)
    with store.transaction() as s:
        outcome = surveys.record_answer(s, rules, s.get(Survey, survey_id), parse_answer("2分，没修好", CALLBACK),
                                        text="2分，没修好", channel="wechat", now=answered)
    assert outcome is surveys.Outcome.REOPENED
    with store.transaction() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket.status == TicketStatus.REOPENED.value
        assert ticket.due_at == answered + timedelta(hours=rules.sla.general_repair_hours)
        [alert] = s.execute(select(StaffAlert).where(StaffAlert.ticket_id == ticket_id)).scalars().all()
        assert alert.reason == "dissatisfied" and "没修好" in alert.detail
        survey = s.get(Survey, survey_id)
        assert (survey.overall_score, survey.verdict, survey.comment) == (2, "dissatisfied", "没修好")
        # A second answer to the same survey changes nothing.
        assert surveys.record_answer(s, rules, survey, parse_answer("5", CALLBACK), text="5", channel="wechat",
                                     now=answered) is surveys.Outcome.RECORDED
        assert s.get(Ticket, ticket_id).status == TicketStatus.REOPENED.value


def test_unanswered_survey_closes_as_no_answer(store, rules):
    ticket_id, survey_id = resolved_repair(store, rules, "oSilent1")
    with store.transaction() as s:
        assert surveys.close_unanswered(s, rules, s.get(Survey, survey_id), NOON + timedelta(days=2))
    with store.transaction() as s:
        assert s.get(Survey, survey_id).status == "no_answer"
        ticket = s.get(Ticket, ticket_id)
        assert ticket.status == "closed" and ticket.events[-1].result == "callback: no answer"


def test_annual_campaign_is_rate_limited_resumable_and_summarised(store, rules, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone\n" + "".join(f"1栋1单元{100 + n},住户{n},1380000{n:04d}\n" for n in range(5)),
                      encoding="utf-8")
    with store.transaction() as s:
        import_roster(s, roster, projects={rules.code}, default_project=rules.code)
        for n in range(4):  # the fifth household never bound WeChat
            bind_resident(s, rules, openid=f"oAnnual{n}", room=f"1栋1单元{100 + n}", phone=f"1380000{n:04d}",
                          channel="wechat")
        from bot.db.models import Resident
        for resident in s.execute(select(Resident).where(Resident.openid.is_not(None))).scalars():
            resident.subscribed = True
        assert surveys.start_campaign(s, rules, "2026", per_minute=2, now=NOON) == (4, 0)
    with store.transaction() as s:
        # Interrupted and started again: nothing is scheduled twice.
        assert surveys.start_campaign(s, rules, "2026", per_minute=2, now=NOON) == (0, 4)
        dues = sorted(j.due_at for j in s.execute(select(Job).where(Job.kind == queue.ANNUAL_SURVEY)).scalars())
        assert dues == [NOON + timedelta(seconds=30 * n) for n in range(4)]
        from bot.db.models import Resident
        for n, reply in enumerate(["5 5 4 4", "2 3 3 3", "满意"]):
            resident = s.execute(select(Resident).where(Resident.openid == f"oAnnual{n}")).scalar_one()
            survey = surveys.annual_survey_for(s, rules, resident, "2026", NOON)
            survey.status, survey.sent_at = "sent", NOON
            surveys.record_answer(s, rules, survey, parse_answer(reply, survey.dimensions), text=reply,
                                  channel="wechat", now=NOON)
    with store.transaction() as s:
        summary = surveys.campaign_summary(s, "2026")
    assert (summary.surveys, summary.sent, summary.answered) == (3, 3, 3)
    assert summary.verdicts == {"satisfied": 2, "dissatisfied": 1}
    assert summary.averages["quality"] == 3.5 and summary.averages["facilities"] == 3.5
    assert round(summary.satisfaction_rate, 2) == 0.67


def test_campaign_commands_schedule_once_and_summarise(tmp_path, sqlite_url, rules):
    import os
    import subprocess
    import sys

    from bot.app import migrate
    from bot.db.models import Resident
    from bot.db.store import TicketStore
    from bot.settings import PROJECT_ROOT
    migrate.upgrade(sqlite_url)
    store = TicketStore(sqlite_url)
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone\n2栋1单元101,甲,13900000001\n2栋1单元102,乙,13900000002\n", encoding="utf-8")
    with store.transaction() as s:
        import_roster(s, roster, projects={rules.code}, default_project=rules.code)
        for n in (1, 2):
            bind_resident(s, rules, openid=f"oCli{n}", room=f"2栋1单元10{n}", phone=f"1390000000{n}", channel="wechat")
        for resident in s.execute(select(Resident)).scalars():
            resident.subscribed = True
    store.dispose()
    env = dict(os.environ, DATABASE_URL=sqlite_url)

    def bot(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "2 household(s) scheduled at 10/min, 0 already" in bot("survey", "campaign", "--name", "2026",
                                                                  "--per-minute", "10")
    assert "0 household(s) scheduled at 10/min, 2 already" in bot("survey", "campaign", "--name", "2026",
                                                                  "--per-minute", "10")
    assert "campaign 2026: 0 surveys, 0 sent, 0 answered" in bot("survey", "summary", "--name", "2026")


def test_a_handled_complaint_gets_its_callback_too(store, rules):
    from bot.cases.tickets import open_complaint_ticket
    with store.transaction() as s:
        ticket = open_complaint_ticket(s, rules, openid="oComplaintCb", description="楼道灯坏了一周没人管",
                                       demand="尽快修好", room="3栋", channel="wechat", now=NOON)
        resolve_ticket(s, rules, ticket, actor="staff:wang", channel="console", note="已更换灯具并回复业主",
                       now=NOON + timedelta(hours=8))  # 20:00 local
        callback = s.execute(select(Job).where(Job.ticket_id == ticket.id,
                                               Job.kind == queue.SATISFACTION_CALLBACK)).scalar_one()
        # Done at 20:00 local +2 h = 22:00, inside quiet hours: the next morning at 08:00 instead.
        assert callback.due_at == datetime(2026, 11, 27, 0, 0)
