"""Claiming, replying, resolving and the live relay, as the domain functions do them."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.cases import handoff
from bot.cases.handoff import Refusal, Staff
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket, request_human
from bot.db import queue
from bot.db.models import HumanSession, Job, StaffAlert, StaffOutbox, Ticket
from bot.db.store import TicketStore

NOON = datetime(2026, 11, 26, 4, 0)
WANG, LI = Staff("tg:1001", "王磊"), Staff("tg:1002", "李娜")


def human_case(store, rules, openid: str = "oHand1") -> str:
    with store.transaction() as s:
        return request_human(s, rules, openid=openid, context="居民原话：转人工", channel="wechat", now=NOON).number


def test_eight_staff_claiming_at_once_leave_one_owner(store, rules):
    number = human_case(store, rules)
    results: list[handoff.Outcome] = []
    barrier = threading.Barrier(8)

    def click(n: int) -> None:
        own = TicketStore(store.url)
        try:
            barrier.wait()
            with own.transaction() as s:
                results.append(handoff.claim(s, rules, number, Staff(f"tg:{n}", f"员工{n}"), channel="telegram",
                                             now=NOON))
        finally:
            own.dispose()

    threads = [threading.Thread(target=click, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if r.done]
    assert len(results) == 8 and len(winners) == 1
    assert {r.refusal for r in results if not r.done} == {Refusal.TAKEN}
    assert {r.holder for r in results} == {winners[0].holder}
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert ticket.assignee == winners[0].holder and ticket.status == "accepted"
        assert len(s.execute(select(HumanSession)).scalars().all()) == 1


def test_only_the_holder_replies_and_the_reply_is_queued_for_the_resident(store, rules):
    number = human_case(store, rules)
    with store.transaction() as s:
        assert handoff.reply(s, rules, number, WANG, "您好", channel="telegram").refusal is Refusal.NOT_HOLDER
        assert handoff.claim(s, rules, number, WANG, channel="telegram", now=NOON).done
        assert handoff.reply(s, rules, number, LI, "我来", channel="telegram").refusal is Refusal.NOT_HOLDER
        assert handoff.reply(s, rules, number, WANG, "您好，请问是哪里的问题？", channel="telegram", now=NOON).done
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        messages = s.execute(select(Job).where(Job.ticket_id == ticket.id, Job.kind == queue.RESIDENT_MESSAGE)
                             .order_by(Job.id)).scalars().all()
        texts = [m.payload["text"] for m in messages]
        assert "已接手您的工单" in texts[0] and texts[1] == "【客服王磊】您好，请问是哪里的问题？"
        assert [e.action for e in ticket.events][-1] == "staff_reply"


def test_the_relay_and_ending_it(store, rules):
    number = human_case(store, rules)
    with store.transaction() as s:
        assert handoff.route_resident_message(s, "oHand1", "还在吗", channel="wechat") is False  # nobody holds it
        handoff.claim(s, rules, number, WANG, channel="telegram", now=NOON)
    with store.transaction() as s:
        assert handoff.route_resident_message(s, "oHand1", "我家电话13812345678，卫生间漏水", channel="wechat") is None
        assert handoff.route_resident_message(s, "oSomeoneElse", "你好", channel="wechat") is False
    with store.transaction() as s:
        [relay] = s.execute(select(StaffOutbox)).scalars().all()
        assert relay.text == f"【{number}】居民：我家电话138****5678，卫生间漏水" and relay.audience == "staff:tg:1001"
        answer = handoff.route_resident_message(s, "oHand1", "结束人工", channel="wechat")
        assert "智能助手" in answer
    with store.transaction() as s:
        assert handoff.route_resident_message(s, "oHand1", "你好", channel="wechat") is False
        assert s.execute(select(HumanSession)).scalar_one().ended_by == "resident"


def test_resolving_ends_the_session_and_schedules_the_callback(store, rules):
    with store.transaction() as s:
        number = open_repair_ticket(s, rules, openid="oHand2", description="厨房水管爆了", room="2栋1单元101",
                                    visit_time=None, channel="wechat", now=NOON).number
    with store.transaction() as s:
        assert handoff.claim(s, rules, number, WANG, channel="telegram", now=NOON).done
        assert handoff.resolve(s, rules, number, LI, "我来办结", channel="telegram").refusal is Refusal.NOT_HOLDER
        assert handoff.resolve(s, rules, number, WANG, "已更换水管", channel="telegram", now=NOON).done
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert ticket.status == "resolved" and ticket.assignee == "王磊"
        jobs = s.execute(select(Job).where(Job.ticket_id == ticket.id).order_by(Job.id)).scalars().all()
        assert queue.SATISFACTION_CALLBACK in [j.kind for j in jobs]
        told = [j.payload["text"] for j in jobs if j.kind == queue.RESIDENT_MESSAGE]
        assert len(told) == 2 and "已接手" in told[0] and "本次人工服务结束" in told[1]
        assert s.execute(select(HumanSession)).scalar_one().ended_at is not None
        assert handoff.route_resident_message(s, "oHand2", "谢谢", channel="wechat") is False


def test_resolving_an_unheld_case_takes_it_without_a_live_session(store, rules):
    with store.transaction() as s:
        number = open_repair_ticket(s, rules, openid="oHand3", description="门禁卡刷不开", room="2栋1单元102",
                                    visit_time=None, channel="wechat", now=NOON).number
    with store.transaction() as s:
        assert handoff.resolve(s, rules, number, WANG, "已重新写卡", channel="console", now=NOON).done
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert (ticket.status, ticket.assignee) == ("resolved", "王磊")
        assert s.execute(select(HumanSession)).scalars().all() == []
        assert not [j for j in s.execute(select(Job).where(Job.ticket_id == ticket.id)).scalars()
                    if j.kind == queue.RESIDENT_MESSAGE]


def test_three_households_about_the_same_noise_become_one_group_case(store, rules):
    with store.transaction() as s:
        numbers = [open_complaint_ticket(s, rules, openid=f"oNoise{n}", description="楼上半夜噪音太吵了",
                                         demand="管一管", room=f"3栋2单元{n}01", channel="wechat",
                                         now=NOON + timedelta(hours=n)).number for n in range(1, 4)]
        # A fourth joins the open group case instead of making another; another building does not.
        fourth = open_complaint_ticket(s, rules, openid="oNoise4", description="晚上很吵，噪音扰民", demand=None,
                                       room="3栋1单元402", channel="wechat", now=NOON + timedelta(hours=5)).number
        elsewhere = open_complaint_ticket(s, rules, openid="oNoise5", description="噪音太大", demand=None,
                                          room="8栋1单元101", channel="wechat", now=NOON + timedelta(hours=5)).number
    with store.transaction() as s:
        groups = s.execute(select(Ticket).where(Ticket.resident_id.is_(None))).scalars().all()
        assert len(groups) == 1
        group = groups[0]
        assert group.priority == "major" and group.room == "3栋" and group.topic == "噪音"
        assert "3 户投诉" in group.description
        members = s.execute(select(Ticket.number).where(Ticket.parent_id == group.id)).scalars().all()
        assert sorted(members) == sorted(numbers + [fourth]) and elsewhere not in members
        # A group complaint goes to the company customer-service department (and the project's staff).
        [alert] = s.execute(select(StaffAlert).where(StaffAlert.reason == "group_complaint")).scalars().all()
        assert alert.ticket_id == group.id and alert.audience == "company" and alert.project == rules.code


def test_complaints_outside_the_window_do_not_group(store, rules):
    with store.transaction() as s:
        for n in range(1, 4):
            open_complaint_ticket(s, rules, openid=f"oSlow{n}", description="停车位被占了", demand=None,
                                  room=f"6栋1单元{n}01", channel="wechat", now=NOON + timedelta(days=n))
    with store.transaction() as s:
        assert s.execute(select(Ticket).where(Ticket.resident_id.is_(None))).scalars().all() == []


def test_unclaimed_special_group_case_is_chased_twice_as_fast(store, rules, tmp_path):
    from bot.cases.residents import import_roster
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone,tags\n1栋1单元101,老王,13911112222,独居老人\n", encoding="utf-8")
    with store.transaction() as s:
        import_roster(s, roster, projects={rules.code}, default_project=rules.code)
        from bot.cases.residents import bind_resident
        bind_resident(s, rules, openid="oElder1", room="1栋1单元101", phone="13911112222", channel="wechat")
        ticket = open_repair_ticket(s, rules, openid="oElder1", description="卧室灯不亮", room="1栋1单元101",
                                    visit_time=None, channel="wechat", now=NOON)
        reasons = [a.reason for a in s.execute(select(StaffAlert).where(StaffAlert.ticket_id == ticket.id)).scalars()]
        assert reasons == ["special_group"]
        check = s.execute(select(Job).where(Job.ticket_id == ticket.id, Job.kind == queue.UNCLAIMED_CHECK)).scalar_one()
        # One priority factor for special groups: their deadline and the chasing of their case.
        factor = rules.sla.special_group_factor
        assert factor == 0.5
        assert check.due_at == NOON + timedelta(minutes=rules.escalation.unclaimed_reannounce_minutes * factor)
        assert ticket.due_at == NOON + timedelta(hours=rules.sla.general_repair_hours * factor)


async def test_unclaimed_case_is_announced_again_then_sent_to_the_project_head(store, rules):
    import aiohttp

    from tests.unit.test_worker import worker_for

    human_case(store, rules, "oUnclaimed1")
    with store.transaction() as s:
        claimed_soon = request_human(s, rules, openid="oUnclaimed2", context="转人工", channel="wechat", now=NOON).number
    async with aiohttp.ClientSession() as http:
        for minutes in (15, 30, 45, 60, 75):
            if minutes == 30:
                with store.transaction() as s:
                    handoff.claim(s, rules, claimed_soon, WANG, channel="telegram", now=NOON + timedelta(minutes=20))
            await worker_for(store, rules, http, "http://127.0.0.1:9", NOON + timedelta(minutes=minutes)).run_due()
    with store.transaction() as s:
        alerts = s.execute(select(StaffAlert).join(Ticket, StaffAlert.ticket_id == Ticket.id)
                           .order_by(StaffAlert.id)).scalars().all()
        by_ticket: dict[str, list[tuple[str, str]]] = {}
        for alert in alerts:
            by_ticket.setdefault(alert.ticket.number, []).append((alert.reason, alert.audience))
    never, soon = sorted(by_ticket.items(), key=lambda kv: kv[0] == claimed_soon)
    assert never[1] == [("human_request", "staff"), ("unclaimed", "staff"), ("unclaimed", "staff"),
                        ("unclaimed", "staff"), ("unclaimed_head", "head")]
    # Claimed at 20 min: the chasing stops. (This resident never wrote on WeChat, so the
    # "staff has your case" message cannot reach them and staff are told to phone instead.)
    assert soon[1] == [("human_request", "staff"), ("unclaimed", "staff"), ("resident_unreachable", "staff")]
