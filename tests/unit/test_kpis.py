"""Managers' figures (bot.cases.kpis) and the quarterly complaint analysis
(bot.cases.complaint_analysis), on a dataset built by hand: two projects, two quarters, every
ticket's times set directly, so each expected value below is plain arithmetic over the rows."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.cases import kpis
from bot.cases.complaint_analysis import COMPANY, analyse
from bot.cases.kpis import Period, annual_dimensions, months_before, previous, quarter_of, staff_workload
from bot.core.company import Company
from bot.db import queue
from bot.db.models import Job, JobStatus, Resident, Survey, SurveyScore, Ticket, TicketEvent
from bot.worker.handlers import Context, schedule_daily
from bot.worker.loop import Worker

TZ = ZoneInfo("Asia/Shanghai")
A, B = "default", "binjiang"  # 示例小区, 滨江花园 (tests/projects)


def L(month: int, day: int, hour: int = 10, minute: int = 0, year: int = 2026) -> datetime:
    """A local (Shanghai) wall-clock time as the naive UTC the store keeps."""
    return datetime(year, month, day, hour, minute, tzinfo=TZ).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


Q4 = quarter_of(date(2026, 11, 15), TZ)
Q3 = previous(Q4)
NOW = L(1, 1, 4, year=2027)  # the quarter-end job's moment: 04:00 on the first day of the next quarter


class Data:
    """Rows written as they are: no use case runs, nothing is derived."""

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        self.s = session
        self.count = 0

    def resident(self, project: str, *, created: datetime, updated: datetime, bound: datetime | None = None,
                 room: str | None = None) -> Resident:
        self.count += 1
        resident = Resident(project=project, openid=f"o{self.count}", room=room, tags=[], created_at=created,
                            updated_at=updated, bound_at=bound, subscribed=True, customer_type="individual",
                            property_use="residential", occupancy="occupied")
        self.s.add(resident)
        self.s.flush()
        return resident

    def ticket(self, project: str, kind: str, resident: Resident | None, *, created: datetime, status: str = "closed",
               priority: str | None = None, due: datetime | None = None, final: datetime | None = None,
               resolved: datetime | None = None, closed: datetime | None = None, room: str | None = None,
               topic: str | None = None, description: str = "情况说明", demand: str | None = None,
               assignee: tuple[str, str] | None = None, claimed: datetime | None = None,
               parent: Ticket | None = None) -> Ticket:
        self.count += 1
        ticket = Ticket(number=f"T{self.count:05d}", project=project, kind=kind, status=status, priority=priority,
                        room=room, description=description, demand=demand, channel="wechat",
                        resident_id=resident.id if resident else None, topic=topic, created_at=created,
                        updated_at=created, due_at=due, final_due_at=final, resolved_at=resolved, closed_at=closed,
                        assignee_id=assignee[0] if assignee else None, assignee=assignee[1] if assignee else None,
                        claimed_at=claimed, parent_id=parent.id if parent else None)
        self.s.add(ticket)
        self.s.flush()
        return ticket

    def event(self, ticket: Ticket, action: str, at: datetime, *, to_status: str | None = None,
              content: str = "") -> None:
        self.s.add(TicketEvent(ticket_id=ticket.id, at=at, actor="system", channel="system", action=action,
                               to_status=to_status, content=content, result=""))

    def survey(self, ticket: Ticket | None, resident: Resident, *, sent: datetime | None,
               answered: datetime | None = None, verdict: str | None = None, overall: int | None = None,
               scores: dict[str, int] | None = None, status: str | None = None, kind: str = "callback",
               campaign: str | None = None) -> Survey:
        self.count += 1
        survey = Survey(project=resident.project, kind=kind, ticket_id=ticket.id if ticket else None,
                        resident_id=resident.id, campaign=campaign or f"c{self.count}",
                        dimensions=list((scores or {}).keys()),
                        status=status or ("answered" if answered else "sent"), created_at=sent or answered,
                        sent_at=sent, answered_at=answered, verdict=verdict, overall_score=overall)
        self.s.add(survey)
        self.s.flush()
        for dimension, score in (scores or {}).items():
            self.s.add(SurveyScore(survey_id=survey.id, dimension=dimension, score=score))
        return survey


WANG, LI, ZHANG = ("api:wang", "王芳"), ("api:li", "李雷"), ("api:zhang", "张三")


def build(store) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The dataset; returns a few residents' ids by name."""
    with store.transaction() as s:
        d = Data(s)
        # --- households -------------------------------------------------------------------
        ra1 = d.resident(A, created=L(1, 1, year=2025), bound=L(2, 1, year=2025), updated=L(12, 1))
        ra2 = d.resident(A, created=L(1, 1, year=2025), bound=L(2, 1, year=2025), updated=L(6, 1))
        ra3 = d.resident(A, created=L(5, 1, year=2024), bound=L(6, 1, year=2024), updated=L(5, 1, year=2025))
        ra4 = d.resident(A, created=L(1, 1, year=2025), updated=L(11, 1))
        ra5 = d.resident(A, created=L(5, 1, year=2024), updated=L(5, 1, year=2024))
        ra6 = d.resident(A, created=L(1, 1, year=2025), bound=L(11, 1), updated=L(3, 1, year=2025))
        d.resident(A, created=L(1, 1, 2, year=2027), bound=L(1, 1, 2, year=2027), updated=L(1, 1, 2, year=2027))
        rb1 = d.resident(B, created=L(1, 1, year=2025), bound=L(2, 1, year=2025), updated=L(10, 15))
        rb2 = d.resident(B, created=L(1, 1, year=2025), updated=L(9, 1))

        # --- 示例小区, Q4: complaints ---------------------------------------------------------
        c1 = d.ticket(A, "complaint", ra1, created=L(10, 5), priority="general", due=L(10, 7), resolved=L(10, 6),
                      room="3栋2单元501", topic="噪音", assignee=WANG, claimed=L(10, 5, 11))
        d.survey(c1, ra1, sent=L(10, 6, 12), answered=L(10, 6, 13), verdict="satisfied", overall=5)
        c2 = d.ticket(A, "complaint", ra1, created=L(10, 8), priority="general", due=L(10, 10), resolved=L(10, 9),
                      room="3栋2单元601", description="楼上装修电钻声太吵", demand="晚上别施工")
        d.survey(c2, ra1, sent=L(10, 9, 12), answered=L(10, 9, 13), verdict="satisfied",
                 scores={"response": 5, "attitude": 4, "quality": 5})
        c3 = d.ticket(A, "complaint", ra2, created=L(10, 12), priority="general", due=L(10, 14), resolved=L(10, 13),
                      room="5栋1单元302", topic="停车")
        d.survey(c3, ra2, sent=L(10, 13, 12), answered=L(10, 13, 13), verdict="neutral", overall=3)
        c4 = d.ticket(A, "complaint", ra2, created=L(10, 15), priority="general", due=L(10, 17), resolved=L(10, 16),
                      description="小区门口有人乱停车")
        d.survey(c4, ra2, sent=L(10, 17, 12), answered=L(10, 17, 13), verdict="unclear")  # 26 h after
        g1 = d.ticket(A, "complaint", None, created=L(11, 3), priority="major", due=L(11, 3, 14),
                      resolved=L(11, 3, 12), room="3栋", topic="卫生", description="群诉：3栋的卫生问题")
        d.ticket(A, "complaint", ra3, created=L(10, 20), priority="general", due=L(10, 22), resolved=L(10, 21),
                 room="3-1-101", topic="卫生", parent=g1)
        # Closed as outside our responsibility: handled (closed_at), no completion, no callback.
        d.ticket(A, "complaint", ra4, created=L(11, 2), priority="general", due=L(11, 4), closed=L(11, 3),
                 room="3栋101", topic="卫生", parent=g1)
        c7 = d.ticket(A, "complaint", ra5, created=L(11, 5), priority="general", due=L(11, 7), resolved=L(11, 6),
                      room="七号楼1202", topic="卫生", parent=g1)
        d.survey(c7, ra5, sent=L(11, 6, 12), status="no_answer")
        # Reopened: the fresh deadline (11-20) lies past the hard limit (11-19 10:00), which wins.
        c8 = d.ticket(A, "complaint", ra6, created=L(11, 10), priority="urgent", due=L(11, 20), final=L(11, 19),
                      resolved=L(11, 19, 15), room="5栋2单元1101", description="物业费收得太贵了",
                      demand="退还多收的钱", assignee=WANG, claimed=L(11, 10, 10, 30))
        d.event(c8, "tier_reason", L(11, 10), content="多次反映未解决（“说了多少次”）")
        d.event(c8, "escalated", L(11, 10))
        d.survey(c8, ra6, sent=L(11, 11, 12), answered=L(11, 11, 13), verdict="dissatisfied", overall=2)
        d.event(c8, "status", L(11, 11, 13), to_status="reopened")
        c9 = d.ticket(A, "complaint", ra1, created=L(11, 20), priority="major", due=L(11, 24), resolved=L(11, 25),
                      room="A座1803", description="客服态度很差")
        d.event(c9, "tier_reason", L(11, 20), content="扬言向外投诉或曝光（“12345”）；涉及老人小孩等（“老人”）")
        d.ticket(A, "complaint", ra3, created=L(12, 30, 0), status="accepted", priority="general",
                 due=L(1, 4, year=2027), room="3栋2单元501", topic="噪音")
        d.ticket(A, "complaint", ra4, created=L(10, 25), status="cancelled", priority="general", due=L(10, 27),
                 topic="噪音")

        # --- 示例小区, Q4: repairs -------------------------------------------------------------
        e1 = d.ticket(A, "repair", ra1, created=L(10, 6, 9), priority="emergency", due=L(10, 6, 9, 10),
                      resolved=L(10, 6, 11), room="3栋2单元501", assignee=WANG, claimed=L(10, 6, 9, 3))
        d.event(e1, "escalated", L(10, 6, 9))
        d.event(e1, "claimed", L(10, 6, 9, 3))
        d.event(e1, "on_site", L(10, 6, 9, 5))
        d.survey(e1, ra1, sent=L(10, 6, 13), answered=L(10, 6, 13, 30), verdict="satisfied", overall=5)
        # Claimed at 09:06, handed to 李雷 at 10:00: the wait runs to the first claim.
        e2 = d.ticket(A, "repair", ra2, created=L(10, 9, 9), priority="emergency", due=L(10, 9, 9, 10),
                      resolved=L(10, 9, 12), assignee=LI, claimed=L(10, 9, 10))
        d.event(e2, "escalated", L(10, 9, 9))
        d.event(e2, "claimed", L(10, 9, 9, 6))
        d.event(e2, "status", L(10, 9, 9, 8), to_status="in_progress")
        d.survey(e2, ra2, sent=L(10, 9, 14), answered=L(10, 9, 14, 30), verdict="satisfied",
                 scores={"response": 5, "attitude": 4, "quality": 3})
        e3 = d.ticket(A, "repair", ra3, created=L(10, 16, 9), priority="emergency", due=L(10, 16, 9, 10),
                      resolved=L(10, 16, 12))
        d.event(e3, "escalated", L(10, 16, 9))
        d.event(e3, "on_site", L(10, 16, 9, 30))  # 20 minutes late
        d.survey(e3, ra3, sent=L(10, 16, 14), answered=L(10, 16, 14, 30), verdict="satisfied", overall=4)
        # Nobody came before the deadline; the callback made it reopen; finished again the next day.
        e4 = d.ticket(A, "repair", ra4, created=L(10, 23, 9), priority="emergency", due=L(10, 23, 12, 40),
                      resolved=L(10, 24, 10))
        d.survey(e4, ra4, sent=L(10, 23, 12), answered=L(10, 23, 12, 30), verdict="dissatisfied", overall=1)
        d.event(e4, "status", L(10, 23, 12, 30), to_status="reopened")
        d.ticket(A, "repair", ra5, created=L(10, 26, 9), status="cancelled", priority="emergency",
                 due=L(10, 26, 9, 10))
        r1 = d.ticket(A, "repair", ra5, created=L(11, 2), priority="normal", due=L(11, 3), resolved=L(11, 2, 12),
                      assignee=LI, claimed=L(11, 2, 10, 30))
        d.survey(r1, ra5, sent=L(11, 2, 14), answered=L(11, 2, 15), verdict="satisfied", overall=5)
        r2 = d.ticket(A, "repair", ra6, created=L(11, 4), priority="normal", due=L(11, 5), resolved=L(11, 4, 20))
        d.survey(r2, ra6, sent=L(11, 5, 9), answered=L(11, 5, 10), verdict="satisfied", overall=5)
        r3 = d.ticket(A, "repair", ra1, created=L(11, 6), priority="normal", due=L(11, 7), resolved=L(11, 7, 9))
        d.survey(r3, ra1, sent=L(11, 7, 11), answered=L(11, 7, 12), verdict="neutral", overall=3)
        r4 = d.ticket(A, "repair", ra2, created=L(11, 9), priority="normal", due=L(11, 10), resolved=L(11, 10, 16),
                      assignee=LI, claimed=L(11, 9, 11))  # 30 h
        d.survey(r4, ra2, sent=L(11, 10, 18), answered=L(11, 10, 19), verdict="satisfied", overall=4)
        d.ticket(A, "repair", ra3, created=L(11, 21, 0), status="in_progress", priority="normal", due=L(11, 22, 0))

        # --- 示例小区, Q3 -------------------------------------------------------------------------
        p1 = d.ticket(A, "complaint", ra1, created=L(7, 6), priority="general", due=L(7, 8), resolved=L(7, 7),
                      room="3栋2单元501", topic="噪音")
        d.survey(p1, ra1, sent=L(7, 7, 12), answered=L(7, 7, 13), verdict="satisfied", overall=5)
        p2 = d.ticket(A, "complaint", ra1, created=L(8, 3), priority="general", due=L(8, 5), resolved=L(8, 5, 9),
                      room="3栋2单元501", topic="噪音")
        d.survey(p2, ra1, sent=L(8, 4, 12), answered=L(8, 4, 13), verdict="dissatisfied", overall=2)
        d.event(p2, "status", L(8, 4, 13), to_status="reopened")
        d.ticket(A, "complaint", ra2, created=L(8, 17), priority="general", due=L(8, 19), resolved=L(8, 18),
                 room="5栋1单元302", topic="停车")
        p4 = d.ticket(A, "complaint", ra3, created=L(9, 7), priority="urgent", due=L(9, 9), resolved=L(9, 10),
                      room="7栋101", description="垃圾没人清理")
        d.event(p4, "tier_reason", L(9, 7), content="已取证（“拍了照片”）")
        # Received in Q3, its deadline in Q4 (met): Q3's volume, Q4's timeliness.
        d.ticket(A, "complaint", ra4, created=L(9, 29), priority="general", due=L(10, 2), resolved=L(9, 30),
                 description="电梯坏了三天")
        q1 = d.ticket(A, "repair", ra5, created=L(8, 10, 9), priority="emergency", due=L(8, 10, 9, 10),
                      resolved=L(8, 10, 11), assignee=WANG, claimed=L(8, 10, 9, 4))
        d.event(q1, "escalated", L(8, 10, 9))
        d.event(q1, "claimed", L(8, 10, 9, 4))
        d.event(q1, "on_site", L(8, 10, 9, 9))
        d.survey(q1, ra5, sent=L(8, 10, 13), answered=L(8, 10, 14), verdict="satisfied", overall=5)
        q2 = d.ticket(A, "repair", ra6, created=L(8, 12), priority="normal", due=L(8, 13), resolved=L(8, 12, 18))
        d.survey(q2, ra6, sent=L(8, 12, 20), answered=L(8, 12, 21), verdict="satisfied", overall=5)
        d.ticket(A, "repair", ra2, created=L(9, 21, 0), status="accepted", priority="normal", due=L(9, 22, 0))

        # --- 滨江花园 ------------------------------------------------------------------------------
        b1 = d.ticket(B, "complaint", rb1, created=L(10, 10), priority="general", due=L(10, 12), resolved=L(10, 11),
                      room="1栋101", topic="噪音")
        d.survey(b1, rb1, sent=L(10, 11, 12), answered=L(10, 11, 13), verdict="satisfied", overall=5)
        b2 = d.ticket(B, "complaint", rb1, created=L(10, 20), priority="general", due=L(10, 21), resolved=L(10, 22),
                      room="1栋102", topic="噪音")
        d.survey(b2, rb1, sent=L(10, 22, 12), answered=L(10, 22, 13), verdict="neutral", overall=3)
        d.ticket(B, "complaint", rb2, created=L(11, 15), priority="general", due=L(11, 17), resolved=L(11, 16),
                 room="2栋201", description="小区绿化没人修剪树")
        be1 = d.ticket(B, "repair", rb1, created=L(10, 5, 9), priority="emergency", due=L(10, 5, 9, 5),
                       resolved=L(10, 6, 10), assignee=ZHANG, claimed=L(10, 5, 9, 10))
        d.event(be1, "escalated", L(10, 5, 9))
        d.event(be1, "on_site", L(10, 5, 9, 4))
        d.event(be1, "claimed", L(10, 5, 9, 10))
        d.survey(be1, rb1, sent=L(10, 5, 12), answered=L(10, 5, 12, 30), verdict="dissatisfied", overall=2)
        d.event(be1, "status", L(10, 5, 12, 30), to_status="reopened")
        d.survey(be1, rb1, sent=L(10, 6, 11), answered=L(10, 6, 11, 30), verdict="satisfied", overall=5)
        d.ticket(B, "repair", rb2, created=L(10, 7), priority="normal", due=L(10, 7, 22), resolved=L(10, 8, 12))
        bg2 = d.ticket(B, "repair", rb2, created=L(12, 1), priority="normal", due=L(12, 1, 22), resolved=L(12, 1, 11))
        d.survey(bg2, rb2, sent=L(12, 2, 12), answered=L(12, 2, 13), verdict="satisfied", overall=5)  # 25 h
        d.ticket(B, "enquiry", rb2, created=L(12, 31, 12), status="new")
        d.ticket(B, "complaint", rb2, created=L(8, 1), priority="general", due=L(8, 3), resolved=L(8, 5),
                 room="1栋101", description="停车位被占了")

        # --- the annual survey (not a callback: no part of 客户满意度) ---------------------------
        d.survey(None, ra1, kind="annual", campaign="2026", sent=L(11, 20), answered=L(11, 20, 11), verdict="satisfied",
                 scores={"quality": 5, "attitude": 4, "efficiency": 3, "facilities": 4})
        d.survey(None, ra2, kind="annual", campaign="2026", sent=L(11, 20), answered=L(11, 20, 12), verdict="neutral",
                 scores={"quality": 4, "attitude": 4, "efficiency": 5})
        d.survey(None, rb1, kind="annual", campaign="2026", sent=L(11, 20), answered=L(11, 20, 12),
                 verdict="satisfied", scores={"quality": 4})
        return {"ra1": ra1.id, "ra2": ra2.id, "ra3": ra3.id, "rb1": rb1.id}


