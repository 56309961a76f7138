"""Complaints about our own slowness are linked to the repair they are about (issue 13, item 5)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.cases.escalation import REPAIR_CHASED
from bot.cases.tickets import (
    LINKED_CASE,
    REPAIR_CHASED_EVENT,
    linked_repair,
    open_complaint_ticket,
    open_repair_ticket,
    resolve_ticket,
)
from bot.core.triage import about_our_repair
from bot.db.models import StaffAlert, Ticket

OPENID = "oSlowRepair01"


@pytest.mark.parametrize(("text", "never_done"), [
    ("报修两周了都没人来", False),
    ("投诉你们维修部，师傅拖了一个礼拜", False),
    ("工单显示已完成，可是根本没人来修过", True),
    ("报的修压根没来人就给我关了", True),
])
def test_complaints_about_our_repairs_are_recognised(rules, text, never_done):
    about = about_our_repair(text, rules.triage.our_repairs)
    assert about is not None and about.never_done is never_done


@pytest.mark.parametrize("text", ["楼上太吵了", "保安态度差", "维修师傅态度很好但是收费贵"])
def test_other_complaints_are_not(rules, text):
    assert about_our_repair(text, rules.triage.our_repairs) is None


def alerts_for(session, ticket_id: int) -> list[str]:
    return [a.reason for a in session.execute(select(StaffAlert).where(StaffAlert.ticket_id == ticket_id)).scalars()]


def test_a_slow_repair_complained_about_is_linked_and_chased(store, rules):
    with store.transaction() as s:
        repair = open_repair_ticket(s, rules, openid=OPENID, description="厨房下水道堵了", room="3栋2单元501",
                                    visit_time="随时", channel="wechat")
        complaint = open_complaint_ticket(s, rules, openid=OPENID, description="报修两周了都没人来，你们维修部太慢了",
                                          demand="今天必须来人", room=None, channel="wechat")
        assert linked_repair(complaint) == repair.number
        assert any(e.action == LINKED_CASE and repair.number in e.content for e in complaint.events)
        assert any(e.action == REPAIR_CHASED_EVENT and complaint.number in e.content for e in repair.events)
        assert REPAIR_CHASED in alerts_for(s, repair.id)
        assert repair.status == "new"  # chased, not reopened: it was never marked done


def test_a_repair_marked_done_that_never_happened_is_reopened(store, rules):
    with store.transaction() as s:
        repair = open_repair_ticket(s, rules, openid=OPENID, description="阳台灯不亮", room="3栋2单元501",
                                    visit_time="随时", channel="wechat")
        resolve_ticket(s, rules, repair, actor="staff:li", channel="console", note="已更换灯泡")
        complaint = open_complaint_ticket(s, rules, openid=OPENID, description="工单显示已完成，可是根本没人来修过",
                                          demand="重新派人", room=None, channel="wechat")
        assert linked_repair(complaint) == repair.number
        assert repair.status == "reopened"


def test_a_named_repair_wins_and_someone_elses_is_never_linked(store, rules):
    with store.transaction() as s:
        older = open_repair_ticket(s, rules, openid=OPENID, description="门锁坏了", room="3栋2单元501",
                                   visit_time="随时", channel="wechat")
        open_repair_ticket(s, rules, openid=OPENID, description="灯不亮", room="3栋2单元501",
                           visit_time="随时", channel="wechat")
        theirs = open_repair_ticket(s, rules, openid="oSomeoneElse", description="水管漏水", room="5栋101",
                                    visit_time="随时", channel="wechat")
        named = open_complaint_ticket(s, rules, openid=OPENID, description=f"{older.number} 报修三天了没人来",
                                      demand=None, room=None, channel="wechat")
        assert linked_repair(named) == older.number
        other = open_complaint_ticket(s, rules, openid=OPENID, description=f"{theirs.number} 报修三天了没人来",
                                      demand=None, room=None, channel="wechat")
        assert linked_repair(other) is None


def test_an_old_finished_repair_is_not_the_one_complained_about(store, rules):
    with store.transaction() as s:
        repair = open_repair_ticket(s, rules, openid=OPENID, description="窗户关不上", room="3栋2单元501",
                                    visit_time="随时", channel="wechat")
        resolve_ticket(s, rules, repair, actor="staff:li", channel="console", note="修好了")
        repair.updated_at -= timedelta(days=rules.triage.our_repairs.within_days + 1)
        complaint = open_complaint_ticket(s, rules, openid=OPENID, description="报修了好几天没人来",
                                          demand=None, room=None, channel="wechat")
        assert linked_repair(complaint) is None
        assert s.get(Ticket, repair.id).status == "resolved"
