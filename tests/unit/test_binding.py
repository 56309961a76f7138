"""Binding an openid to the roster (房号 + 手机号) cannot be used to walk the roster."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.cases.residents import BindOutcome, bind_resident, import_roster
from bot.core import replies
from bot.db.models import Ticket

NOON = datetime(2026, 11, 30, 4, 0)  # 12:00 in Shanghai


@pytest.fixture
def roster_store(sqlite_store, tmp_path, rules):
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone\n3栋2单元501,王小明,13812345678\n", encoding="utf-8")
    with sqlite_store.transaction() as session:
        import_roster(session, roster, projects={rules.code}, default_project=rules.code)
    return sqlite_store


def bind(store, rules, openid: str, room: str, phone: str, now: datetime = NOON):  # type: ignore[no-untyped-def]
    with store.transaction() as session:
        return bind_resident(session, rules, openid=openid, room=room, phone=phone, channel="wechat", now=now)


def test_a_wrong_phone_and_an_unknown_room_read_the_same(roster_store, rules):
    wrong_phone = bind(roster_store, rules, "oGuess1", "3栋2单元501", "13900000000")
    unknown_room = bind(roster_store, rules, "oGuess2", "9栋9单元909", "13812345678")
    assert (wrong_phone.outcome, unknown_room.outcome) == (BindOutcome.MISMATCH, BindOutcome.UNKNOWN_ROOM)  # staff
    said = [replies.binding_not_matched(r.follow_up_number or "").replace(r.follow_up_number or "", "#")
            for r in (wrong_phone, unknown_room)]
    assert said[0] == said[1]  # the resident cannot tell which rooms exist


def test_a_resident_gets_five_tries_a_day_and_one_follow_up_case(roster_store, rules):
    results = [bind(roster_store, rules, "oWalker", f"{n}栋1单元101", "13800000000", NOON + timedelta(minutes=n))
               for n in range(1, 8)]
    assert [r.outcome for r in results[:5]] == [BindOutcome.UNKNOWN_ROOM] * 5
    assert [r.outcome for r in results[5:]] == [BindOutcome.TOO_MANY] * 2
    # Even the right answer waits for tomorrow once the tries are used up…
    assert bind(roster_store, rules, "oWalker", "3栋2单元501", "13812345678").outcome is BindOutcome.TOO_MANY
    with roster_store.transaction() as session:
        cases = session.execute(select(Ticket).where(Ticket.kind == "enquiry")).scalars().all()
        assert len(cases) == 1 and {r.follow_up_number for r in results[:5]} == {cases[0].number}
        assert [e.action for e in cases[0].events].count("binding_attempt") == 4
    # …and tomorrow (local day) it works.
    tomorrow = bind(roster_store, rules, "oWalker", "3栋2单元501", "13812345678", NOON + timedelta(days=1))
    assert tomorrow.outcome is BindOutcome.BOUND


def test_a_room_takes_ten_failed_tries_a_day_from_anyone(roster_store, rules):
    outcomes = [bind(roster_store, rules, f"oRing{n}", "3栋2单元501", f"1390000{n:04d}").outcome for n in range(11)]
    assert outcomes[:10] == [BindOutcome.MISMATCH] * 10 and outcomes[10] is BindOutcome.TOO_MANY
    # The household itself binds tomorrow; today the room is closed to guessing.
    assert bind(roster_store, rules, "oOwner", "3栋2单元501", "13812345678").outcome is BindOutcome.TOO_MANY
    with roster_store.transaction() as session:
        assert session.execute(select(func.count()).select_from(Ticket)).scalar_one() == 10  # one per resident


def test_failed_tries_are_forgotten_after_two_days_by_the_daily_housekeeping(roster_store, rules, company):
    import asyncio

    from bot.db.models import BindingAttempt
    from bot.worker.handlers import Context, message_log_retention

    class NoChannel:  # this test is about the binding records, not the channel's logs
        async def deliver(self, notice, now):  # type: ignore[no-untyped-def]
            raise AssertionError("nothing to deliver")

        async def purge_raw_logs(self, before):  # type: ignore[no-untyped-def]
            return {}

    bind(roster_store, rules, "oOld", "9栋9单元909", "13800000000", NOON - timedelta(days=3))
    bind(roster_store, rules, "oNew", "9栋9单元909", "13800000000", NOON)
    ctx = Context(roster_store, company, NoChannel(), None)  # type: ignore[arg-type]
    asyncio.run(message_log_retention(ctx, None, NOON + timedelta(hours=1)))  # type: ignore[arg-type]
    with roster_store.transaction() as session:
        assert [a.openid for a in session.execute(select(BindingAttempt)).scalars()] == ["oNew"]