# (numerator, denominator) of every figure, by scope and quarter.
EXPECTED = {
    (A, "Q4"): {
        "complaint_timeliness": (8, 10),  # deadlines in Q4: 9 received in Q4 + one from Q3; late: c8 (hard limit), c9
        "complaint_handling": (9, 10),  # the complaint of 12-30 is still open
        "complaint_satisfaction": (3, 4),  # satisfied, satisfied, neutral / + dissatisfied; "unclear" left out
        "satisfaction": (10, 12),  # complaints 3 of 4, repairs 7 of 8
        "callback_rate": (12, 16),  # 8 complaints + 8 repairs finished in Q4
        "callback_24h": (11, 16),  # c4's callback went out after 26 h
        "emergency_onsite": (2, 4),  # on site 09:05, in progress 09:08 / late 09:30, nobody
        "repair_24h": (3, 5),  # 2 h, 10 h, 23 h / 30 h, still open
        "reopen_rate": (2, 16),
        "first_time_fix": (14, 16),
        "claim_wait": (3 + 6 + 30, 3),
        "backlog": (3, 1),
        "backlog_age": (2 + 41 + 102, 3),  # opened 12-30, 11-21, 09-21 (00:00), read at 01-01 00:00
        "info_accuracy": (4, 6),  # a seventh household came after the quarter
        "info_update": (3, 6),
    },
    (A, "Q3"): {
        "complaint_timeliness": (3, 4), "complaint_handling": (5, 5), "complaint_satisfaction": (1, 2),
        "satisfaction": (3, 4), "callback_rate": (3, 7), "callback_24h": (3, 7), "emergency_onsite": (1, 1),
        "repair_24h": (1, 2), "reopen_rate": (1, 7), "first_time_fix": (6, 7), "claim_wait": (4, 1),
        "backlog": (1, 1), "backlog_age": (10, 1), "info_accuracy": (3, 6), "info_update": (3, 6),
    },
    (B, "Q4"): {
        "complaint_timeliness": (2, 3), "complaint_handling": (3, 3), "complaint_satisfaction": (2, 2),
        "satisfaction": (4, 5), "callback_rate": (4, 6), "callback_24h": (3, 6), "emergency_onsite": (1, 1),
        "repair_24h": (1, 2), "reopen_rate": (1, 6), "first_time_fix": (5, 6), "claim_wait": (10, 1),
        "backlog": (1, 1), "backlog_age": (0.5, 1), "info_accuracy": (1, 2), "info_update": (2, 2),
    },
    (B, "Q3"): {
        "complaint_timeliness": (0, 1), "complaint_handling": (1, 1), "complaint_satisfaction": (0, 0),
        "satisfaction": (0, 0), "callback_rate": (0, 1), "callback_24h": (0, 1), "emergency_onsite": (0, 0),
        "repair_24h": (0, 0), "reopen_rate": (0, 1), "first_time_fix": (1, 1), "claim_wait": (0, 0),
        "backlog": (0, 1), "backlog_age": (0, 0), "info_accuracy": (1, 2), "info_update": (2, 2),
    },
}
for _quarter in ("Q4", "Q3"):
    EXPECTED[(COMPANY, _quarter)] = {
        key: (EXPECTED[(A, _quarter)][key][0] + EXPECTED[(B, _quarter)][key][0],
              1 if key == "backlog" else EXPECTED[(A, _quarter)][key][1] + EXPECTED[(B, _quarter)][key][1])
        for key in EXPECTED[(A, _quarter)]}


