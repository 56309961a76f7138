"""Benchmark of the managers' reports and of a notice to every household, on PostgreSQL at company scale.

Creates a throw-away PostgreSQL database, migrates it and fills it fast (COPY, and INSERT … SELECT
for the timeline rows no figure reads): households of `--projects` projects (p001…), `--cases`
cases over two calendar quarters (a realistic mix of kinds, tiers and statuses, deadlines met and
missed, reopened cases, explained closings, group complaints and their members, emergencies'
on-site events, escalations, 接单 events, `tier_reason` events on the raised complaints), callback
surveys with verdicts and scores, and an annual-survey campaign. Then it times, each `--repeats`
times in a transaction of its own:

  (a) kpis.kpis over every project for the quarter, (b) kpis.kpis_by_project,
  (c) complaint_analysis.analyse company-wide, (d) complaint_analysis.quarterly_report_for (what
  the worker runs at quarter end), (e) bot.console.reports.build_report (what the report page renders);

the SQL each runs is timed in the driver and the slowest statements are EXPLAIN ANALYZEd when the
target is missed. Then a notice to `--households` bound, following households of one project
across 40 buildings: notices.compose + notices.schedule timed, the jobs' due times checked to be
60/per_minute seconds apart, and the real worker (bot.worker.loop.Worker, WeChatResidentChannel)
run against a loopback fake WeChat API (tests/wechat_fakes.py) on a clock set to the due time of
delivery `--drain` : the deliveries a second it achieves, and that exactly the due ones were sent,
once each. Results go to results/reports-bench.md; the database is dropped at the end.

    python scripts/bench_reports.py [--cases 1000000] [--projects 100] [--households 20000] [--keep]

`--only notices` fills just the notice's project (its households, no cases: --cases 0 --projects 1),
skips the report timings and writes results/notices-bench.md (unless --out is given).

To measure the reports again without filling the database again: `--keep` keeps it (what was
generated is written into the database's comment), `--database NAME` measures a kept one (migrated
to head first, so a new migration is measured too; `--cases`/`--projects` as it was made with);
`--skip-notice` times the reports only.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import aiohttp
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import migrate  # noqa: E402
from bot.assistant.client import AssistantClient  # noqa: E402
from bot.cases import complaint_analysis, kpis, notices  # noqa: E402
from bot.cases.escalation import complaint_topic  # noqa: E402
from bot.channels.wechat.api import WeChatApi  # noqa: E402
from bot.channels.wechat.delivery import WeChatResidentChannel  # noqa: E402
from bot.channels.wechat.models import OutboundMessage  # noqa: E402
from bot.console.reports import build_report  # noqa: E402
from bot.core.clock import to_local, utcnow  # noqa: E402
from bot.core.company import Company, load_company  # noqa: E402
from bot.core.kinds import Priority, TicketKind, TicketStatus  # noqa: E402
from bot.core.lifecycle import OPEN_STATUS_VALUES  # noqa: E402
from bot.core.rules import TemplateMessage  # noqa: E402
from bot.db import queue  # noqa: E402
from bot.db.models import Job, JobStatus, NoticeDelivery, Resident  # noqa: E402
from bot.db.numbering import PREFIXES  # noqa: E402
from bot.db.store import TicketStore  # noqa: E402
from bot.settings import PROJECT_ROOT  # noqa: E402
from bot.worker.handlers import Context  # noqa: E402
from bot.worker.loop import Worker  # noqa: E402
from scripts.bench_console import ADMIN_URL, create_database, drop_database  # noqa: E402
from tests.wechat_fakes import APP_ID, APP_SECRET, FakeWeChatApi  # noqa: E402

Settings = tuple[tuple[str, str], ...]  # (name, value) of set_config calls in the transaction
RASA_TOKEN = "bench-reports-rasa-token"  # the worker refuses to start without one; no survey job runs here
NOTICE_BUILDINGS = 40
UNITS, DOORS = 4, 4
NOTICE_TEMPLATE = TemplateMessage("TPL_NOTICE", (("thing1", "{title}"), ("time2", "{period}"), ("thing3", "{summary}")))

# (kind, weight, [(priority, weight)], deadline hours by priority: None = no deadline)
KINDS: list[tuple[TicketKind, int, list[tuple[Priority | None, int]], dict[Priority | None, float | None]]] = [
    (TicketKind.REPAIR, 60, [(Priority.EMERGENCY, 6), (Priority.NORMAL, 94)],
     {Priority.EMERGENCY: 2, Priority.NORMAL: 48}),
    (TicketKind.COMPLAINT, 15, [(Priority.MAJOR, 5), (Priority.URGENT, 25), (Priority.GENERAL, 70)],
     {Priority.MAJOR: 24, Priority.URGENT: 48, Priority.GENERAL: 120}),
    (TicketKind.ENQUIRY, 15, [(None, 1)], {None: 24}),
    (TicketKind.SUGGESTION, 6, [(None, 1)], {None: None}),
    (TicketKind.PRAISE, 4, [(None, 1)], {None: None}),
]
REPAIRS = ["厨房水龙头一直滴水", "卫生间下水道堵了", "客厅的灯不亮了", "卧室门锁坏了，钥匙拧不动", "阳台窗户关不上了",
           "楼道声控灯坏了", "热水器打不着火", "天花板渗水", "空调外机漏水到楼下", "入户门门禁卡刷不开"]
# Complaints: most name a topic of the project's escalation.complaint_topics, the last two none (其他).
COMPLAINTS = ["楼道一直没人打扫，垃圾堆了好几天", "晚上楼下装修噪音太大", "地下车库有车乱停占了我的车位", "电梯这周坏了三次",
              "垃圾站太臭了，夏天受不了", "保安态度很差，陌生人随便进", "小区里有人遛狗不拴绳", "物业费乱收，账目不公开",
              "绿化带的树好久没修剪了", "楼上电钻声从早响到晚", "水压太低，早上经常没水", "晚上突然停电也不通知",
              "前台工作人员推诿扯皮", "报修了三次都说等等"]
DEMANDS = ["尽快处理", "安排保洁", "加强管理", "给个说法", "赔偿损失"]
OTHERS = {TicketKind.ENQUIRY: ["物业费怎么交", "停车月卡怎么办理", "装修需要什么手续", "快递柜在哪里", "什么时候停水"],
          TicketKind.SUGGESTION: ["建议在3栋门口加个快递架", "建议儿童游乐区加装遮阳棚", "建议晚上多开几盏路灯"],
          TicketKind.PRAISE: ["维修师傅很负责，点赞", "保洁阿姨非常辛苦，谢谢", "客服小王很耐心"]}
# What a raised complaint's tier_reason event says (bot.core.triage: label（“words”）, joined by ；).
SIGNALS = ["扬言向外投诉或曝光（“打12345”）", "扬言向外投诉或曝光（“找媒体”）", "多户受影响（“好多户”）", "多户受影响（“整栋”）",
           "多次反映未解决（“说了好几次”）", "人身安全（“差点摔倒”）", "涉及老人小孩等（“家里有老人”）",
           "持续影响或急需处理（“一直”）", "已取证（“拍了视频”）"]
GROUP_PLACES = ["地下车库", "小区南门", "中心花园"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
TAGS = [("独居老人", 3), ("空巢老人", 2), ("残疾人", 1), (None, 94)]
STAFF_PER_PROJECT = 8
VERDICTS = [("satisfied", 70), ("neutral", 15), ("dissatisfied", 10), ("unclear", 5)]
SCORE_OF = {"satisfied": (4, 5), "neutral": (3, 3), "dissatisfied": (1, 2)}
# Timeline rows no figure reads (replies, relayed words, notes, notifications), added in SQL.
FILLER = [("staff_reply", "staff", "console", "您好，师傅今天下午到，请保持电话畅通。"),
          ("relayed", "resident", "wechat", "好的，我下午在家。"),
          ("internal_note", "staff", "console", "住户反映多次，注意态度。"),
          ("notified", "system", "wechat", "已通知居民处理进度"),
          ("evidence", "resident", "wechat", "照片 1 张"),
          ("asked_again", "resident", "wechat", "怎么还没人来？")]
H = timedelta(hours=1)


# --- the database ------------------------------------------------------------------------------


def _connect(url: str) -> Any:
    import psycopg2

    parsed = make_url(url)
    return psycopg2.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                            dbname=parsed.database, password=parsed.password)


def _ts(value: datetime | None) -> str:
    return "\\N" if value is None else str(value)


def _opt(value: object) -> str:
    return "\\N" if value is None else str(value)


def copy_lines(conn: Any, table: str, columns: Sequence[str], lines: Iterable[str], chunk: int = 100_000) -> int:
    """COPY lines already in COPY's text format (tab-separated, \\N for NULL, no newline inside)."""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    count, buffer = 0, []
    with conn.cursor() as cur:
        for line in lines:
            buffer.append(line)
            count += 1
            if len(buffer) == chunk:
                cur.copy_expert(sql, io.StringIO("\n".join(buffer) + "\n"))
                buffer = []
        if buffer:
            cur.copy_expert(sql, io.StringIO("\n".join(buffer) + "\n"))
    return count


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _layout(count: int, buildings: int) -> list[str]:
    """`count` rooms spread over `buildings` buildings of 4 units and 4 doors a floor (3栋2单元1201)."""
    floors = max(1, math.ceil(count / (buildings * UNITS * DOORS)))
    rooms = []
    for n in range(count):  # round robin over the buildings, then the units, the doors, the floors
        building, rest = n % buildings, n // buildings
        unit, rest = rest % UNITS, rest // UNITS
        door, floor = rest % DOORS, rest // DOORS
        rooms.append(f"{building + 1}栋{unit + 1}单元{floor % floors + 1}{door + 1:02d}")
    return rooms


