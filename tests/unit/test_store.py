"""Ticket store on SQLite and PostgreSQL: schema, numbering, state machine, atomicity."""
from __future__ import annotations

import threading
import traceback
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from bot.app.schema import metadata
from bot.cases.tickets import (
    TicketNotCancellable,
    cancel_by_resident,
    open_complaint_ticket,
    open_repair_ticket,
    record_feedback,
    resident_tickets,
    transition,
)
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.lifecycle import IllegalTransition
from bot.db.models import Resident, Ticket, TicketCounter, TicketEvent

NOON_UTC = datetime(2026, 11, 25, 4, 0)  # 12:00 in Shanghai, a Wednesday


def test_migrations_match_the_models(store):
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


def test_repair_ticket_is_numbered_recorded_and_due(store, rules):
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid="oRes1", description="厨房水龙头滴水", room="3栋2单元501",
                                    visit_time="明天上午", channel="wechat", now=NOON_UTC)
    with store.transaction() as s:
        saved = s.execute(select(Ticket).where(Ticket.id == ticket.id)).scalar_one()
        assert saved.number == "BX20261125-0001"
        assert (saved.kind, saved.status, saved.priority) == ("repair", "new", "normal")
        assert saved.room == "3栋2单元501" and saved.visit_time == "明天上午"
        assert saved.due_at == datetime(2026, 11, 26, 4, 0)  # general repair: 24 hours
        assert saved.resident.openid == "oRes1" and saved.resident.room == "3栋2单元501"
        [created] = saved.events
        assert (created.action, created.actor, created.channel, created.to_status) == (
            "created", "resident", "wechat", "new")
        assert created.content == "厨房水龙头滴水"


def test_numbers_count_per_kind_and_local_day(store, rules):
    late_evening_utc = datetime(2026, 11, 25, 17, 0)  # already Nov 26 in Shanghai
    with store.transaction() as s:
        a = open_repair_ticket(s, rules, openid="o1", description="灯不亮", room=None, visit_time=None,
                               channel="rest", now=NOON_UTC)
        b = open_repair_ticket(s, rules, openid="o2", description="门锁坏了", room=None, visit_time=None,
                               channel="rest", now=NOON_UTC)
        c = open_complaint_ticket(s, rules, openid="o1", description="楼道没人打扫", demand="安排保洁",
                                  room=None, channel="rest", now=NOON_UTC)
        d = open_repair_ticket(s, rules, openid="o1", description="水管漏水", room=None, visit_time=None,
                               channel="rest", now=late_evening_utc)
        e = record_feedback(s, rules, kind=TicketKind.SUGGESTION, openid="o1", text="多装充电桩",
                            channel="rest", now=NOON_UTC)
        f = record_feedback(s, rules, kind=TicketKind.PRAISE, openid="o1", text="师傅很专业",
                            channel="rest", now=NOON_UTC)
    assert [a.number, b.number, c.number, d.number, e.number, f.number] == [
        "BX20261125-0001", "BX20261125-0002", "TS20261125-0001", "BX20261126-0001",
        "JY20261125-0001", "BY20261125-0001",
    ]
    assert d.priority == Priority.EMERGENCY.value
    assert f.due_at is None and e.due_at is not None


def test_emergency_repair_is_due_in_ten_minutes(store, rules):
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid="o1", description="有人被困在电梯里了", room=None,
                                    visit_time=None, channel="rest", now=NOON_UTC)
    assert ticket.priority == "emergency"
    assert (ticket.due_at - NOON_UTC).total_seconds() == 10 * 60


def test_complaint_tiers_and_demand(store, rules):
    with store.transaction() as s:
        general = open_complaint_ticket(s, rules, openid="o1", description="保洁没打扫楼道", demand="希望打扫",
                                        room=None, channel="rest", now=NOON_UTC)
        major = open_complaint_ticket(s, rules, openid="o2", description="很多业主都要集体投诉物业费",
                                      demand="给个说法", room=None, channel="rest", now=NOON_UTC)
    assert general.priority == "general" and general.demand == "希望打扫"
    assert major.priority == "major"
    assert major.due_at < general.due_at