def assert_figures(figures: list[kpis.Kpi], expected: dict[str, tuple[float, float]]) -> None:
    assert [k.key for k in figures] == list(kpis.KPI_KEYS)
    for kpi in figures:
        numerator, denominator = expected[kpi.key]
        assert (kpi.key, kpi.numerator, kpi.denominator) == (kpi.key, pytest.approx(numerator),
                                                               pytest.approx(denominator))
        if kpi.unit == "count":
            assert kpi.value == numerator
        elif denominator:
            assert kpi.value == pytest.approx(numerator / denominator), kpi.key
        else:
            assert kpi.value is None, kpi.key


def test_the_company_totals_add_up_the_two_projects():
    # The arithmetic the company's expectations rest on, spelled out for the rates the brief names.
    assert EXPECTED[(COMPANY, "Q4")]["complaint_timeliness"] == (10, 13)
    assert EXPECTED[(COMPANY, "Q4")]["callback_rate"] == (16, 22)
    assert EXPECTED[(COMPANY, "Q4")]["claim_wait"] == (49, 4)
    assert EXPECTED[(COMPANY, "Q3")]["satisfaction"] == (3, 4)


@pytest.mark.parametrize("scope", [A, B, COMPANY])
def test_every_figure_of_each_scope_and_quarter(store, scope):
    build(store)
    projects = [A, B] if scope == COMPANY else [scope]
    with store.transaction() as s:
        assert_figures(kpis.kpis(s, projects, Q4, NOW), EXPECTED[(scope, "Q4")])
        assert_figures(kpis.kpis(s, projects, Q3, NOW), EXPECTED[(scope, "Q3")])


