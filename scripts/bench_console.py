"""Latency benchmark of the staff console on PostgreSQL at production scale.

Creates a throw-away PostgreSQL database, migrates it, fills it by COPY with households of
two projects, cases (a realistic mix of kinds, tiers and statuses: most closed, about 8 %
open, deadlines spread around now) and their timelines, then starts the real staff app
(`create_staff_app`, development settings) in-process on loopback, signs a staff member in
through the login form and times the console's pages from the client: the queue's first
page, the overdue view, a room search, a deep keyset page, case pages of open cases and the
htmx rows refresh. Each time is the wall time of one request on loopback (server time plus
the loopback round trip and the client's reading of the body); the SQL statements each
request runs are timed too, and the slowest query of the queue pages and the case page is
EXPLAIN ANALYZEd. Results go to results/console-bench.md; the database is dropped at the end.

    python scripts/bench_console.py [--cases 100000] [--events-per-case 10] [--requests 200] [--keep]
"""
from __future__ import annotations

import argparse
import asyncio
import html
import io
import os
import random
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote

import aiohttp
from aiohttp import web
from sqlalchemy import event
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import migrate  # noqa: E402
from bot.app.gateway import create_staff_app  # noqa: E402
from bot.cases.sign_in import set_password  # noqa: E402
from bot.cases.staff_directory import add_staff  # noqa: E402
from bot.console.session import STORE  # noqa: E402
from bot.core.clock import to_local, utcnow  # noqa: E402
from bot.core.company import Company, load_company  # noqa: E402
from bot.core.kinds import Priority, TicketKind, TicketStatus  # noqa: E402
from bot.core.lifecycle import OPEN_STATUS_VALUES  # noqa: E402
from bot.db.numbering import PREFIXES  # noqa: E402
from bot.db.store import TicketStore  # noqa: E402
from bot.settings import PROJECT_ROOT, Settings  # noqa: E402

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
LOGIN, PASSWORD = "bench", "bench-console-password"
PROJECTS = (("default", 2), ("binjiang", 1))  # code, weight (households and cases)
OPEN_SHARE = 0.08
HISTORY_DAYS = 730  # closed cases were opened over the last two years

# (kind, weight, [(priority, weight)], deadline in hours or None)
KINDS: list[tuple[TicketKind, int, list[tuple[Priority | None, int]], dict[Priority | None, float | None]]] = [
    (TicketKind.REPAIR, 60, [(Priority.EMERGENCY, 6), (Priority.NORMAL, 94)],
     {Priority.EMERGENCY: 2, Priority.NORMAL: 48}),
    (TicketKind.COMPLAINT, 15, [(Priority.MAJOR, 5), (Priority.URGENT, 25), (Priority.GENERAL, 70)],
     {Priority.MAJOR: 24, Priority.URGENT: 48, Priority.GENERAL: 120}),
    (TicketKind.ENQUIRY, 15, [(None, 1)], {None: 24}),
    (TicketKind.SUGGESTION, 6, [(None, 1)], {None: None}),
    (TicketKind.PRAISE, 4, [(None, 1)], {None: None}),
]
OPEN_STATUSES = [(TicketStatus.NEW, 25), (TicketStatus.ACCEPTED, 25), (TicketStatus.IN_PROGRESS, 40),
                 (TicketStatus.REOPENED, 10)]