def test_lifecycle_writes_an_event_per_step(store, rules):
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid="o1", description="插座不通电", room=None, visit_time=None,
                                    channel="rest", now=NOON_UTC)
        for target in (TicketStatus.ACCEPTED, TicketStatus.IN_PROGRESS, TicketStatus.RESOLVED,
                       TicketStatus.REOPENED, TicketStatus.IN_PROGRESS, TicketStatus.RESOLVED,
                       TicketStatus.CLOSED):
            transition(s, ticket, target, rules=rules, actor="staff:wang", channel="console", content=target.value)
    with store.transaction() as s:
        saved = s.execute(select(Ticket).where(Ticket.id == ticket.id)).scalar_one()
        assert saved.status == "closed" and saved.resolved_at and saved.closed_at
        moves = [(e.from_status, e.to_status) for e in saved.events if e.action == "status"]
        assert moves == [("new", "accepted"), ("accepted", "in_progress"), ("in_progress", "resolved"),
                         ("resolved", "reopened"), ("reopened", "in_progress"), ("in_progress", "resolved"),
                         ("resolved", "closed")]


@pytest.mark.parametrize("path,illegal", [
    ((TicketStatus.CANCELLED,), TicketStatus.CLOSED),  # an open case may close (outside our responsibility)
    ((), TicketStatus.RESOLVED),
    ((TicketStatus.ACCEPTED, TicketStatus.IN_PROGRESS), TicketStatus.CANCELLED),
    ((TicketStatus.CANCELLED,), TicketStatus.ACCEPTED),
    ((TicketStatus.ACCEPTED, TicketStatus.RESOLVED, TicketStatus.CLOSED), TicketStatus.REOPENED),
])
def test_illegal_transitions_raise_and_write_nothing(store, rules, path, illegal):
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid="o1", description="灯坏了", room=None, visit_time=None,
                                    channel="rest", now=NOON_UTC)
        for step in path:
            transition(s, ticket, step, rules=rules, actor="staff", channel="console")
        ticket_id = ticket.id
    with pytest.raises(IllegalTransition, match=f"cannot go from .* to '{illegal.value}'"):
        with store.transaction() as s:
            transition(s, s.get(Ticket, ticket_id), illegal, rules=rules, actor="staff", channel="console")
    with store.transaction() as s:
        assert len(s.get(Ticket, ticket_id).events) == 1 + len(path)


def test_resident_may_cancel_only_their_unstarted_ticket(store, rules):
    with store.transaction() as s:
        mine = open_repair_ticket(s, rules, openid="o1", description="灯坏了", room=None, visit_time=None,
                                  channel="rest")
        started = open_repair_ticket(s, rules, openid="o1", description="门坏了", room=None, visit_time=None,
                                     channel="rest")
        transition(s, started, TicketStatus.ACCEPTED, rules=rules, actor="staff", channel="console")
        transition(s, started, TicketStatus.IN_PROGRESS, rules=rules, actor="staff", channel="console")
    with store.transaction() as s:
        with pytest.raises(TicketNotCancellable):
            cancel_by_resident(s, rules, s.get(Ticket, mine.id), openid="someone-else", channel="rest")
        with pytest.raises(TicketNotCancellable):
            cancel_by_resident(s, rules, s.get(Ticket, started.id), openid="o1", channel="rest")
        cancel_by_resident(s, rules, s.get(Ticket, mine.id), openid="o1", channel="rest", reason="已经好了")
    with store.transaction() as s:
        assert s.get(Ticket, mine.id).status == "cancelled"
        assert [t.number for t in resident_tickets(s, "o1")] == [started.number]


def test_events_are_append_only(store, rules):
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid="o1", description="灯坏了", room=None, visit_time=None,
                                    channel="rest")
    with pytest.raises(PermissionError):
        with store.transaction() as s:
            s.get(Ticket, ticket.id).events[0].content = "rewritten"
    with pytest.raises(PermissionError):
        with store.transaction() as s:
            s.delete(s.get(Ticket, ticket.id).events[0])
    with store.transaction() as s:
        assert s.get(Ticket, ticket.id).events[0].content == "灯坏了"