def test_the_per_project_figures_are_the_same_queries_grouped(store):
    build(store)
    with store.transaction() as s:
        by_project = kpis.kpis_by_project(s, [A, B], Q4, NOW)
        together = kpis.kpis(s, [A, B], Q4, NOW)
        assert kpis.kpis(s, [], Q4, NOW)[0].denominator == 0
    assert set(by_project) == {A, B}
    assert_figures(by_project[A], EXPECTED[(A, "Q4")])
    assert_figures(by_project[B], EXPECTED[(B, "Q4")])
    assert kpis.merge([by_project[A], by_project[B]]) == together
    assert kpis.by_key(together)["complaint_timeliness"].value == pytest.approx(10 / 13)  # 0.769


def test_a_running_quarter_leaves_out_what_is_not_due_yet(store):
    now = L(11, 10, 10)
    with store.transaction() as s:
        d = Data(s)
        r = d.resident(A, created=L(1, 1, year=2025), updated=L(1, 1, year=2025))
        d.ticket(A, "complaint", r, created=L(11, 9), status="accepted", priority="general", due=L(11, 11))  # ahead
        d.ticket(A, "complaint", r, created=L(11, 8), status="resolved", priority="general", due=L(11, 12),
                 resolved=L(11, 9, 12))  # met already; finished 22 h ago, its callback not due yet
        d.ticket(A, "complaint", r, created=L(11, 5), status="accepted", priority="general", due=L(11, 7))  # late
        d.ticket(A, "repair", r, created=L(11, 10, 8), status="new", priority="normal", due=L(11, 11, 8))  # 2 h old
        d.ticket(A, "repair", r, created=L(11, 8), status="in_progress", priority="normal", due=L(11, 9))
        d.ticket(A, "repair", r, created=L(11, 8), priority="normal", due=L(11, 9), resolved=L(11, 8, 12))
        d.ticket(A, "repair", r, created=L(11, 10, 9, 55), status="new", priority="emergency",
                 due=L(11, 10, 10, 5))  # 5 minutes old
    with store.transaction() as s:
        figures = kpis.by_key(kpis.kpis(s, [A], Q4, now))
    assert (figures["complaint_timeliness"].numerator, figures["complaint_timeliness"].denominator) == (1, 2)
    assert (figures["complaint_handling"].numerator, figures["complaint_handling"].denominator) == (1, 3)
    assert (figures["repair_24h"].numerator, figures["repair_24h"].denominator) == (1, 2)
    assert figures["emergency_onsite"].value is None
    assert (figures["callback_rate"].numerator, figures["callback_rate"].denominator) == (0, 1)
    assert figures["backlog"].value == 5  # by status, now
    # A case opened 5 minutes ago, one 2 hours ago, 1, 2 and 5 days ago.
    assert figures["backlog_age"].numerator == pytest.approx(5 / 1440 + 2 / 24 + 1 + 2 + 5)