DONE_STATUSES = [(TicketStatus.CLOSED, 93), (TicketStatus.RESOLVED, 3), (TicketStatus.CANCELLED, 4)]
DESCRIPTIONS = {
    TicketKind.REPAIR: ["厨房水龙头一直滴水", "卫生间下水道堵了", "客厅的灯不亮了", "卧室门锁坏了，钥匙拧不动",
                        "阳台窗户关不上了", "楼道声控灯坏了", "热水器打不着火", "天花板渗水，电话13812345678",
                        "空调外机漏水到楼下", "入户门门禁卡刷不开"],
    TicketKind.COMPLAINT: ["楼道一直没人打扫", "晚上楼下装修噪音太大", "地下车库有车乱停占了我的车位",
                           "电梯这周坏了三次", "垃圾站太臭了，夏天受不了", "保安态度很差", "小区里有人遛狗不拴绳"],
    TicketKind.ENQUIRY: ["物业费怎么交", "停车月卡怎么办理", "装修需要什么手续", "快递柜在哪里", "什么时候停水"],
    TicketKind.SUGGESTION: ["建议在3栋门口加个快递架", "建议儿童游乐区加装遮阳棚", "建议晚上多开几盏路灯"],
    TicketKind.PRAISE: ["维修师傅很负责，点赞", "保洁阿姨非常辛苦，谢谢", "客服小王很耐心"],
}
DEMANDS = ["尽快处理", "安排保洁", "加强管理", "给个说法", "赔偿损失"]
VISIT_TIMES = ["明天上午", "今天下午三点以后", "随时都可以", "周六上午十点", "晚上七点后"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
TAGS = [("独居老人", 3), ("空巢老人", 2), ("残疾人", 1), (None, 94)]
COLLEAGUES = [f"{s}{r}" for s, r in zip("赵钱孙李周吴郑王冯陈褚卫", ["客服", "师傅"] * 6)]
# What a timeline holds besides its "created" row: action, actor kind, channel, content.
EVENTS = [
    ("claimed", "staff", "console", "接单"),
    ("staff_reply", "staff", "console", "您好，师傅今天下午到，请保持电话畅通。"),
    ("relayed", "resident", "wechat", "好的，我下午在家。"),
    ("internal_note", "staff", "console", "住户反映多次，注意态度。"),
    ("on_site", "staff", "console", "已到现场"),
    ("expected_completion", "staff", "console", "配件需要订购，预计后天完成"),
    ("notified", "system", "wechat", "已通知居民处理进度"),
    ("urgency", "system", "wechat", "判断：一般"),
    ("tier_reason", "system", "wechat", "未涉及人身安全"),
    ("evidence", "resident", "wechat", "照片 1 张"),
    ("asked_again", "resident", "wechat", "怎么还没人来？"),
    ("survey_answer", "resident", "wechat", "5分，满意"),
]


# Not in the migrations: the queue's order as an index of the open cases alone, covering the tabs'
# counts. With it the first page reads 51 index entries instead of sorting every open case.
PROPOSED_INDEX = (
    "CREATE INDEX ix_tickets_open_queue ON tickets ((coalesce(due_at, '9999-12-31 00:00:00'::timestamp)), id) "
    "INCLUDE (project, due_at, assignee_id) WHERE status IN ("
    + ", ".join(f"'{status}'" for status in OPEN_STATUS_VALUES) + ")")


# --- the database ------------------------------------------------------------------------------


def _admin_connection(admin_url: str):  # type: ignore[no-untyped-def]
    import psycopg2

    url = make_url(admin_url)
    conn = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, dbname=url.database,
                            password=url.password)
    conn.autocommit = True
    return conn


