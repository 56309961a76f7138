"""A resident's rights (issue 12, item 13): `python -m bot residents export|erase`.

The export must hold everything about the resident; after the erasure no personal value of
theirs may be found in any table of the store or in the assistant's conversation store,
while case numbers, kinds and times remain, other residents are untouched, and both
requests are in the audit table.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.app.schema import metadata
from bot.assistant.tracker import SqlTrackerMemory
from bot.cases import notices, surveys
from bot.cases.resident_rights import Request, RightsError, erase_resident, export_resident
from bot.cases.tickets import open_repair_ticket
from bot.channels.wechat import inbound
from bot.channels.wechat.delivery import WeChatResidentChannel
from bot.core.company import Company
from bot.db import queue
from bot.db.models import BindingAttempt, Job, NoticeDelivery, PrivacyRequest, Resident, ResidentNotice, Ticket
from bot.settings import PROJECT_ROOT
from tests.unit.test_retention import RASA_EVENTS_DDL, epoch

NOW = datetime(2026, 11, 25, 2, 0)
OPENID, NEIGHBOUR = "oRightsPerson0000000000001", "oRightsNeighbour00000000002"
PERSONAL = (OPENID, "王小明", "13812345678", "3栋2单元501", "我家厨房水管漏水", "每天晚上八点后在家", "师傅态度很好就是来晚了")


def seed(store, rules, tracker: SqlTrackerMemory) -> str:  # type: ignore[no-untyped-def]
    """A resident with a file, a case, a survey answer, messages both ways, a failed binding,
    a pending job and a conversation; and a neighbour with a case of their own."""
    with store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid=OPENID, description="我家厨房水管漏水", room="3栋2单元501",
                                    visit_time="每天晚上八点后在家", channel="wechat", now=NOW)
        ticket.resident.name, ticket.resident.phone = "王小明", "13812345678"
        survey = surveys.callback_survey_for(s, ticket, "done", NOW)
        survey.comment = "师傅态度很好就是来晚了"
        queue.enqueue(s, kind=queue.RESIDENT_MESSAGE, project=ticket.project, due_at=NOW + timedelta(hours=1),
                      key="staff-words", now=NOW, max_attempts=3, ticket_id=ticket.id,
                      payload={"text": "王先生您好", "openid": OPENID})
        s.add(BindingAttempt(openid=OPENID, room="3栋2单元502", outcome="mismatch", at=NOW))
        open_repair_ticket(s, rules, openid=NEIGHBOUR, description="楼道灯不亮", room="3栋2单元601",
                           visit_time=None, channel="wechat", now=NOW)
        number = ticket.number
    stored = inbound.record_inbound(store, dedupe_key="m1", openid=OPENID, msg_type="text", event=None,
                                    content="我家厨房水管漏水，电话13812345678", media=None, now=NOW)
    inbound.record_outbound(store, openid=OPENID, inbound_id=stored.id, content="王先生您好，已为您登记", status="sent")
    with tracker.engine.begin() as connection:
        connection.exec_driver_sql(RASA_EVENTS_DDL[tracker.engine.dialect.name])
        for sender, words in ((OPENID, "我家厨房水管漏水"), (NEIGHBOUR, "楼道灯不亮")):
            data = json.dumps({"event": "user", "text": words, "timestamp": epoch(NOW)}, ensure_ascii=False)
            connection.exec_driver_sql("INSERT INTO events (sender_id, type_name, timestamp, data) "
                                       f"VALUES ('{sender}', 'user', {epoch(NOW)}, '{data}')")
    return number


def everything_stored(store, tracker: SqlTrackerMemory) -> str:  # type: ignore[no-untyped-def]
    """Every row of every table (ours and the tracker's), as one text to search."""
    rows = []
    with store.engine.connect() as connection:
        for table in metadata.sorted_tables:
            rows += [repr(tuple(row)) for row in connection.execute(table.select())]
    with tracker.engine.connect() as connection:
        rows += [repr(tuple(row)) for row in connection.exec_driver_sql("SELECT * FROM events")]
    return "\n".join(rows)


@pytest.fixture
def tracker(store):  # type: ignore[no-untyped-def]
    memory = SqlTrackerMemory(store.url)
    yield memory
    memory.dispose()


def request(reason: str = "住户本人书面申请") -> Request:
    return Request(requested_by="客服张三", os_user="ops", reason=reason, now=NOW + timedelta(days=1))


async def test_export_holds_everything_and_erase_leaves_no_personal_value(store, rules, tracker):
    number = seed(store, rules, tracker)
    channel = WeChatResidentChannel(None, store, Company.of(rules))  # type: ignore[arg-type] - logs only, nothing is sent
    exported = json.dumps(await export_resident(store, channel, tracker, OPENID, request()), ensure_ascii=False)
    assert all(value in exported for value in PERSONAL) and number in exported
    assert "王先生您好，已为您登记" in exported and "楼道灯不亮" not in exported  # theirs only

    assert all(value in everything_stored(store, tracker) for value in PERSONAL)
    counts = await erase_resident(store, channel, tracker, OPENID, request())
    assert counts["conversation events"] == 1 and counts["inbound messages"] == 1 and counts["residents"] == 1
    left = everything_stored(store, tracker)
    assert [value for value in PERSONAL if value in left] == []
    with store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        # What the company must keep: the case, its kind, status and times; no personal field.
        assert (ticket.kind, ticket.created_at, ticket.room, ticket.resident.openid) == ("repair", NOW, None, None)
        assert [e.action for e in ticket.events] and all(e.content == "" for e in ticket.events)
        assert {j.status for j in s.execute(select(Job).where(Job.ticket_id == ticket.id)).scalars()} <= \
            {"cancelled", "done"}  # nothing more goes to the erased resident
        neighbour = s.execute(select(Resident).where(Resident.openid == NEIGHBOUR)).scalar_one()
        assert neighbour.tickets[0].description == "楼道灯不亮"
        audit = s.execute(select(PrivacyRequest).order_by(PrivacyRequest.id)).scalars().all()
        assert [(a.action, a.requested_by, a.reason) for a in audit] == [("export", "客服张三", "住户本人书面申请"),
                                                                         ("erase", "客服张三", "住户本人书面申请")]
        assert all(OPENID not in a.subject and a.resident_ids == [ticket.resident_id] for a in audit)
    assert "楼道灯不亮" in left  # the neighbour's conversation stays


async def test_a_room_finds_its_residents_and_an_unknown_one_nobody(store, rules, tracker):
    seed(store, rules, tracker)
    channel = WeChatResidentChannel(None, store, Company.of(rules))  # type: ignore[arg-type]
    exported = await export_resident(store, channel, tracker, "3#2-501", request())  # another way to write the room
    assert [r["file"]["openid"] for r in exported["residents"]] == [OPENID]
    with pytest.raises(RightsError):
        await export_resident(store, channel, tracker, "9栋9单元909", request())


class DownMemory:
    async def erase(self, sender: str) -> int:
        raise ConnectionError("Rasa is down")


async def test_an_unreachable_assistant_store_erases_nothing_and_is_audited(store, rules, tracker):
    seed(store, rules, tracker)
    channel = WeChatResidentChannel(None, store, Company.of(rules))  # type: ignore[arg-type]
    with pytest.raises(RightsError, match="run the erasure again"):
        await erase_resident(store, channel, DownMemory(), OPENID, request())  # type: ignore[arg-type]
    assert all(value in everything_stored(store, tracker) for value in PERSONAL)  # nothing half-erased
    with store.transaction() as s:
        [audit] = s.execute(select(PrivacyRequest)).scalars().all()
        assert audit.action == "erase" and audit.outcome["failed"] == "ConnectionError"


def test_the_command_line_exports_to_a_private_file_and_erases_with_yes(sqlite_store, rules, tmp_path):
    tracker = SqlTrackerMemory(f"sqlite:///{tmp_path / 'tracker.db'}")
    seed(sqlite_store, rules, tracker)
    env = dict(os.environ, DATABASE_URL=sqlite_store.url, TRACKER_STORE_URL=tracker.engine.url.render_as_string(),
               WUYE_ENV="production")

    def bot(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", "residents", *argv], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    out = tmp_path / "export.json"
    done = bot("export", OPENID, "--by", "客服张三", "--reason", "住户申请", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o077 == 0  # personal data: readable by its owner only
    assert "13812345678" in out.read_text(encoding="utf-8") and "13812345678" not in done.stdout + done.stderr
    refused = bot("erase", OPENID, "--by", "客服张三", "--reason", "住户申请")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    erased = bot("erase", OPENID, "--by", "客服张三", "--reason", "住户申请", "--yes")
    assert erased.returncode == 0 and "1 residents" in erased.stdout, erased.stderr
    assert [v for v in PERSONAL if v in everything_stored(sqlite_store, tracker)] == []
    tracker.dispose()


async def test_notices_delivered_are_exported_and_erasure_keeps_only_which_reached_them(store, rules, tracker):
    seed(store, rules, tracker)
    with store.transaction() as s:
        person, neighbour = (s.execute(select(Resident).where(Resident.openid == who)).scalar_one()
                             for who in (OPENID, NEIGHBOUR))
        person.room, neighbour.room = "3栋2单元501", "3栋2单元601"
        for resident in (person, neighbour):
            resident.bound_at, resident.subscribed = NOW, True
        sent, failed, waiting = (notices.compose(s, rules, kind="reminder", title=title, body="请留意。",
                                                 actor="staff:1", now=NOW) for title in ("寒潮提醒", "电梯保养", "消防演练"))
        for notice in (sent, failed, waiting):
            assert notices.schedule(s, rules, notice, NOW) == (2, 0)  # the whole project: both households
        notices.record_delivery(s, sent.id, person.id, status=notices.DELIVERED, via="custom",
                                now=NOW + timedelta(minutes=5))
        notices.record_delivery(s, failed.id, person.id, status=notices.FAILED, now=NOW + timedelta(minutes=6),
                                error=f"errcode 43004: require subscribe, openid {OPENID}")
        person_id, neighbour_id, ids = person.id, neighbour.id, (sent.id, failed.id, waiting.id)
    channel = WeChatResidentChannel(None, store, Company.of(rules))  # type: ignore[arg-type]

    exported = await export_resident(store, channel, tracker, OPENID, request())
    [file] = exported["residents"]
    assert [(n["title"], n["kind"], n["status"], n["sent_at"]) for n in file["notices"]] == [
        ("寒潮提醒", "reminder", "sent", (NOW + timedelta(minutes=5)).isoformat()),
        ("电梯保养", "reminder", "failed", None), ("消防演练", "reminder", "pending", None)]
    assert file["notices"][0]["notice_sent_at"] == NOW.isoformat() and file["notices"][0]["via"] == "custom"
    with store.transaction() as s:
        [audit] = s.execute(select(PrivacyRequest)).scalars().all()
        assert audit.outcome["notices"] == 3

    counts = await erase_resident(store, channel, tracker, OPENID, request())
    assert counts["notice deliveries"] == 3
    assert OPENID not in everything_stored(store, tracker)  # the failure's text named them
    with store.transaction() as s:
        def copies(resident_id: int) -> list[tuple[int, str, datetime | None, str | None]]:
            return [(d.notice_id, d.status, d.sent_at, d.error) for d in s.execute(
                select(NoticeDelivery).where(NoticeDelivery.resident_id == resident_id)
                .order_by(NoticeDelivery.notice_id)).scalars()]

        # Which notices reached the household, and when, are kept; what was still to go is withdrawn.
        assert copies(person_id) == [(ids[0], "sent", NOW + timedelta(minutes=5), None), (ids[1], "failed", None, None),
                                     (ids[2], "cancelled", None, None)]
        assert [status for _, status, _, _ in copies(neighbour_id)] == ["pending"] * 3  # the neighbour's stand
        jobs = {j.idempotency_key: (j.status, j.payload) for j in s.execute(
            select(Job).where(Job.kind == queue.NOTICE_DELIVERY)).scalars()}
        assert [jobs[f"notice_delivery:{n}:{person_id}"] for n in ids] == [("cancelled", {})] * 3  # nothing more
        assert {jobs[f"notice_delivery:{n}:{neighbour_id}"][0] for n in ids} == {"pending"}
        assert {s.get(ResidentNotice, n).status for n in ids} == {"scheduled"}  # type: ignore[union-attr]