def test_exactly_24_hours_is_within_24_hours(store):
    with store.transaction() as s:
        d = Data(s)
        r = d.resident(A, created=L(1, 1, year=2025), updated=L(1, 1, year=2025))
        on_time = d.ticket(A, "repair", r, created=L(11, 2), priority="normal", due=L(11, 3), resolved=L(11, 3))
        d.survey(on_time, r, sent=L(11, 4))
        late = d.ticket(A, "repair", r, created=L(11, 5), priority="normal", due=L(11, 6), resolved=L(11, 6, 10, 1))
        d.survey(late, r, sent=L(11, 7, 10, 2))
    with store.transaction() as s:
        figures = kpis.by_key(kpis.kpis(s, [A], Q4, NOW, keys=["callback_24h", "repair_24h"]))
    assert list(figures) == ["callback_24h", "repair_24h"]
    assert (figures["repair_24h"].numerator, figures["repair_24h"].denominator) == (1, 2)
    assert (figures["callback_24h"].numerator, figures["callback_24h"].denominator) == (1, 2)


def test_staff_workload_per_holder(store):
    build(store)
    with store.transaction() as s:
        loads = staff_workload(s, [A], Q4, NOW)
        company = staff_workload(s, [A, B], Q4, NOW)
    # 李雷: e2 (in progress 09:08, callback 5/4/3), r1 (2 h, 5), r4 (30 h: late, 4).
    # 王芳: e1 (on site, 5), c1 (on time, 5), c8 (past its hard limit, 2).
    assert [(x.staff_id, x.name, x.held, x.resolved, x.on_time, x.scored) for x in loads] == [
        ("api:li", "李雷", 3, 3, 2, 3), ("api:wang", "王芳", 3, 3, 2, 3)]
    assert loads[0].average_score == pytest.approx((4 + 5 + 4) / 3)
    assert loads[1].average_score == pytest.approx(4.0)
    assert [x.staff_id for x in company] == ["api:li", "api:wang", "api:zhang"]
    assert (company[2].held, company[2].on_time, company[2].average_score) == (1, 1, pytest.approx(3.5))