@dataclass
class Data:
    residents: int = 0
    notice_roster: int = 0
    cases: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    open_cases: int = 0
    complaints: dict[str, int] = field(default_factory=dict)  # period label -> residents' complaints received
    raised: int = 0  # complaints with a tier_reason event
    groups: int = 0
    members: int = 0
    reopened: int = 0
    events: int = 0
    surveys: int = 0
    answered: int = 0
    annual: int = 0
    scores: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def generate(url: str, company: Company, *, cases: int, households: int, period: kpis.Period,
             before: kpis.Period, now: datetime, seed: int) -> Data:
    """Every row of the report's tables; ids given here, sequences moved past them."""
    rng = random.Random(seed)
    data = Data()
    conn = _connect(url)
    codes = list(company.codes)
    notice_code = codes[0]
    weights = [rng.uniform(0.5, 1.5) for _ in codes]
    share = {code: w / sum(weights) for code, w in zip(codes, weights)}

    # Households: one project's roster is the notice's (all bound and following, 70 % inside WeChat's
    # 48-hour window, plus 5 % more who are not bound or unfollowed); the others about one household
    # for every 2.5 cases of the half-year, 80 % bound.
    started = time.perf_counter()
    roster: dict[str, list[tuple[int, str]]] = {}
    lines: list[str] = []
    next_id = 1
    for index, code in enumerate(codes):
        if code == notice_code:
            extra = max(1, households // 20)
            rooms = _layout(households + extra, NOTICE_BUILDINGS)
        else:
            count = max(50, round(cases * share[code] * 0.4))
            rooms = _layout(count, max(3, math.ceil(count / (UNITS * DOORS * 18))))
        for n, room in enumerate(rooms):
            created = now - timedelta(days=rng.uniform(30, 1500))
            if code == notice_code:
                bound = n < households or n % 2 == 0
                subscribed = n < households
            else:
                bound = rng.random() < 0.8
                subscribed = bound and rng.random() < 0.97
            chatted = now - timedelta(hours=rng.uniform(0.5, 47) if rng.random() < 0.7 else rng.uniform(49, 2000))
            updated = now - timedelta(days=rng.uniform(0, 300) if rng.random() < 0.7 else rng.uniform(370, 1400))
            updated = max(updated, created)
            tag = _pick(rng, TAGS)
            lines.append("\t".join((
                str(next_id), code, f"oRpt{next_id:08d}" if bound else "\\N", _ts(created if bound else None),
                rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))), f"139{next_id:08d}", room,
                "individual", "residential", "occupied" if rng.random() < 0.9 else "vacant",
                f'["{tag}"]' if tag else "[]", _ts(created), _ts(updated), _ts(created if bound else None),
                "t" if subscribed else "f", _ts(now - timedelta(days=3)) if bound and not subscribed else "\\N",
                _ts(chatted if bound else None))))
            roster.setdefault(code, []).append((next_id, room))
            next_id += 1
        if code == notice_code:
            data.notice_roster = len(rooms)
    data.residents = copy_lines(conn, "residents", [
        "id", "project", "openid", "selected_at", "name", "phone", "room", "customer_type", "property_use",
        "occupancy", "tags", "created_at", "updated_at", "bound_at", "subscribed", "unsubscribed_at",
        "last_message_at"], lines)
    del lines
    data.seconds["residents"] = time.perf_counter() - started

    # Cases, opened uniformly over the two quarters, numbered in the order they came in.
    started = time.perf_counter()
    zone = company.default.timezone
    span = (period.end - before.start).total_seconds()
    moments = sorted(rng.uniform(0, span) for _ in range(cases))
    projects = rng.choices(codes, weights, k=cases)
    kinds = rng.choices(range(len(KINDS)), [k[1] for k in KINDS], k=cases)
    staff = {code: [(f"staff:{i * 10 + k + 2}", f"{SURNAMES[(i + k) % len(SURNAMES)]}{'客服' if k % 2 else '师傅'}{k}")
                    for k in range(STAFF_PER_PROJECT)] for i, code in enumerate(codes)}
    topics = {code: company.rules(code) for code in codes}
    counters: dict[tuple[str, str], int] = {}
    groups: dict[str, list[Any]] = {}  # project -> [group id, members still to come, room, topic, last moment]
    ticket_lines: list[str] = []
    event_lines: list[str] = []
    survey_plans: list[tuple[int, str, int, datetime]] = []  # ticket, project, resident, resolved_at
    for ticket_id, (offset, code, kind_index) in enumerate(zip(moments, projects, kinds), start=1):
        kind, _, tiers, hours = KINDS[kind_index]
        priority = _pick(rng, tiers)
        sla = hours[priority]
        created = (before.start + timedelta(seconds=offset)).replace(microsecond=0)
        resident_id: int | None
        resident_id, room = rng.choice(roster[code])
        demand = rng.choice(DEMANDS) if kind is TicketKind.COMPLAINT else None
        parent_id: int | None = None
        topic: str | None = None
        if kind is TicketKind.REPAIR:
            description = rng.choice(REPAIRS)
        elif kind is TicketKind.COMPLAINT:
            description = rng.choice(COMPLAINTS)
            group = groups.get(code)
            if group is not None and (group[1] <= 0 or created - group[4] > timedelta(days=3)):
                groups.pop(code)
                group = None
            if group is None and rng.random() < 0.004:  # a group case (群诉): no resident, a place
                resident_id, room = None, rng.choice(GROUP_PLACES + [f"{rng.randint(1, 5)}栋"])
                groups[code] = [ticket_id, rng.randint(3, 8), room, None, created]
                data.groups += 1
            elif group is not None and rng.random() < 0.5:  # one of the households of a group case
                parent_id, description = group[0], COMPLAINTS[2]
                group[1] -= 1
                data.members += 1
            if rng.random() < 0.7:  # the stored topic; older complaints without one are read from the words
                topic = complaint_topic(f"{description} {demand}", topics[code])
            if resident_id is None:
                groups[code][3] = topic
        else:
            description = rng.choice(OTHERS[kind])
        local_day = f"{to_local(created, zone):%Y%m%d}"
        key = (PREFIXES[kind], local_day)
        counters[key] = counters.get(key, 0) + 1
        number = f"{key[0]}{local_day}-{counters[key]:04d}"
        data.by_kind[kind.value] += 1

        emergency = priority is Priority.EMERGENCY
        cancelled = rng.random() < 0.03  # withdrawn by the resident
        held = kind in (TicketKind.REPAIR, TicketKind.COMPLAINT) or (kind is TicketKind.ENQUIRY and rng.random() < 0.3)
        due = created + timedelta(hours=sla) if sla is not None else None
        final = created + timedelta(days=15) if kind is TicketKind.COMPLAINT and priority in (
            Priority.MAJOR, Priority.URGENT) else None
        first_feedback = created + 48 * H if kind is TicketKind.COMPLAINT else None
        holder = rng.choice(staff[code]) if held else None
        claimed = created + timedelta(minutes=rng.uniform(2, 90) if rng.random() < 0.9 else rng.uniform(90, 600)) \
            if held else None
        if claimed is not None and (claimed > now or (cancelled and rng.random() < 0.5)):
            claimed, holder = None, None
        # The cases that get a callback (kpis.callback_case): a resident's repairs and complaints, and
        # the enquiries a staff member took over.
        callback = resident_id is not None and (kind in (TicketKind.REPAIR, TicketKind.COMPLAINT) or holder is not None)
        events: list[tuple[datetime, str, str, str | None, str | None, str]] = []  # at, actor, action, from, to, what

        def ev(at: datetime, action: str, to: str | None = None, content: str = "", frm: str | None = None,
               actor: str | None = None) -> None:
            if at <= now:
                events.append((at, actor or (holder[1] if holder else "system"), action, frm, to, content))

        if kind is TicketKind.COMPLAINT and priority in (Priority.MAJOR, Priority.URGENT) and resident_id is not None:
            ev(created, "tier_reason", content="；".join(rng.sample(SIGNALS, rng.choice((1, 1, 2)))), actor="system")
            data.raised += 1
        if (kind is TicketKind.COMPLAINT and priority in (Priority.MAJOR, Priority.URGENT)) or \
                (kind is TicketKind.REPAIR and rng.random() < 0.08):
            ev(created + timedelta(minutes=rng.choice((0, 30))), "escalated", content="已通知值班主管", actor="system")
        if claimed is not None:
            if rng.random() < 0.92:  # the others were handed over by 转派: claimed_at without an event
                ev(claimed, "claimed", content="接单")
            ev(claimed, "status", "accepted", frm="new")

        # How long the work takes: mostly within the deadline, some late, a few very late.
        base = float(sla) if sla is not None else rng.uniform(24, 120)
        r = rng.random()
        took = base * (rng.uniform(0.1, 1.0) if r < 0.86 else rng.uniform(1.0, 2.0) if r < 0.97 else
                       rng.uniform(2.0, 6.0))
        if emergency and not cancelled:  # the deadline is being there (到场); the repair itself takes hours
            arrive = created + timedelta(hours=2 * (rng.uniform(0.15, 1.0) if rng.random() < 0.9 else
                                                    rng.uniform(1.0, 2.5)))
            if rng.random() < 0.7:
                ev(arrive, "on_site", content="已到场")
            ev(arrive, "status", "in_progress", frm="accepted")
            took = (arrive - created).total_seconds() / 3600 + rng.uniform(1, 24)
        done = created + timedelta(hours=took)
        resolved: datetime | None = None
        closed: datetime | None = None
        if cancelled:
            closed = created + timedelta(hours=rng.uniform(0.2, 6))
            status = TicketStatus.CANCELLED if closed <= now else TicketStatus.NEW
            if status is TicketStatus.CANCELLED:
                ev(closed, "status", "cancelled", frm="new")
            else:
                closed = None
                cancelled = False
        elif rng.random() < 0.015 or done > now:  # still being worked on at the quarter's end
            status = TicketStatus.NEW if claimed is None else (
                TicketStatus.IN_PROGRESS if rng.random() < 0.7 else TicketStatus.ACCEPTED)
            if status is TicketStatus.IN_PROGRESS and not emergency and claimed is not None:
                ev(claimed + (now - claimed) * 0.3, "status", "in_progress", frm="accepted")
        elif held and rng.random() < 0.02:  # closed as outside the company's responsibility: no callback
            closed, status = done, TicketStatus.CLOSED
            ev(closed, "status", "closed", frm="accepted", content="非物业责任，已说明")
        else:
            if held and not emergency and claimed is not None:
                ev(claimed + (done - claimed) * 0.3, "status", "in_progress", frm="accepted")
            resolved, status = done, TicketStatus.RESOLVED
            ev(resolved, "status", "resolved", frm="in_progress")
            if callback and rng.random() < 0.04:  # reopened after the callback: a fresh deadline
                reopened = resolved + timedelta(hours=rng.uniform(12, 72))
                if reopened <= now:
                    ev(reopened, "status", "reopened", frm="resolved", content="回访不满意，重新处理")
                    data.reopened += 1
                    due = reopened + timedelta(hours=sla or 48)
                    again = reopened + timedelta(hours=base * rng.uniform(0.2, 1.3))
                    if again <= now:
                        resolved = again
                        ev(again, "status", "resolved", frm="reopened")
                    else:
                        resolved, status = None, TicketStatus.REOPENED
            if resolved is not None:
                closing = resolved + timedelta(hours=rng.uniform(24, 120))
                if closing <= now:
                    closed, status = closing, TicketStatus.CLOSED
                    ev(closed, "status", "closed", frm="resolved")
        if status.value in OPEN_STATUS_VALUES:
            data.open_cases += 1
        if resolved is not None and callback and resident_id is not None and rng.random() < 0.92:
            survey_plans.append((ticket_id, code, resident_id, resolved))
        last = max([created] + [e[0] for e in events])
        ticket_lines.append("\t".join((
            str(ticket_id), number, code, kind.value, status.value, _opt(priority.value if priority else None),
            _opt(room), description, _opt(demand), "明天上午" if kind is TicketKind.REPAIR else "\\N",
            "wechat" if rng.random() < 0.9 else "phone", _opt(resident_id), _opt(holder[1] if holder else None),
            _opt(holder[0] if holder else None), _ts(claimed), _opt(parent_id), _opt(topic), _ts(created), _ts(last),
            _ts(due), _ts(final), _ts(resolved + 72 * H if resolved and callback else None), _ts(first_feedback),
            _ts(resolved), _ts(closed))))
        for at, actor, action, frm, to, content in events:
            event_lines.append("\t".join((str(ticket_id), str(at), actor, "console" if actor != "system" else "wechat",
                                          action, _opt(frm), _opt(to), content, "ok")))
        if kind is TicketKind.COMPLAINT and resident_id is not None and status is not TicketStatus.CANCELLED:
            for label, part in ((period.label, period), (before.label, before)):
                if part.start <= created < part.end:
                    data.complaints[label] = data.complaints.get(label, 0) + 1
    data.cases = copy_lines(conn, "tickets", [
        "id", "number", "project", "kind", "status", "priority", "room", "description", "demand", "visit_time",
        "channel", "resident_id", "assignee", "assignee_id", "claimed_at", "parent_id", "topic", "created_at",
        "updated_at", "due_at", "final_due_at", "callback_due_at", "first_feedback_due_at", "resolved_at",
        "closed_at"], ticket_lines)
    del ticket_lines
    copy_lines(conn, "ticket_counters", ["prefix", "day", "last_value"],
               (f"{prefix}\t{day[:4]}-{day[4:6]}-{day[6:]}\t{last}" for (prefix, day), last in counters.items()))
    data.seconds["tickets"] = time.perf_counter() - started

    # Timelines: the rows the figures read (COPY), then every case's "created" row and a few
    # replies, notes and notifications each (INSERT … SELECT in the server).
    started = time.perf_counter()
    columns = ["ticket_id", "at", "actor", "channel", "action", "from_status", "to_status", "content", "result"]
    data.events = copy_lines(conn, "ticket_events", columns, event_lines)
    del event_lines
    actions, actors, channels, contents = (", ".join(f"'{row[i]}'" for row in FILLER) for i in range(4))
    with conn.cursor() as cur:
        cur.execute("INSERT INTO ticket_events (ticket_id, at, actor, channel, action, from_status, to_status, "
                    "content, result) SELECT id, created_at, 'resident', channel, 'created', NULL, 'new', '', '' "
                    "FROM tickets")
        data.events += cur.rowcount
        cur.execute(f"""
            INSERT INTO ticket_events (ticket_id, at, actor, channel, action, content, result)
            SELECT id, created_at + random() * (updated_at - created_at), (ARRAY[{actors}])[k],
                   (ARRAY[{channels}])[k], (ARRAY[{actions}])[k], (ARRAY[{contents}])[k], 'ok'
            FROM (SELECT t.id, t.created_at, t.updated_at, 1 + floor(random() * {len(FILLER)})::int AS k
                  FROM tickets t CROSS JOIN LATERAL generate_series(1, 1 + (t.id::bigint * 7919) % 5) AS g) AS s""")
        data.events += cur.rowcount
    data.seconds["ticket_events"] = time.perf_counter() - started

    # Callback surveys of the finished cases; an annual-survey campaign of the report's year.
    started = time.perf_counter()
    survey_lines: list[str] = []
    score_lines: list[str] = []
    dimensions = [key for key, _label in company.default.annual_survey_dimensions]
    survey_id = 0

    def scores_for(sid: int, verdict: str | None) -> None:
        low, high = SCORE_OF.get(verdict or "", (3, 5))
        for dimension in dimensions:
            score_lines.append(f"{sid}\t{dimension}\t{rng.randint(low, high)}")

    for ticket_id, code, resident_id, resolved in survey_plans:
        survey_id += 1
        sent = resolved + timedelta(hours=rng.uniform(0.2, 20) if rng.random() < 0.8 else rng.uniform(20, 60))
        answered: datetime | None = None
        verdict: str | None = None
        score: int | None = None
        if sent > now:
            state, sent_at = "scheduled", None
        else:
            sent_at, r = sent, rng.random()
            answered = sent + timedelta(hours=rng.uniform(0.05, 40)) if r < 0.62 else None
            if answered is not None and answered <= now:
                state, verdict = "answered", _pick(rng, VERDICTS)
                if verdict != "unclear":
                    score = rng.randint(*SCORE_OF[verdict])
                data.answered += 1
            else:
                answered = None
                state = "no_answer" if r < 0.9 else "sent"
        survey_lines.append("\t".join((str(survey_id), code, "callback", str(ticket_id), str(resident_id), "\\N", "[]",
                                       state, _ts(resolved), _ts(sent_at), "\\N", _ts(answered), _opt(verdict),
                                       _opt(score), "\\N")))
        if verdict is not None and verdict != "unclear" and rng.random() < 0.3:
            scores_for(survey_id, verdict)
    data.surveys = len(survey_plans)
    campaign = str(to_local(period.start, period.timezone).year)
    for code in codes:
        for resident_id, _room in roster[code]:
            if rng.random() >= 0.12:
                continue
            survey_id += 1
            sent = period.start + timedelta(days=rng.uniform(1, 30))
            answered = sent + timedelta(hours=rng.uniform(1, 200)) if rng.random() < 0.55 else None
            survey_lines.append("\t".join((str(survey_id), code, "annual", "\\N", str(resident_id), campaign,
                                           '["' + '", "'.join(dimensions) + '"]',
                                           "answered" if answered else "no_answer", _ts(sent), _ts(sent), "\\N",
                                           _ts(answered), "\\N", "\\N", "\\N")))
            data.annual += 1
            if answered is not None:
                scores_for(survey_id, _pick(rng, VERDICTS))
    copy_lines(conn, "surveys", ["id", "project", "kind", "ticket_id", "resident_id", "campaign", "dimensions",
                                 "status", "created_at", "sent_at", "reminded_at", "answered_at", "verdict",
                                 "overall_score", "comment"], survey_lines)
    data.scores = copy_lines(conn, "survey_scores", ["survey_id", "dimension", "score"], score_lines)
    survey_lines.clear()
    score_lines.clear()
    with conn.cursor() as cur:
        for table in ("residents", "tickets", "surveys"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    conn.commit()
    data.seconds["surveys"] = time.perf_counter() - started

    # What autovacuum would have done on a long-lived store: statistics and the visibility map.
    started = time.perf_counter()
    conn.autocommit = True
    with conn.cursor() as cur:
        for table in ("residents", "tickets", "ticket_events", "surveys", "survey_scores"):
            cur.execute(f"VACUUM (ANALYZE) {table}")
    data.seconds["vacuum analyze"] = time.perf_counter() - started
    conn.close()
    return data


def save_data(url: str, name: str, data: Data, generation: float, args: argparse.Namespace,
              period: kpis.Period) -> None:
    """How the kept database was made, as its comment (read back by `--database`)."""
    conn = _connect(url)
    conn.autocommit = True
    try:
        made = {"cases": args.cases, "projects": args.projects, "households": args.households, "seed": args.seed,
                "period": period.label, "generation": generation, "seconds": data.seconds}
        with conn.cursor() as cur:
            cur.execute(f'COMMENT ON DATABASE "{name}" IS %s', (json.dumps(made, ensure_ascii=False),))
    finally:
        conn.close()


def load_data(url: str, name: str, args: argparse.Namespace, period: kpis.Period,
              before: kpis.Period) -> tuple[Data, float]:
    """A kept database's data counted again (and its generation time, when its comment has it)."""
    conn = _connect(url)
    data = Data()
    try:
        with conn.cursor() as cur:
            def one(sql: str, *params: Any) -> int:
                cur.execute(sql, params)
                return int(cur.fetchone()[0] or 0)

            cur.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,))
            row = cur.fetchone()
            made = json.loads(row[0]) if row and row[0] else {}
            if made and made["period"] != period.label:
                raise SystemExit(f"{name} was made for {made['period']}, not {period.label}")
            data.residents = one("SELECT count(*) FROM residents")
            data.notice_roster = one("SELECT count(*) FROM residents WHERE project = 'p001'")
            cur.execute("SELECT kind, count(*) FROM tickets GROUP BY kind")
            data.by_kind = Counter({kind: int(count) for kind, count in cur.fetchall()})
            data.cases = sum(data.by_kind.values())
            data.open_cases = one("SELECT count(*) FROM tickets WHERE status = ANY(%s)", list(OPEN_STATUS_VALUES))
            for part in (period, before):
                data.complaints[part.label] = one(
                    "SELECT count(*) FROM tickets WHERE kind = 'complaint' AND resident_id IS NOT NULL AND status <> "
                    "'cancelled' AND created_at >= %s AND created_at < %s", part.start, part.end)
            data.raised = one("SELECT count(*) FROM ticket_events WHERE action = 'tier_reason'")
            data.groups = one("SELECT count(*) FROM tickets WHERE kind = 'complaint' AND resident_id IS NULL")
            data.members = one("SELECT count(*) FROM tickets WHERE parent_id IS NOT NULL")
            data.reopened = one("SELECT count(*) FROM ticket_events WHERE action = 'status' AND to_status = 'reopened'")
            data.events = one("SELECT count(*) FROM ticket_events")
            data.surveys = one("SELECT count(*) FROM surveys WHERE kind = 'callback'")
            data.answered = one("SELECT count(*) FROM surveys WHERE kind = 'callback' AND status = 'answered'")
            data.annual = one("SELECT count(*) FROM surveys WHERE kind = 'annual'")
            data.scores = one("SELECT count(*) FROM survey_scores")
    finally:
        conn.close()
    data.seconds = dict(made.get("seconds", {}))
    if data.cases != args.cases or made.get("projects", args.projects) != args.projects:
        raise SystemExit(f"{name} has {data.cases:,} cases of {made.get('projects', '?')} projects, not "
                         f"{args.cases:,} of {args.projects}")
    return data, float(made.get("generation", 0.0))


