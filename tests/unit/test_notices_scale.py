"""Scheduling a notice the fast way (one INSERT … SELECT per table on PostgreSQL, executemany
on SQLite) writes the same rows as one at a time would: the job's payload, key and due time,
spaced exactly; a crash midway leaves nothing behind, and a rerun over a partly written
notice fills in only what is missing, never a second delivery or job for anyone."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Text, cast, delete, func, insert, select

from bot.cases import notices
from bot.core.rooms import parse_room
from bot.db import queue
from bot.db.models import Job, NoticeDelivery, Resident, ResidentNotice
from bot.db.store import TicketStore
from tests.unit.test_notices import NOW, OUTAGE_END, OUTAGE_START, fast, outage, roster  # noqa: F401 - a fixture


@pytest.mark.parametrize("room", [
    "3栋2单元501", "12栋1202", "A座1803", "100栋3单元1201", "03栋2单元501", "3幢2单元501室", "5-1-302", "5#1-302",
    "三栋二单元501", "３栋２单元５０１", "b座1803", "7号楼1202", "1234栋501", "3栋2单元50", "地下车库", "", None])
def test_the_building_of_a_room_is_what_parse_room_reads(room: str | None):
    parsed = parse_room(room)
    assert notices._building(room) == (parsed.building if parsed else None)


def _jobs_and_deliveries(store: TicketStore, notice_id: int) -> tuple[list[Job], dict[int, str]]:
    with store.transaction() as s:
        jobs = list(s.execute(select(Job).where(Job.kind == queue.NOTICE_DELIVERY).order_by(Job.due_at, Job.id))
                    .scalars())
        s.expunge_all()
        found = dict(s.execute(select(NoticeDelivery.resident_id, NoticeDelivery.status)
                               .where(NoticeDelivery.notice_id == notice_id)).tuples().all())
        return jobs, found


def test_the_jobs_are_the_rows_the_worker_reads_spaced_exactly(roster, rules):  # noqa: F811
    rules = fast(rules, per_minute=7)  # 60/7 s: 8.571429 s apart, in microseconds
    spacing = timedelta(seconds=60 / 7)
    send_at = NOW + timedelta(hours=1)
    notice_id = outage(roster, rules, send_at=send_at)
    jobs, found = _jobs_and_deliveries(roster, notice_id)
    with roster.transaction() as s:
        order = [r.id for r in notices.recipients(s, s.get(ResidentNotice, notice_id))]  # by room, then id
        raw = dict(s.execute(select(Job.id, cast(Job.payload, Text))).tuples().all())
        projects = set(s.execute(select(NoticeDelivery.project).where(NoticeDelivery.notice_id == notice_id))
                       .scalars())
    assert found == {resident_id: "pending" for resident_id in order} and len(order) == 3 and projects == {"default"}
    assert [job.payload for job in jobs] == [{"notice_id": notice_id, "resident_id": r} for r in order]
    assert [job.idempotency_key for job in jobs] == [f"notice_delivery:{notice_id}:{r}" for r in order]
    assert [job.due_at for job in jobs] == [send_at + spacing * i for i in range(3)]
    for job in jobs:
        assert (job.project, job.status, job.attempts, job.max_attempts, job.ticket_id, job.survey_id) == (
            "default", "pending", 0, rules.follow_up.job_max_attempts, None, None)
        assert job.created_at == job.updated_at == NOW and job.locked_until is None and job.finished_at is None
        assert json.loads(raw[job.id]) == job.payload
        assert raw[job.id] == json.dumps(job.payload)  # the text json.dumps writes, on PostgreSQL too


def test_a_crash_midway_through_scheduling_leaves_nothing_and_the_rerun_writes_each_once(roster, rules,  # noqa: F811
                                                                                        monkeypatch):
    rules = fast(rules)
    notice_id = outage(roster, rules, schedule=False)

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("the scheduler died after writing the deliveries")

    with monkeypatch.context() as patched:
        patched.setattr(notices, "_new_jobs", crash)
        with pytest.raises(RuntimeError), roster.transaction() as s:
            notices.schedule(s, rules, s.get(ResidentNotice, notice_id), NOW)
    assert _jobs_and_deliveries(roster, notice_id) == ([], {})  # rolled back with its transaction
    with roster.transaction() as s:
        assert s.get(ResidentNotice, notice_id).status == "draft"  # type: ignore[union-attr]
        assert notices.schedule(s, rules, s.get(ResidentNotice, notice_id), NOW) == (3, 0)
    with roster.transaction() as s:
        assert notices.schedule(s, rules, s.get(ResidentNotice, notice_id), NOW) == (0, 3)
    jobs, found = _jobs_and_deliveries(roster, notice_id)
    assert len(found) == 3 and sorted(j.payload["resident_id"] for j in jobs) == sorted(found)


def test_a_rerun_over_a_partly_written_notice_adds_only_the_missing_jobs(roster, rules):  # noqa: F811
    rules = fast(rules, per_minute=120)
    notice_id = outage(roster, rules)
    jobs, found = _jobs_and_deliveries(roster, notice_id)
    first, second, third = (job.payload["resident_id"] for job in jobs)
    # As a scheduler that died between the two tables would leave it: a delivery without its job;
    # and one already sent whose job is gone: it gets none again.
    with roster.transaction() as s:
        s.execute(delete(Job).where(Job.idempotency_key.in_([f"notice_delivery:{notice_id}:{r}"
                                                             for r in (second, third)])))
        s.execute(NoticeDelivery.__table__.update().where(NoticeDelivery.resident_id == third)
                  .values(status="sent"))
    for minutes in (1, 2):
        with roster.transaction() as s:
            assert notices.schedule(s, rules, s.get(ResidentNotice, notice_id), NOW + timedelta(minutes=minutes)) \
                == (0, 3)
    jobs, after = _jobs_and_deliveries(roster, notice_id)
    assert after == {**found, third: "sent"}
    assert [(job.payload["resident_id"], job.due_at - NOW) for job in jobs] == [
        (first, timedelta(0)), (second, timedelta(minutes=1))]  # queued from the rerun's time (the rest is due)


def test_many_households_are_scheduled_in_pages_each_once(store: TicketStore, rules, monkeypatch):
    monkeypatch.setattr(notices, "BATCH", 700)  # SQLite: three INSERTs for 1,500 households
    rules = fast(rules, per_minute=600)
    with store.transaction() as s:
        s.execute(insert(Resident), [
            dict(project="default", openid=f"oMany{n:05d}", room=f"{n % 9 + 1}栋{n % 4 + 1}单元{n // 36 + 1}{n % 3 + 1:02d}",
                 name="王五", customer_type="individual", property_use="residential", occupancy="occupied", tags=[],
                 created_at=NOW, updated_at=NOW, bound_at=NOW, subscribed=n % 10 != 0, last_message_at=NOW)
            for n in range(1_500)])
    with store.transaction() as s:
        notice = notices.compose(s, rules, kind="outage", title="停水", body="水箱清洗。", buildings=("1栋", "2栋", "3栋"),
                                 starts_at=OUTAGE_START, ends_at=OUTAGE_END, actor="staff:wang", now=NOW)
        wanted = [r.id for r in notices.recipients(s, notice)]
        assert notices.schedule(s, rules, notice, NOW) == (len(wanted), 0)
        assert notices.preview(s, rules, notice).recipients == len(wanted)
        notice_id = notice.id
    assert 400 < len(wanted) < 500  # 3 of the 9 buildings, without the unfollowed tenth
    with store.transaction() as s:
        assert notices.schedule(s, rules, s.get(ResidentNotice, notice_id), NOW) == (0, len(wanted))
        dues = list(s.execute(select(Job.due_at).order_by(Job.due_at)).scalars())
        keys = s.execute(select(func.count(), func.count(Job.idempotency_key.distinct()))).one()
    jobs, found = _jobs_and_deliveries(store, notice_id)
    assert sorted(found) == sorted(wanted) and tuple(keys) == (len(wanted), len(wanted))
    assert [job.payload["resident_id"] for job in jobs] == wanted  # in the recipients' order
    assert {b - a for a, b in zip(dues, dues[1:])} == {timedelta(seconds=0.1)}