def test_the_annual_survey_dimensions(store):
    build(store)
    with store.transaction() as s:
        one = annual_dimensions(s, [A], "2026")
        both = annual_dimensions(s, [A, B], "2026")
        nothing = annual_dimensions(s, [A], "2025")
    assert [tuple(x) for x in one] == [("quality", "服务质量", 4.5, 2), ("attitude", "服务态度", 4.0, 2),
                                       ("efficiency", "服务效率", 4.0, 2), ("facilities", "服务设施", 4.0, 1)]
    assert both[0].average == pytest.approx(13 / 3) and both[0].answered == 3
    assert [x.average for x in nothing] == [None] * 4 and {x.answered for x in nothing} == {0}


def test_periods():
    assert (Q4.start, Q4.end, Q4.label, Q4.code) == (datetime(2026, 9, 30, 16), datetime(2026, 12, 31, 16),
                                                     "2026年第4季度", "2026-Q4")
    assert (Q3.label, Q3.start, Q3.end) == ("2026年第3季度", datetime(2026, 6, 30, 16), Q4.start)
    first = quarter_of(date(2027, 2, 1), TZ)
    assert (first.label, previous(first)) == ("2027年第1季度", Q4)
    assert [m.label for m in months_before(Q4.end, 3, TZ)] == ["2026年10月", "2026年11月", "2026年12月"]
    assert months_before(Q4.end, 3, TZ)[0].start == Q4.start and months_before(Q4.end, 3, TZ)[-1].end == Q4.end
    assert previous(kpis.month_of(date(2026, 1, 9), TZ)).label == "2025年12月"
    custom = Period(datetime(2026, 11, 1), datetime(2026, 11, 8), "一周")
    assert (previous(custom).start, previous(custom).end) == (datetime(2026, 10, 25), datetime(2026, 11, 1))