def test_failed_transaction_leaves_no_orphan_ticket(store, rules):
    with pytest.raises(RuntimeError):
        with store.transaction() as s:
            open_repair_ticket(s, rules, openid="o1", description="灯坏了", room=None, visit_time=None,
                               channel="rest", now=NOON_UTC)
            raise RuntimeError("the reply could not be built")
    with store.transaction() as s:
        assert s.execute(select(func.count()).select_from(Ticket)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(TicketEvent)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(Resident)).scalar_one() == 0
        next_ticket = open_repair_ticket(s, rules, openid="o1", description="灯坏了", room=None,
                                         visit_time=None, channel="rest", now=NOON_UTC)
    # The rolled-back number is handed out again: no gaps from failures.
    assert next_ticket.number == "BX20261125-0001"


def test_ticket_numbers_unique_under_concurrent_writers(store, rules):
    writers, per_writer = 8, 12
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def write(worker: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                with store.transaction() as s:
                    ticket = open_repair_ticket(s, rules, openid=f"o{worker}", description=f"灯坏了 {i}",
                                                room=None, visit_time=None, channel="rest", now=NOON_UTC)
                    number = ticket.number
                with lock:
                    numbers.append(number)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    total = writers * per_writer
    assert sorted(numbers) == [f"BX20261125-{n:04d}" for n in range(1, total + 1)]
    with store.transaction() as s:
        assert s.execute(select(func.count(func.distinct(Ticket.number)))).scalar_one() == total
        counter = s.execute(select(TicketCounter)).scalar_one()
        assert counter.last_value == total


def test_database_errors_hide_their_bound_parameters(store):
    # Errors get logged; their bound parameters are residents' words, phones and openids.
    # PostgreSQL's own DETAIL line would quote the failing row: it is scrubbed too.
    from sqlalchemy.exc import IntegrityError

    try:
        with store.transaction() as session:
            session.add(Resident(project="default", openid="oLeakCheck999", phone="13812345678", name="王小明",
                                 room="3栋2单元501", tags=[]))  # created_at missing: NOT NULL violation
    except IntegrityError as exc:
        message = str(exc)
    else:
        raise AssertionError("the insert should have failed")
    assert "[SQL parameters hidden due to hide_parameters=True]" in message
    assert "[parameters:" not in message
    assert all(value not in message for value in ("13812345678", "王小明", "oLeakCheck999"))
    assert "Failing row" not in message and "created_at" in message  # which column, not which values


def test_duplicate_key_errors_do_not_quote_the_key(store):
    from sqlalchemy.exc import IntegrityError

    from bot.core.clock import utcnow

    with store.transaction() as session:
        session.add(Resident(project="default", openid="oDuplicate4242", tags=[], created_at=utcnow(),
                             updated_at=utcnow()))
    try:
        with store.transaction() as session:
            # One record per project and openid: the same pair twice is refused.
            session.add(Resident(project="default", openid="oDuplicate4242", tags=[], created_at=utcnow(),
                                 updated_at=utcnow()))
    except IntegrityError as exc:
        message = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    else:
        raise AssertionError("the duplicate should have failed")
    assert "oDuplicate4242" not in message  # neither in our exception nor in the chained driver error


def test_scrubbed_driver_messages_keep_what_went_wrong():
    from bot.db.store import scrub_driver_message

    assert scrub_driver_message('invalid input syntax for type integer: "13812345678"\nLINE 1: …') == \
        'invalid input syntax for type integer: "…"'
    assert scrub_driver_message('duplicate key value violates unique constraint "uq_openid"\n'
                                'DETAIL:  Key (openid)=(oAbc) already exists.\n') == \
        'duplicate key value violates unique constraint "uq_openid"'


def test_migrate_check_tells_a_current_store_from_an_old_or_missing_one(tmp_path):
    import subprocess
    import sys

    from bot.app import migrate
    from bot.settings import PROJECT_ROOT

    def check(url: str) -> int:
        env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url}
        return subprocess.run([sys.executable, "-m", "bot", "migrate", "--check"], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, timeout=60).returncode

    url = f"sqlite:///{tmp_path / 'check.db'}"
    assert check(url) == 1  # empty: no schema yet
    migrate.upgrade(url, "0004")
    assert check(url) == 1  # behind
    migrate.upgrade(url)
    assert check(url) == 0
    assert check("postgresql+psycopg2://nobody@127.0.0.1:1/none") == 1  # nothing listens there