# --- the reports -------------------------------------------------------------------------------


@dataclass
class Statements:
    """The SQL a call runs, timed in the driver, with the settings the transaction had changed by then
    (the report queries may set jit or work_mem for themselves with set_config(…, true))."""
    current: list[tuple[str, Any, float, Settings]] = field(default_factory=list)
    recording: bool = False
    settings: Settings = ()

    def attach(self, store: TicketStore) -> None:
        @event.listens_for(store.engine, "before_cursor_execute")
        def _before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(store.engine, "after_cursor_execute")
        def _after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if "set_config(" in statement:
                self._setting(statement, parameters)
                return
            if self.recording:
                self.current.append((statement, parameters, time.perf_counter() - conn.info["bench_started"],
                                     self.settings))

        @event.listens_for(store.engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            self.settings = ()

    def _setting(self, statement: str, parameters: Any) -> None:
        """set_config('jit', 'off', true) or set_config(%(name)s, %(value)s, true) with its parameters,
        or set_config('jit', %(v0)s, true) — several in one statement too."""
        params = parameters if isinstance(parameters, dict) else {}
        found = re.findall(r"set_config\('([a-z_]+)',\s*'([^']*)'", statement)
        found += [(name, str(params[key])) for name, key in
                  re.findall(r"set_config\('([a-z_]+)',\s*%\((\w+)\)s", statement) if key in params]
        if not found and "name" in params and "value" in params:
            found = [(str(params["name"]), str(params["value"]))]
        for name, value in found:
            self.settings = tuple((n, v) for n, v in self.settings if n != name) + ((name, value),)


@dataclass
class Timed:
    key: str
    name: str
    what: str
    seconds: list[float] = field(default_factory=list)
    sql_seconds: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    # statement -> (its worst time, that execution's parameters and settings, executions in all)
    slowest: dict[str, tuple[float, Any, Settings, int]] = field(default_factory=dict)
    result: Any = None


def time_call(store: TicketStore, statements: Statements, timed: Timed, call: Callable[[Any], object],
              repeats: int) -> None:
    for _ in range(repeats):
        statements.current = []
        statements.recording = True
        started = time.perf_counter()
        with store.transaction() as session:
            timed.result = call(session)
        elapsed = time.perf_counter() - started
        statements.recording = False
        timed.seconds.append(elapsed)
        timed.sql_seconds.append(sum(s for _, _, s, _ in statements.current))
        timed.statements.append(len(statements.current))
        for statement, params, seconds, settings in statements.current:
            worst = timed.slowest.get(statement, (0.0, None, (), 0))
            if seconds >= worst[0]:
                timed.slowest[statement] = (seconds, params, settings, worst[3] + 1)
            else:
                timed.slowest[statement] = (*worst[:3], worst[3] + 1)
        print(f"  ({timed.key}) {timed.name}: {elapsed:.2f} s ({len(statements.current)} statements, "
              f"SQL {timed.sql_seconds[-1]:.2f} s)", flush=True)


def measure_reports(url: str, company: Company, period: kpis.Period, before: kpis.Period, now: datetime,
                    repeats: int) -> tuple[list[Timed], dict[str, float]]:
    codes = list(company.codes)
    store = TicketStore(url)
    statements = Statements()
    statements.attach(store)
    calls: list[tuple[Timed, Callable[[Any], object]]] = [
        (Timed("a", "kpis.kpis", f"{len(codes)} projects together, {period.label}"),
         lambda s: kpis.kpis(s, codes, period, now)),
        (Timed("b", "kpis.kpis_by_project", f"each of {len(codes)} projects, {period.label}"),
         lambda s: kpis.kpis_by_project(s, codes, period, now)),
        (Timed("c", "complaint_analysis.analyse", f"company-wide, {period.label} beside {before.label}"),
         lambda s: complaint_analysis.analyse(s, codes, period, before, company.rules, now)),
        (Timed("d", "complaint_analysis.quarterly_report_for",
               f"every project and the company ({len(codes) + 1} reports), as the worker runs it at quarter end"),
         lambda s: complaint_analysis.quarterly_report_for(s, codes, period, before, company.rules, now)),
        (Timed("e", "bot.console.reports.build_report",
               "company-wide, public=False: what the report page renders (KPIs of the quarter, the previous one "
               "and 6 months, the analysis, per project, annual survey, staff workload)"),
         lambda s: build_report(s, company, codes, period, now, public=False)),
    ]
    extra: dict[str, float] = {}
    try:
        with store.transaction() as session:  # the pool's connection opened before any timing
            session.execute(select(1))
        for timed, call in calls:
            time_call(store, statements, timed, call, repeats)
        # The worker then writes the reports as JSON files: timed once, into a temporary folder.
        with store.transaction() as session:
            reports = complaint_analysis.quarterly_report_for(session, codes, period, before, company.rules, now)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            written = complaint_analysis.write_reports(reports, Path(folder), period)
            extra["json_bytes"] = float(sum(path.stat().st_size for path in written))
        extra["write_reports"] = time.perf_counter() - started
        extra["json_files"] = float(len(written))
    finally:
        store.dispose()
    return [timed for timed, _ in calls], extra


def explain(url: str, statement: str, params: Any, settings: Settings) -> list[str]:
    """The plan as the statement ran: with the settings its transaction had made."""
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            for name, value in settings:
                cur.execute("SELECT set_config(%s, %s, true)", (name, value))
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.rollback()
        conn.close()


def _one_line(statement: str, width: int = 160) -> str:
    """The statement on one line, a SELECT's column list (up to its own FROM, not a subquery's) elided."""
    text = " ".join(statement.split())
    if text.startswith("SELECT "):
        depth = 0
        for match in re.finditer(r"[()]| FROM ", text):
            token = match.group()
            depth += 1 if token == "(" else -1 if token == ")" else 0
            if token == " FROM " and depth == 0:
                if match.start() > 60:
                    text = "SELECT …" + text[match.start():]
                break
    return text if len(text) <= width else text[:width - 1] + "…"


# --- the notice --------------------------------------------------------------------------------


@dataclass
class NoticeRun:
    recipients: int = 0
    compose: float = 0.0
    schedule: float = 0.0
    commit: float = 0.0
    sql: dict[str, tuple[int, float]] = field(default_factory=dict)  # phase -> statements, their seconds
    worker_top: list[tuple[str, int, float]] = field(default_factory=list)  # statement, executions, seconds
    created: int = 0
    per_minute: int = 0
    spacing: timedelta = timedelta(0)
    gaps: Counter[timedelta] = field(default_factory=Counter)
    first_due: datetime | None = None
    last_due: datetime | None = None
    drain: int = 0
    clock: datetime | None = None
    worker_seconds: float = 0.0
    results: dict[str, int] = field(default_factory=dict)
    custom: int = 0
    template: int = 0
    second_run: dict[str, int] = field(default_factory=dict)
    checks: list[tuple[str, bool]] = field(default_factory=list)


def notice_company(company: Company) -> Company:
    """The notice's project with its `notice` template configured (outside the 48-hour window)."""
    first = company.default
    rules = dataclasses.replace(first, templates={**first.templates, "notice": NOTICE_TEMPLATE})
    return Company.of(rules, *[company.rules(code) for code in company.codes[1:]])


def measure_notice(url: str, company: Company, now: datetime, households: int, drain: int) -> NoticeRun:
    run = NoticeRun()
    rules = company.default
    run.per_minute = rules.notices.per_minute
    run.spacing = timedelta(seconds=60 / max(rules.notices.per_minute, 1))
    store = TicketStore(url)
    statements = Statements()
    statements.attach(store)

    def phase(name: str) -> None:
        """What the statements recorded since the last call took, under `name`."""
        run.sql[name] = (len(statements.current), sum(s for _, _, s, _ in statements.current))
        statements.current = []

    try:
        with store.transaction() as session:
            rooms = session.execute(select(Resident.room).where(Resident.project == rules.code).distinct()).scalars()
            buildings = sorted({str(room).split("栋")[0] + "栋" for room in rooms if room},
                               key=lambda b: int(b[:-1]))
        statements.current, statements.recording = [], True
        started = time.perf_counter()
        with store.transaction() as session:
            notice = notices.compose(
                session, rules, kind="outage", title="二次供水水箱清洗停水", body="为保障用水安全，小区二次供水水箱将清洗消毒，"
                "期间停水，请提前储水。如有特殊困难请联系物业客服。", buildings=buildings, starts_at=now + timedelta(days=2),
                ends_at=now + timedelta(days=2, hours=6), send_at=now, actor="staff:bench", now=now)
            session.flush()
            run.compose = time.perf_counter() - started
            phase("compose")
            started = time.perf_counter()
            run.created, _already = notices.schedule(session, rules, notice, now)
            session.flush()
            run.schedule = time.perf_counter() - started
            phase("schedule")
            notice_id = notice.id
            started = time.perf_counter()
        run.commit = time.perf_counter() - started
        statements.recording = False
        run.recipients = run.created
        print(f"  notice {notice_id} to {len(buildings)} buildings: compose {run.compose:.2f} s, schedule "
              f"{run.schedule:.2f} s, commit {run.commit:.2f} s, {run.created:,} deliveries", flush=True)

        with store.transaction() as session:
            dues = list(session.execute(select(Job.due_at).where(Job.kind == queue.NOTICE_DELIVERY)
                                        .order_by(Job.due_at, Job.id)).scalars())
        run.gaps = Counter(b - a for a, b in zip(dues, dues[1:]))
        run.first_due, run.last_due = dues[0], dues[-1]
        run.checks.append((f"{len(dues):,} jobs, one per delivery ({run.created:,})", len(dues) == run.created))
        run.checks.append((f"the first due at the send time ({now:%Y-%m-%d %H:%M:%S} UTC)", dues[0] == now))
        run.checks.append((f"every gap between consecutive due times is 60/{run.per_minute} s = "
                           f"{run.spacing.total_seconds():g} s", set(run.gaps) == {run.spacing}))
        assert set(run.gaps) == {run.spacing}, f"due spacing {run.gaps.most_common(5)} != {run.spacing}"
        assert len(dues) == run.created == households, (len(dues), run.created, households)

        run.drain = min(drain, len(dues))
        run.clock = dues[run.drain - 1]
        statements.current, statements.recording = [], True
        asyncio.run(_drain(store, company, run, notice_id, statements))
    finally:
        store.dispose()
    return run


async def _drain(store: TicketStore, company: Company, run: NoticeRun, notice_id: int,
                 statements: Statements) -> None:
    assert run.clock is not None
    clock = run.clock
    api = FakeWeChatApi()
    api_url = await api.start()
    try:
        async with aiohttp.ClientSession() as http:
            channel = WeChatResidentChannel(WeChatApi(http, store, api_url, APP_ID, APP_SECRET, timeout=10), store,
                                            company)
            ctx = Context(store, company, channel, AssistantClient(http, "http://127.0.0.1:9", "http://127.0.0.1:9",
                                                                   RASA_TOKEN))
            worker = Worker(ctx, "bench-reports-worker", clock=lambda: clock)
            started = time.perf_counter()
            run.results = await worker.run_due()
            run.worker_seconds = time.perf_counter() - started
            statements.recording = False
            totals: dict[str, list[float]] = {}
            for statement, _params, seconds, _settings in statements.current:
                totals.setdefault(statement, []).append(seconds)
            run.sql["worker"] = (len(statements.current), sum(s for _, _, s, _ in statements.current))
            run.worker_top = sorted(((s, len(t), sum(t)) for s, t in totals.items()), key=lambda i: -i[2])[:6]
            print(f"  worker at the due time of delivery #{run.drain:,}: {run.results} in {run.worker_seconds:.1f} s "
                  f"({run.drain / run.worker_seconds:.1f} deliveries/s)", flush=True)
            run.second_run = await worker.run_due()  # the same clock again: nothing more is due
    finally:
        await api.close()
    run.custom, run.template = len(api.messages), len(api.templates)
    sent_to = [m["touser"] for m in api.messages] + [t["touser"] for t in api.templates]
    with store.transaction() as session:
        due_openids = set(session.execute(
            select(Resident.openid).join(NoticeDelivery, NoticeDelivery.resident_id == Resident.id)
            .join(Job, Job.idempotency_key == func.concat(f"{queue.NOTICE_DELIVERY}:{notice_id}:",
                                                          NoticeDelivery.resident_id))
            .where(NoticeDelivery.notice_id == notice_id, Job.due_at <= clock)).scalars())
        done_due = session.execute(select(func.count()).where(
            Job.kind == queue.NOTICE_DELIVERY, Job.status == JobStatus.DONE.value, Job.due_at <= clock)).scalar()
        waiting = session.execute(select(func.count()).where(
            Job.kind == queue.NOTICE_DELIVERY, Job.status == JobStatus.PENDING.value, Job.attempts == 0,
            Job.due_at > clock)).scalar()
        counts = notices.delivery_counts(session, notice_id)
        keyed = session.execute(select(func.count(), func.count(OutboundMessage.idempotency_key.distinct())).where(
            OutboundMessage.status == "sent", OutboundMessage.idempotency_key.startswith(f"notice:{notice_id}:"))).one()
    n = run.drain
    total = run.created
    run.checks += [
        (f"the fake WeChat API received {len(sent_to):,} messages ({run.custom:,} customer-service, "
         f"{run.template:,} template) = the {n:,} due", len(sent_to) == n),
        ("each to a different resident (none twice)", len(set(sent_to)) == len(sent_to)),
        ("exactly the residents whose delivery was due (none early)", set(sent_to) == due_openids and
         len(due_openids) == n),
        (f"{done_due:,} due jobs done, {waiting:,} later ones still pending and never attempted "
         f"(of {total:,})", done_due == n and waiting == total - n),
        (f"delivery rows: {counts.get(notices.DELIVERED, 0):,} sent, {counts.get(notices.PENDING, 0):,} pending",
         counts.get(notices.DELIVERED, 0) == n and counts.get(notices.PENDING, 0) == total - n),
        (f"{keyed[0]:,} sent outbound rows with {keyed[1]:,} distinct keys", keyed[0] == keyed[1] == n),
        (f"run_due again at the same clock: {run.second_run or 'nothing'}", not run.second_run),
    ]


# --- the report --------------------------------------------------------------------------------


def code_state() -> str:
    """The commit measured, and the measured modules changed since (the working tree is what ran)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("diff", "--name-only", "HEAD", "--", "bot").split()
    return f"commit {commit}" + (f", with uncommitted changes to {', '.join(changed)}" if changed else "")


def server_version(url: str) -> str:
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return str(cur.fetchone()[0]).split()[0]
    finally:
        conn.close()


def _s(seconds: float) -> str:
    return f"{seconds:.2f}"


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S.%f")[:-5] if moment else "—"


def _span(first: datetime | None, last: datetime | None) -> float:
    return (last - first).total_seconds() if first and last else 0.0


def _sql_text(run: NoticeRun, phase: str) -> str:
    count, seconds = run.sql.get(phase, (0, 0.0))
    return f"{phase}: {count:,} statements, {seconds:.2f} s of SQL in the driver"


def _figure(kpi: kpis.Kpi) -> str:
    if kpi.value is None:
        return "—"
    if kpi.unit == "rate":
        return f"{kpi.value * 100:.1f} % ({kpi.numerator:,.0f}/{kpi.denominator:,.0f})"
    if kpi.unit == "count":
        return f"{kpi.value:,.0f}"
    return f"{kpi.value:.1f} {'min' if kpi.unit == 'minutes' else 'days'}"


def report(args: argparse.Namespace, data: Data, generation: float, period: kpis.Period, before: kpis.Period,
           now: datetime, timings: list[Timed], extra: dict[str, float], plans: dict[str, tuple[str, list[str]]],
           run: NoticeRun, load: tuple[float, float], setup: str) -> str:
    by = {t.key: t for t in timings}
    reports_met = max(by["d"].seconds) < args.target_report and max(by["e"].seconds) < args.target_report
    kinds_text = ", ".join(f"{kind} {count / data.cases:.0%}" for kind, count in data.by_kind.most_common())
    lines = [
        "# Managers' reports and notices at company scale (PostgreSQL)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {os.cpu_count()} CPUs (1-min load average "
        f"{load[0]:.2f} before the timings, {load[1]:.2f} after; this process and PostgreSQL make about 1) with "
        f"`scripts/bench_reports.py --cases {args.cases} --projects {args.projects} --households {args.households}"
        f"{f' --database {args.database}' if args.database else ''}{' --skip-notice' if args.skip_notice else ''}"
        f"{f' --repeats {args.repeats}' if args.repeats != 3 else ''}`: "
        f"{setup}; a throw-away database migrated to head, the modules called in-process as the worker and "
        "the console call them.",
        "",
        "## Data",
        "",
        f"{args.projects} projects (p001…p{args.projects:03d}: the default project's rules under each code), "
        f"{data.residents:,} households (p001: the notice's {data.notice_roster:,}, 40 buildings), "
        f"{data.cases:,} cases opened from {before.label} to the end of {period.label} ({kinds_text}; "
        f"{data.open_cases:,} still open at the quarter's end; {data.reopened:,} reopened; 3 % withdrawn; "
        "the work mostly done within the deadline, 14 % late, 3 % very late), "
        + ", ".join(f"{count:,} residents' complaints received in {label}" for label, count in data.complaints.items())
        + f", {data.raised:,} with a `tier_reason` event, {data.groups:,} group cases with {data.members:,} "
        f"member complaints; {data.events:,} timeline events; {data.surveys:,} callback surveys "
        f"({data.answered:,} answered with a verdict), {data.annual:,} annual surveys, {data.scores:,} dimension "
        "scores.",
        "",
        (f"Measured on the database an earlier run kept (`--database {args.database}`, migrated to head; the data "
         "above counted in it)" + (f", generated in {generation:.1f} s" if generation else "") + "."
         if args.database else
         f"Generated in {generation:.1f} s (COPY; the timeline rows no figure reads by INSERT … SELECT): "
         + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in data.seconds.items()) + "."),
        "",
        f"## The quarterly report ({period.label}, company-wide, now = the quarter-end job's time "
        f"{to_local(now, period.timezone):%Y-%m-%d %H:%M} local)",
        "",
        f"Each call {args.repeats} times, each in a transaction of its own (wall time of the call and its commit; "
        "\"SQL\" is the time the statements took in the driver, best run).",
        "",
        "| | call | what | best s | worst s | SQL s | statements |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in timings:
        best = min(range(len(t.seconds)), key=t.seconds.__getitem__)
        lines.append(f"| ({t.key}) | `{t.name}` | {t.what} | {_s(min(t.seconds))} | {_s(max(t.seconds))} | "
                     f"{_s(t.sql_seconds[best])} | {t.statements[best]} |")
    lines += [
        "",
        f"Writing the {int(extra.get('json_files', 0))} JSON files of (d) (`write_reports`): "
        f"{extra.get('write_reports', 0.0):.2f} s, {extra.get('json_bytes', 0.0) / 1024:.0f} KiB.",
        "",
        f"Target < {args.target_report:g} s for the company-wide quarterly report, (d) and (e): (d) worst "
        f"{_s(max(by['d'].seconds))} s, (e) worst {_s(max(by['e'].seconds))} s — "
        f"**{'met' if reports_met else 'missed'}**.",
        "",
        "Slowest statements (the worst single execution over the runs; \"n\": executions per run):",
        "",
        "| call | worst ms | n | statement |",
        "|---|---|---|---|",
    ]
    for key in ("d", "e"):
        t = by[key]
        for statement, (worst, _params, _settings, count) in sorted(t.slowest.items(), key=lambda i: -i[1][0])[:5]:
            lines.append(f"| ({key}) | {worst * 1000:.0f} | {count // len(t.seconds)} | "
                         f"`{_one_line(statement).replace('|', '/')}` |")
    figures = by["a"].result or []
    lines += ["", "The company-wide figures of (a), as a check that the data is realistic: "
              + "; ".join(f"{k.label} {_figure(k)}" for k in figures) + "."]
    for name, (statement, plan) in plans.items():
        lines += ["", f"### EXPLAIN (ANALYZE, BUFFERS): {name}", "", "<details><summary>the statement</summary>", "",
                  "```sql", statement, "```", "", "</details>", "", "```", *plan, "```"]
    return "\n".join(lines + ([] if args.skip_notice else notice_lines(args, data, run))) + "\n"


def notice_lines(args: argparse.Namespace, data: Data, run: NoticeRun) -> list[str]:
    """The report's section on the notice."""
    queued = run.compose + run.schedule + run.commit
    rate = run.drain / run.worker_seconds if run.worker_seconds else 0.0
    gap = run.spacing.total_seconds()
    return [
        "",
        f"## A notice to {run.recipients:,} households",
        "",
        f"An outage notice (停水) of p001 to its {NOTICE_BUILDINGS} buildings: {run.recipients:,} bound, following "
        f"household contacts (the roster's other {data.notice_roster - args.households:,} are not bound or unfollowed "
        f"and get none; 70 % inside WeChat's 48-hour window, the rest by the `notice` template). "
        f"`notices.compose` {_s(run.compose)} s + `notices.schedule` {_s(run.schedule)} s + commit "
        f"{_s(run.commit)} s = **{_s(queued)} s** for {run.created:,} delivery rows and {run.created:,} jobs — target "
        f"< {args.target_queue:g} s: **{'met' if queued < args.target_queue else 'missed'}**. "
        + _sql_text(run, "compose") + "; " + _sql_text(run, "schedule") + ".",
        "",
        f"Drain rate: `notices.per_minute` is {run.per_minute}, so the jobs are due {gap:g} s apart: from "
        f"{_clock(run.first_due)} to {_clock(run.last_due)} UTC ({_span(run.first_due, run.last_due):,.1f} s for the "
        f"whole notice); the {sum(run.gaps.values()):,} gaps between consecutive due times: "
        + ", ".join(f"{count:,} × {g.total_seconds():g} s" for g, count in run.gaps.most_common()) + ".",
        "",
        f"The real worker (`Worker.run_due`, batch 10, `WeChatResidentChannel` → `WeChatApi` → the loopback fake "
        f"WeChat API of tests/wechat_fakes.py) on a clock set to the due time of delivery #{run.drain:,}: "
        f"{run.results} in {run.worker_seconds:.1f} s = **{rate:.1f} deliveries a second** "
        f"(the configured rate asks for {run.per_minute / 60:g} a second: "
        f"{'the worker keeps up' if rate >= run.per_minute / 60 else 'the worker falls behind'}, "
        f"{rate / (run.per_minute / 60):.1f}× the rate); " + _sql_text(run, "worker")
        + f", {run.sql.get('worker', (0, 0.0))[0] / max(run.drain, 1):.1f} statements a delivery. Checked:",
        "",
        *[f"- {'✔' if ok else '✘'} {text}" for text, ok in run.checks],
        "", "The worker's statements by total time:", "", "| total ms | executions | mean ms | statement |",
        "|---|---|---|---|",
        *[f"| {total * 1000:.0f} | {count:,} | {total / count * 1000:.2f} | `{_one_line(sql).replace('|', '/')}` |"
          for sql, count, total in run.worker_top],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--households", type=int, default=20_000, help="the notice's households (project p001)")
    parser.add_argument("--drain", type=int, default=2_000, help="the worker runs at the due time of this delivery")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target-report", type=float, default=5.0, help="seconds, (d) and (e)")
    parser.add_argument("--target-queue", type=float, default=10.0, help="seconds, compose + schedule")
    parser.add_argument("--seed", type=int, default=20261001)
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL server (a database to connect to)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    parser.add_argument("--database", help="measure this database kept by an earlier --keep run (not filled again, "
                        "not dropped)")
    parser.add_argument("--skip-notice", action="store_true", help="the reports only, no notice")
    parser.add_argument("--out", type=Path, default=None, help="results/reports-bench.md (notices-bench.md)")
    parser.add_argument("--only", choices=["notices"], help="just the notice: no cases, no report timings")
    args = parser.parse_args()
    if args.only == "notices":
        args.cases, args.projects = 0, 1
    args.out = args.out or PROJECT_ROOT / "results" / ("notices-bench.md" if args.only else "reports-bench.md")

    base = load_company(PROJECT_ROOT / "project" / "default.yml").default
    company = Company.of(*[dataclasses.replace(base, code=f"p{i:03d}", name=f"项目{i}")
                           for i in range(1, args.projects + 1)])
    zone = company.default.timezone
    period = kpis.previous(kpis.quarter_of(to_local(utcnow(), zone).date(), zone))  # the last full quarter
    before = kpis.previous(period)
    now = period.end + timedelta(hours=4)  # 04:00 local on the next quarter's first day: the worker's job
    code = code_state()  # the modules were imported from this working tree when the run started
    if args.database:
        name, url = args.database, make_url(args.admin_url).set(database=args.database).render_as_string(
            hide_password=False)
    else:
        name, url = create_database(args.admin_url)
    print(f"database {name}; {period.label} beside {before.label}; {code}", flush=True)
    try:
        migrate.upgrade(url)
        started = time.perf_counter()
        if args.database:
            data, generation = load_data(url, name, args, period, before)
        else:
            data = generate(url, company, cases=args.cases, households=args.households, period=period,
                            before=before, now=now, seed=args.seed)
            generation = time.perf_counter() - started
            if args.keep:
                save_data(url, name, data, generation, args, period)
        print(f"{'reused' if args.database else 'generated'} {data.cases:,} cases, {data.events:,} events, "
              f"{data.surveys + data.annual:,} surveys, {data.residents:,} households in {generation:.1f} s: "
              f"{data.seconds}", flush=True)
        load_before = os.getloadavg()[0]
        if args.only == "notices":
            run = measure_notice(url, notice_company(company), now, args.households, args.drain)
            text = notice_report(args, data, run, f"PostgreSQL {server_version(url)} at 127.0.0.1 (default settings), "
                                 f"{code}", (load_before, os.getloadavg()[0]))
            return _write(args, text, run)
        timings, extra = measure_reports(url, company, period, before, now, args.repeats)
        plans: dict[str, tuple[str, list[str]]] = {}
        by = {t.key: t for t in timings}
        missed = max(by["d"].seconds) >= args.target_report or max(by["e"].seconds) >= args.target_report
        ranked = sorted(((s, v) for t in (by["d"], by["e"]) for s, v in t.slowest.items()), key=lambda i: -i[1][0])
        seen: set[str] = set()
        for statement, (worst, params, settings, _count) in ranked:
            if statement in seen:
                continue
            seen.add(statement)
            changed = ", ".join(f"{n} = {v}" for n, v in settings)
            title = f"{worst * 1000:.0f} ms{f' (with {changed}, as the module sets them)' if settings else ''}: " \
                    f"`{_one_line(statement, 100)}`"
            print(f"  EXPLAIN {title}", flush=True)
            plans[title] = (" ".join(statement.split()), explain(url, statement, params, settings))
            if len(plans) >= (3 if missed else 1):
                break
        run = NoticeRun() if args.skip_notice else measure_notice(url, notice_company(company), now, args.households,
                                                                 args.drain)
        setup = f"PostgreSQL {server_version(url)} at 127.0.0.1 (default settings), {code}"
        text = report(args, data, generation, period, before, now, timings, extra, plans, run,
                      (load_before, os.getloadavg()[0]), setup)
    finally:
        if args.keep or args.database:
            print(f"kept: {url} (--database {name})")
        else:
            drop_database(args.admin_url, name)
    return _write(args, text, run)


def notice_report(args: argparse.Namespace, data: Data, run: NoticeRun, setup: str, load: tuple[float, float]) -> str:
    """`--only notices`: the notice's section alone."""
    return "\n".join([
        "# A notice at company scale (PostgreSQL)", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {os.cpu_count()} CPUs (1-min load average "
        f"{load[0]:.2f} before, {load[1]:.2f} after) with `scripts/bench_reports.py --only notices --households "
        f"{args.households}`: {setup}; {data.residents:,} households of p001 (40 buildings), no cases.",
        *notice_lines(args, data, run)]) + "\n"


def _write(args: argparse.Namespace, text: str, run: NoticeRun) -> int:
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(ok for _text, ok in run.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