def rows(breakdown) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return [(r.label, r.current, r.previous) for r in breakdown]


def test_the_complaint_analysis_of_one_project(store, two_projects):
    ids = build(store)
    with store.transaction() as s:
        result = analyse(s, [A], Q4, Q3, two_projects.rules, now=NOW)
    assert (result.received.current, result.received.previous) == (10, 5)
    assert [(r.key, r.current.numerator, r.current.denominator, r.previous.numerator, r.previous.denominator)
            for r in result.rates] == [("complaint_handling", 9, 10, 5, 5), ("complaint_timeliness", 8, 10, 3, 4),
                                       ("complaint_satisfaction", 3, 4, 1, 2)]
    assert result.timeliness_rate.current.value == pytest.approx(0.8)
    # Stored topics where set; otherwise read from description + demand (装修电钻声太吵 → 噪音).
    assert rows(result.by_type) == [("噪音", 3, 2), ("卫生", 3, 1), ("停车", 2, 1), ("其他", 1, 0), ("收费", 1, 0),
                                    ("电梯", 0, 1)]
    assert rows(result.by_tier) == [("重大", 1, 0), ("紧急", 1, 1), ("一般", 8, 4)]
    assert rows(result.by_cause) == [("无升级信号", 8, 4), ("多次反映未解决", 1, 0), ("扬言向外投诉或曝光", 1, 0),
                                     ("涉及老人小孩等", 1, 0), ("已取证", 0, 1)]
    # 3-1-101 and 3栋101 are in 3栋, 七号楼1202 in 7栋.
    assert rows(result.by_building) == [("3栋", 5, 2), ("5栋", 2, 1), ("7栋", 1, 1), ("未填房号", 1, 1),
                                        ("A座", 1, 0)]
    assert (result.repeat_complainants.current, result.repeat_complainants.previous) == (3, 1)
    assert [(r.resident_id, r.complaints) for r in result.repeaters] == [(ids["ra1"], 3), (ids["ra2"], 2),
                                                                         (ids["ra3"], 2)]
    assert len(result.repeaters[0].numbers) == 3
    assert (result.group_complaints.current, result.group_complaints.previous) == (1, 0)
    [group] = result.groups
    assert (group.topic, group.place, group.members, group.on_time) == ("卫生", "3栋", 3, True)
    assert json.loads(json.dumps(result.to_dict(), ensure_ascii=False))["by_type"][0] == {
        "key": "噪音", "label": "噪音", "current": 3, "previous": 2}