def create_database(admin_url: str) -> tuple[str, str]:
    name = f"wuye_bench_{uuid.uuid4().hex[:10]}"
    conn = _admin_connection(admin_url)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return name, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    conn = _admin_connection(admin_url)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def _pick(rng: random.Random, weighted: list[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _cell(value: object) -> str:
    """One value of COPY's text format (our values hold no tab, newline or backslash)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat(" ")
    return str(value)


def copy_rows(conn: Any, table: str, columns: list[str], rows: Iterable[tuple[object, ...]],
              chunk: int = 50_000) -> int:
    count = 0
    buffer = io.StringIO()
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with conn.cursor() as cur:
        for row in rows:
            buffer.write("\t".join(_cell(v) for v in row))
            buffer.write("\n")
            count += 1
            if count % chunk == 0:
                buffer.seek(0)
                cur.copy_expert(sql, buffer)
                buffer = io.StringIO()
        buffer.seek(0)
        cur.copy_expert(sql, buffer)
    return count


@dataclass
class Data:
    cases: int = 0
    open_cases: int = 0
    events: int = 0
    residents: int = 0
    by_view: dict[str, int] = field(default_factory=dict)
    open_numbers: list[str] = field(default_factory=list)
    open_rooms: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _rooms(rng: random.Random, count: int) -> list[str]:
    units, floors, doors = 4, 26, 4
    buildings = max(3, count * 3 // (2 * units * floors * doors) + 1)
    chosen = rng.sample(range(buildings * units * floors * doors), count)
    rooms = []
    for n in chosen:
        building, rest = divmod(n, units * floors * doors)
        unit, rest = divmod(rest, floors * doors)
        floor, door = divmod(rest, doors)
        rooms.append(f"{building + 1}栋{unit + 1}单元{floor + 1}{door + 1:02d}")
    return rooms


def generate(url: str, company: Company, *, cases: int, events_per_case: int, residents: int, now: datetime,
             seed: int, bench_actor: str, proposed_index: bool = False) -> Data:
    """Households, cases and timelines by COPY; ids given here, sequences moved past them."""
    import psycopg2

    rng = random.Random(seed)
    data = Data()
    parsed = make_url(url)
    conn = psycopg2.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                            dbname=parsed.database, password=parsed.password)
    weights = sum(w for _, w in PROJECTS)

    # Households: rooms unique within a project, ~80 % bound to a WeChat openid.
    started = time.perf_counter()
    households: dict[str, list[tuple[int, str]]] = {}
    resident_rows = []
    next_id = 1
    for code, weight in PROJECTS:
        share = residents * weight // weights if code != PROJECTS[-1][0] else residents - (next_id - 1)
        for room in _rooms(rng, share):
            created = now - timedelta(days=rng.uniform(30, 1500))
            bound = rng.random() < 0.8
            tag = _pick(rng, TAGS)
            resident_rows.append((
                next_id, code, f"oBench{next_id:08d}" if bound else None, created if bound else None,
                rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))), f"139{next_id:08d}", room,
                "individual" if rng.random() < 0.97 else "company", "residential" if rng.random() < 0.95 else
                "non_residential", _pick(rng, [("occupied", 85), ("vacant", 10), ("decorating", 5)]),
                f'["{tag}"]' if tag else "[]", created, created, created if bound else None, bound, None,
                now - timedelta(days=rng.uniform(0, 60)) if bound else None))
            households.setdefault(code, []).append((next_id, room))
            next_id += 1
    data.residents = copy_rows(conn, "residents", [
        "id", "project", "openid", "selected_at", "name", "phone", "room", "customer_type", "property_use",
        "occupancy", "tags", "created_at", "updated_at", "bound_at", "subscribed", "unsubscribed_at",
        "last_message_at"], resident_rows)
    del resident_rows
    data.seconds["residents"] = time.perf_counter() - started

    # Cases: decided first (kind, tier, status, times), numbered in the order they were opened.
    started = time.perf_counter()
    zone = company.rules("default").timezone
    plans = []
    for _ in range(cases):
        code = rng.choices([c for c, _ in PROJECTS], [w for _, w in PROJECTS])[0]
        kind, _, tiers, hours = rng.choices(KINDS, [k[1] for k in KINDS])[0]
        priority = _pick(rng, tiers)
        sla = hours[priority]
        is_open = rng.random() < OPEN_SHARE
        status = _pick(rng, OPEN_STATUSES if is_open else DONE_STATUSES)
        if is_open:
            due = now + timedelta(hours=rng.uniform(-24, 96)) if sla is not None else None
            latest = now - timedelta(minutes=rng.uniform(5, 600))
            created = min(latest, due - timedelta(hours=sla)) if due is not None and sla is not None else latest
            created = max(created, now - timedelta(days=14))
        else:
            created = now - timedelta(days=rng.uniform(0.5, HISTORY_DAYS))
            due = created + timedelta(hours=sla) if sla is not None else None
        plans.append((created.replace(microsecond=0), code, kind, priority, status,
                      due.replace(microsecond=0) if due is not None else None, sla))
    plans.sort(key=lambda plan: plan[0])
    counters: dict[tuple[str, str], int] = {}
    ticket_rows = []
    spans: list[tuple[int, datetime, datetime, str, str | None]] = []  # id, from, until, status, holder
    for ticket_id, (created, code, kind, priority, status, due, sla) in enumerate(plans, start=1):
        local_day = f"{to_local(created, zone):%Y%m%d}"
        key = (PREFIXES[kind], local_day)
        counters[key] = counters.get(key, 0) + 1
        number = f"{key[0]}{local_day}-{counters[key]:04d}"
        resident_id, room = rng.choice(households[code])
        is_open = status.value in OPEN_STATUS_VALUES
        held = status not in (TicketStatus.NEW, TicketStatus.CANCELLED)
        holder_n = rng.randrange(len(COLLEAGUES))
        holder: str | None = None
        holder_id: str | None = None
        if held and is_open and rng.random() < 0.05:
            holder, holder_id = "压测客服", bench_actor  # the "mine" view is not empty
        elif held:
            holder, holder_id = COLLEAGUES[holder_n], f"staff:{holder_n + 2}"
        claimed = created + timedelta(minutes=rng.uniform(2, 90)) if held else None
        span = (sla or 48) * rng.uniform(0.2, 1.1)
        resolved = created + timedelta(hours=span) if status in (TicketStatus.RESOLVED, TicketStatus.CLOSED) else None
        closed = resolved + timedelta(hours=rng.uniform(2, 72)) if resolved and status is TicketStatus.CLOSED \
            else (created + timedelta(hours=1) if status is TicketStatus.CANCELLED else None)
        callback = resolved + timedelta(hours=72) if resolved and kind in (TicketKind.REPAIR, TicketKind.COMPLAINT) \
            else None
        final = created + timedelta(days=15) if kind is TicketKind.COMPLAINT and priority is not Priority.GENERAL \
            else None
        until = min(now, closed or resolved or now)
        ticket_rows.append((
            ticket_id, number, code, kind.value, status.value, priority.value if priority else None, room,
            rng.choice(DESCRIPTIONS[kind]), rng.choice(DEMANDS) if kind is TicketKind.COMPLAINT else None,
            rng.choice(VISIT_TIMES) if kind is TicketKind.REPAIR else None, "wechat", resident_id, holder, holder_id,
            claimed, None, None, created, until, due, final, callback, resolved, closed))
        spans.append((ticket_id, created, until, status.value, holder))
        if is_open:
            data.open_numbers.append(number)
            data.open_rooms.append(room)
    data.cases = copy_rows(conn, "tickets", [
        "id", "number", "project", "kind", "status", "priority", "room", "description", "demand", "visit_time",
        "channel", "resident_id", "assignee", "assignee_id", "claimed_at", "parent_id", "topic", "created_at",
        "updated_at", "due_at", "final_due_at", "callback_due_at", "resolved_at", "closed_at"], ticket_rows)
    data.open_cases = len(data.open_numbers)
    del ticket_rows, plans
    copy_rows(conn, "ticket_counters", ["prefix", "day", "last_value"],
              ((prefix, f"{day[:4]}-{day[4:6]}-{day[6:]}", last) for (prefix, day), last in counters.items()))
    data.seconds["tickets"] = time.perf_counter() - started

    # Timelines: about events_per_case rows a case (exactly cases × events_per_case in all).
    started = time.perf_counter()
    low, high = max(1, events_per_case - 4), events_per_case + 4
    counts = [rng.randint(low, high) for _ in spans]
    missing = cases * events_per_case - sum(counts)
    while missing:
        i = rng.randrange(len(counts))
        step = 1 if missing > 0 else -1
        if low <= counts[i] + step <= high:
            counts[i] += step
            missing -= step

    def timeline() -> Iterator[tuple[object, ...]]:
        event_id = 0
        for (ticket_id, since, until, status, holder), count in zip(spans, counts):
            seconds = max(60.0, (until - since).total_seconds())
            moments = sorted(rng.uniform(30, seconds) for _ in range(count - 1))
            event_id += 1
            yield (event_id, ticket_id, since, "resident", "wechat", "created", None, "new", "", "")
            for k, offset in enumerate(moments):
                event_id += 1
                at = (since + timedelta(seconds=offset)).replace(microsecond=0)
                if k == count - 2 and status != "new":
                    yield (event_id, ticket_id, at, holder or "system", "console", "status", "accepted", status, "",
                           "")
                    continue
                action, actor, channel, content = EVENTS[rng.randrange(len(EVENTS))]
                who = (holder or "值班客服") if actor == "staff" else actor
                yield (event_id, ticket_id, at, who, channel, action, None, None, content, "ok")

    data.events = copy_rows(conn, "ticket_events", ["id", "ticket_id", "at", "actor", "channel", "action",
                                                    "from_status", "to_status", "content", "result"], timeline())
    with conn.cursor() as cur:
        for table in ("residents", "tickets", "ticket_events"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    conn.commit()
    data.seconds["ticket_events"] = time.perf_counter() - started

    # What autovacuum would have done on a long-lived store: statistics and the visibility map.
    started = time.perf_counter()
    conn.autocommit = True
    with conn.cursor() as cur:
        if proposed_index:
            cur.execute(PROPOSED_INDEX)
        for table in ("residents", "tickets", "ticket_events"):
            cur.execute(f"VACUUM (ANALYZE) {table}")
        cur.execute("SELECT count(*) FILTER (WHERE due_at < %s), count(*) FILTER (WHERE assignee_id IS NULL) "
                    "FROM tickets WHERE status IN %s", (now, OPEN_STATUS_VALUES))
        overdue, unassigned = cur.fetchone()
    data.by_view = {"overdue": overdue, "unassigned": unassigned}
    data.seconds["vacuum analyze"] = time.perf_counter() - started
    conn.close()
    return data


# --- the console -------------------------------------------------------------------------------


@dataclass
class Statements:
    """The SQL each request runs, timed in the driver (the listener is on the app's own engine)."""
    current: list[tuple[str, Any, float]] = field(default_factory=list)
    recording: bool = False
    server: list[float] = field(default_factory=list)  # the handler's time, from the outermost middleware
    commits: list[float] = field(default_factory=list)

    def middleware(self) -> Callable[..., Any]:
        @web.middleware
        async def server_time(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                return await handler(request)
            finally:
                self.server.append(time.perf_counter() - started)
        return server_time

    def attach(self, store: TicketStore) -> None:
        @event.listens_for(store.engine, "before_cursor_execute")
        def _before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(store.engine, "after_cursor_execute")
        def _after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if self.recording:
                self.current.append((statement, parameters, time.perf_counter() - conn.info["bench_started"]))

        # COMMIT is no cursor statement: from the commit call to the connection's return to the pool.
        @event.listens_for(store.engine, "commit")
        def _commit(conn):  # type: ignore[no-untyped-def]
            conn.info["bench_commit"] = time.perf_counter()

        @event.listens_for(store.engine.pool, "checkin")
        def _checkin(dbapi_connection, record):  # type: ignore[no-untyped-def]
            started = record.info.pop("bench_commit", None) if record is not None else None
            if self.recording and started is not None:
                self.commits.append(time.perf_counter() - started)


@dataclass
class PageRun:
    name: str
    path: str
    latencies: list[float] = field(default_factory=list)
    server_seconds: list[float] = field(default_factory=list)
    db_seconds: list[float] = field(default_factory=list)
    commit_seconds: list[float] = field(default_factory=list)
    statement_counts: list[int] = field(default_factory=list)
    slowest: dict[str, list[float]] = field(default_factory=dict)  # statement → its times
    sample_params: dict[str, Any] = field(default_factory=dict)
    bytes: int = 0


NEXT_LINK = re.compile(r'<a href="([^"]+)">下一页</a>')
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


async def sign_in(http: aiohttp.ClientSession, base: str) -> None:
    async with http.get(f"{base}/console/login") as page:
        found = CSRF_FIELD.search(await page.text())
    if found is None:
        raise RuntimeError("no CSRF token in the login form")
    async with http.post(f"{base}/console/login", data={"csrf": found.group(1), "login": LOGIN, "password": PASSWORD},
                         allow_redirects=False) as response:
        await response.read()
        if response.status != 303:
            raise RuntimeError(f"sign-in refused: HTTP {response.status}")


async def timed_get(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    async with http.get(url, headers=headers, allow_redirects=False) as response:
        body = await response.text()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status}: {body[:200]}")
    return elapsed, body


async def measure(http: aiohttp.ClientSession, statements: Statements, run: PageRun,
                  paths: Callable[[int], str], requests: int, warmup: int,
                  headers: dict[str, str] | None = None) -> None:
    for n in range(warmup):
        await timed_get(http, paths(-1 - n), headers)
    for n in range(requests):
        statements.current, statements.server, statements.commits = [], [], []
        statements.recording = True
        elapsed, body = await timed_get(http, paths(n), headers)
        statements.recording = False
        run.latencies.append(elapsed)
        run.server_seconds.append(sum(statements.server))
        run.commit_seconds.append(sum(statements.commits))
        run.bytes = max(run.bytes, len(body.encode("utf-8")))
        run.db_seconds.append(sum(s for _, _, s in statements.current))
        run.statement_counts.append(len(statements.current))
        for statement, params, seconds in statements.current:
            run.slowest.setdefault(statement, []).append(seconds)
            run.sample_params.setdefault(statement, params)


async def follow_pages(http: aiohttp.ClientSession, base: str, depth: int) -> tuple[str, int, list[float]]:
    """From the queue's first page, follow 下一页 `depth` times; the last page's path, how many
    links were followed, and each page's time."""
    url, followed, times = f"{base}/console/queue", 0, []
    for _ in range(depth):
        elapsed, body = await timed_get(http, url)
        times.append(elapsed)
        found = NEXT_LINK.search(body)
        if found is None:
            break
        url = base + html.unescape(found.group(1))
        followed += 1
    return url[len(base):], followed, times


async def serve_and_measure(url: str, company: Company, data: Data, args: argparse.Namespace,
                            rng: random.Random) -> tuple[list[PageRun], dict[str, Any]]:
    app = create_staff_app(Settings(database_url=url, environment="development"), company)
    statements = Statements()
    app.middlewares.insert(0, statements.middleware())  # outermost: the whole handler, page rendered
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    statements.attach(app[STORE])
    extra: dict[str, Any] = {}
    runs: list[PageRun] = []
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await sign_in(http, base)
            extra["load_before"] = os.getloadavg()[0]
            deep_path, followed, chain = await follow_pages(http, base, args.deep_pages)
            extra.update(deep_followed=followed, chain=chain)
            rooms = [rng.choice(data.open_rooms) for _ in range(args.requests + args.warmup)]
            cases = [rng.choice(data.open_numbers) for _ in range(args.requests + args.warmup)]
            pages: list[tuple[str, str, Callable[[int], str], dict[str, str] | None]] = [
                ("queue, first page", "/console/queue", lambda n: f"{base}/console/queue", None),
                ("queue, overdue", "/console/queue?view=overdue", lambda n: f"{base}/console/queue?view=overdue", None),
                ("queue, room search", "/console/queue?q=<room of an open case>",
                 lambda n: f"{base}/console/queue?q={quote(rooms[n])}", None),
                (f"queue, page {followed + 1} (after {followed} 下一页)", "/console/queue?after=…",
                 lambda n: base + deep_path, None),
                ("case page (open case)", "/console/cases/<number>",
                 lambda n: f"{base}/console/cases/{cases[n]}", None),
                ("queue rows (htmx refresh)", "/console/queue/rows",
                 lambda n: f"{base}/console/queue/rows", {"HX-Request": "true"}),
            ]
            for name, path, paths, headers in pages:
                run = PageRun(name, path)
                await measure(http, statements, run, paths, args.requests, args.warmup, headers)
                runs.append(run)
                print(f"  {name}: p50 {percentile(run.latencies, 50) * 1000:.1f} ms, "
                      f"p95 {percentile(run.latencies, 95) * 1000:.1f} ms", flush=True)
    finally:
        await runner.cleanup()
    return runs, extra


def explain(url: str, statement: str, params: Any) -> list[str]:
    import psycopg2

    parsed = make_url(url)
    conn = psycopg2.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                            dbname=parsed.database, password=parsed.password)
    try:
        with conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.rollback()
        conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return percentile(values, 50)


def slowest_select(run: PageRun) -> tuple[str, list[float]]:
    """The page's slowest read (by median): writes (the audit row, the session's idle clock) aside."""
    reads = {k: v for k, v in run.slowest.items() if k.lstrip().upper().startswith("SELECT")}
    return max(reads.items(), key=lambda item: median(item[1]))


def _one_line(statement: str, width: int = 150) -> str:
    """The statement on one line, a SELECT's long column list elided."""
    text = " ".join(statement.split())
    columns_end = text.find(" FROM ")
    if text.startswith("SELECT ") and columns_end > 80:
        text = "SELECT …" + text[columns_end:]
    return text if len(text) <= width else text[:width - 1] + "…"


def report(args: argparse.Namespace, data: Data, runs: list[PageRun], extra: dict[str, Any],
           plans: dict[str, list[str]], generation: float, target_ms: float) -> str:
    lines = [
        "# Staff console latency (PostgreSQL, production scale)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {os.cpu_count()} CPUs "
        f"(1-min load average {extra.get('load_before', 0.0):.2f} before the requests, {os.getloadavg()[0]:.2f} "
        f"after; this process and PostgreSQL make about 1) with `scripts/bench_console.py --cases {args.cases} "
        f"--events-per-case {args.events_per_case} --requests {args.requests}`: PostgreSQL at 127.0.0.1, "
        "the real staff app (`create_staff_app`, development settings) in-process on loopback, one staff "
        "member (agent, every project) signed in through the login form, one request at a time."
        + (f" **With the proposed index** (not in the migrations): `{PROPOSED_INDEX}`." if args.proposed_index
           else ""),
        "",
        "## Data",
        "",
        f"{data.residents:,} households in 2 projects (default, binjiang), {data.cases:,} cases "
        f"({data.open_cases:,} open: {data.by_view.get('overdue', 0):,} overdue, "
        f"{data.by_view.get('unassigned', 0):,} unassigned; the rest closed, resolved or cancelled over two "
        f"years), {data.events:,} timeline events ({args.events_per_case - 4}–{args.events_per_case + 4} a case). "
        "Repairs 60 % (6 % emergencies), complaints 15 %, enquiries 15 %, suggestions and praise 10 % (no "
        "deadline); open cases' deadlines from 24 h ago to 96 h ahead.",
        "",
        f"Generated by COPY in {generation:.1f} s: " + ", ".join(f"{name} {seconds:.1f} s"
                                                               for name, seconds in data.seconds.items()) + ".",
        "",
        "## Pages",
        "",
        f"{args.requests} requests a page after {args.warmup} warm-up requests. Wall time of each request "
        "measured by the client (aiohttp) from sending it to having read the whole body, over loopback: that "
        "is the server's time plus the loopback round trip and the client's parsing. \"server\" is the "
        "handler's own time (an outermost middleware: session check, queries, page rendered; median), "
        "\"SQL\" the time spent executing statements in the database driver (median per request; not "
        "COMMIT, not turning rows into objects), \"commit\" the COMMITs (the session check and the page "
        "are a transaction each; the page's writes the audit row), \"stmts\" the statements a request runs "
        "(session check and its update, audit row, query, related rows, the tabs' counts).",
        "",
        "| page | path | p50 ms | p95 ms | max ms | server p50 ms | SQL p50 ms | commit p50 ms | stmts | body KiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(f"| {run.name} | `{run.path}` | {percentile(run.latencies, 50) * 1000:.1f} | "
                     f"{percentile(run.latencies, 95) * 1000:.1f} | {max(run.latencies) * 1000:.1f} | "
                     f"{median(run.server_seconds) * 1000:.1f} | {median(run.db_seconds) * 1000:.1f} | "
                     f"{median(run.commit_seconds) * 1000:.1f} | "
                     f"{median([float(c) for c in run.statement_counts]):.0f} | {run.bytes / 1024:.0f} |")
    queue_p95 = percentile(runs[0].latencies, 95) * 1000
    case_p95 = percentile(runs[4].latencies, 95) * 1000
    met = queue_p95 < target_ms and case_p95 < target_ms
    lines += ["", f"Target p95 < {target_ms:.0f} ms for the queue page and the case page: "
              f"queue {queue_p95:.1f} ms, case page {case_p95:.1f} ms — **{'met' if met else 'missed'}**.", ""]
    chain = extra.get("chain", [])
    if chain:
        lines += [f"Following 下一页 from the first page {extra['deep_followed']} times, once each (cold): "
                  + ", ".join(f"{t * 1000:.0f}" for t in chain) + " ms.", ""]
    lines += ["## Slowest query per page", "",
              "| page | median ms | statement |", "|---|---|---|"]
    for run in runs:
        statement, times = slowest_select(run)
        lines.append(f"| {run.name} | {median(times) * 1000:.1f} | `{_one_line(statement).replace('|', '/')}` |")
    if not args.proposed_index:
        lines += ["", "The queue's query takes its rows from `ix_tickets_project_status_due` by project and status "
                  "but cannot read them in the page's order (`ORDER BY coalesce(due_at, …), id` over two IN lists): "
                  "it fetches and top-N-sorts every open case on every request, so its cost grows with the open "
                  "cases (page 1 and page 500 cost the same, but not little). `--proposed-index` measures the "
                  f"proposal, a partial index in that order covering the tabs' counts: `{PROPOSED_INDEX}`."]
    for name, plan in plans.items():
        lines += ["", f"### EXPLAIN (ANALYZE, BUFFERS): slowest query of \"{name}\"", "", "```", *plan, "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--events-per-case", type=int, default=10)
    parser.add_argument("--residents", type=int, default=None, help="households (default: 30 %% of --cases)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--deep-pages", type=int, default=20, help="下一页 links followed for the deep page")
    parser.add_argument("--target-ms", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL server (a database to connect to)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    parser.add_argument("--proposed-index", action="store_true",
                        help="also create the proposed index ix_tickets_open_queue (not in the migrations)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "console-bench.md")
    args = parser.parse_args()
    residents = args.residents if args.residents is not None else max(100, args.cases * 3 // 10)

    company = load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")
    name, url = create_database(args.admin_url)
    print(f"database {name}", flush=True)
    try:
        migrate.upgrade(url)
        now = utcnow()
        store = TicketStore(url)
        with store.transaction() as session:
            member = add_staff(session, name="压测客服", employee_number="BENCH1", roles=["agent"], projects=["*"],
                               known_projects=company.codes, console_login=LOGIN, now=now)
            set_password(session, member, PASSWORD, now)
            bench_actor = f"staff:{member.id}"
        store.dispose()
        started = time.perf_counter()
        data = generate(url, company, cases=args.cases, events_per_case=args.events_per_case, residents=residents,
                        now=now, seed=args.seed, bench_actor=bench_actor, proposed_index=args.proposed_index)
        generation = time.perf_counter() - started
        print(f"generated {data.cases:,} cases ({data.open_cases:,} open), {data.events:,} events, "
              f"{data.residents:,} households in {generation:.1f} s", flush=True)
        rng = random.Random(args.seed + 1)
        runs, extra = asyncio.run(serve_and_measure(url, company, data, args, rng))
        plans = {}
        for run in (runs[0], runs[2], runs[3], runs[4]):
            statement, _ = slowest_select(run)
            plans[run.name] = [_one_line(statement, 2000), "", *explain(url, statement, run.sample_params[statement])]
        text = report(args, data, runs, extra, plans, generation, args.target_ms)
    finally:
        if args.keep:
            print(f"kept: {url}")
        else:
            drop_database(args.admin_url, name)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