def test_the_complaint_analysis_of_the_other_project_and_of_both(store, two_projects):
    ids = build(store)
    with store.transaction() as s:
        other = analyse(s, [B], Q4, Q3, two_projects.rules, now=NOW)
        both = analyse(s, [A, B], Q4, Q3, two_projects.rules, now=NOW)
    assert (other.received.current, other.received.previous) == (3, 1)
    assert rows(other.by_type) == [("噪音", 2, 0), ("绿化", 1, 0), ("停车", 0, 1)]
    assert rows(other.by_building) == [("1栋", 2, 1), ("2栋", 1, 0)]
    assert other.satisfaction_rate.previous.value is None and other.satisfaction_rate.current.value == 1.0
    assert (other.repeat_complainants.current, other.repeat_complainants.previous) == (1, 0)
    assert other.groups == ()
    assert (both.received.current, both.received.previous) == (13, 6)
    assert [(r.key, r.current.numerator, r.current.denominator) for r in both.rates] == [
        ("complaint_handling", 12, 13), ("complaint_timeliness", 10, 13), ("complaint_satisfaction", 5, 6)]
    assert rows(both.by_type)[:2] == [("噪音", 5, 2), ("卫生", 3, 1)]
    assert ("停车", 2, 2) in rows(both.by_type)
    # Across projects a building is named with its project: two 3栋 are two places.
    assert rows(both.by_building)[:2] == [("示例小区·3栋", 5, 2), ("滨江花园·1栋", 2, 1)]
    assert (both.repeat_complainants.current, both.repeat_complainants.previous) == (4, 1)
    assert [r.resident_id for r in both.repeaters] == [ids["ra1"], ids["ra2"], ids["ra3"], ids["rb1"]]


async def test_the_quarter_end_report_is_written_once(store, two_projects, tmp_path, monkeypatch):
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path))
    build(store)
    company: Company = two_projects
    schedule_daily(store, company.default, L(11, 30, 9))
    schedule_daily(store, company.default, L(12, 31, 23))  # the same quarter: still one job
    with store.transaction() as s:
        [job] = s.execute(select(Job).where(Job.kind == queue.QUARTERLY_REPORT)).scalars().all()
        assert (job.due_at, job.idempotency_key) == (NOW, "quarterly_report:2026-Q4")
        # Only this job is the subject here: the daily housekeeping has its own tests.
        s.execute(update(Job).where(Job.kind != queue.QUARTERLY_REPORT).values(status=JobStatus.CANCELLED.value))
    ctx = Context(store, company, None, None)  # type: ignore[arg-type]  # the report reaches no resident
    assert await Worker(ctx, "w", clock=lambda: NOW - timedelta(minutes=1)).run_due() == {}
    assert await Worker(ctx, "w", clock=lambda: NOW).run_due() == {"done": 1}
    folder = tmp_path / "2026-Q4"
    assert sorted(p.name for p in folder.iterdir()) == ["_company.json", "binjiang.json", "default.json"]
    report = json.loads((folder / "default.json").read_text(encoding="utf-8"))
    assert (report["name"], report["period"]["label"], report["previous_period"]["label"]) == (
        "示例小区", "2026年第4季度", "2026年第3季度")
    timeliness = next(k for k in report["kpis"] if k["key"] == "complaint_timeliness")
    assert (timeliness["numerator"], timeliness["denominator"], timeliness["previous"]["value"]) == (8, 10, 0.75)
    assert report["complaints"]["received"] == {"key": "received", "label": "投诉量", "current": 10, "previous": 5}
    whole = json.loads((folder / "_company.json").read_text(encoding="utf-8"))
    assert whole["projects"] == [B, A] and whole["complaints"]["received"]["current"] == 13
    written = (folder / "default.json").stat().st_mtime_ns
    # Later rounds find nothing more to do for Q4; the next quarter has its own job.
    schedule_daily(store, company.default, NOW + timedelta(hours=1))
    with store.transaction() as s:
        s.execute(update(Job).where(Job.kind != queue.QUARTERLY_REPORT).values(status=JobStatus.CANCELLED.value))
    assert await Worker(ctx, "w", clock=lambda: NOW + timedelta(hours=2)).run_due() == {}
    assert (folder / "default.json").stat().st_mtime_ns == written
    with store.transaction() as s:
        keys = sorted((j.idempotency_key, j.status) for j in s.execute(
            select(Job).where(Job.kind == queue.QUARTERLY_REPORT)).scalars())
    assert keys == [("quarterly_report:2026-Q4", "done"), ("quarterly_report:2027-Q1", "pending")]
