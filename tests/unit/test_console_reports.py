"""Managers' reports in the console: scope by role and project, every export read back (the Excel
cells, the PDF's text), the owners'-committee version without personal data, and the chart page
in Chromium."""
from __future__ import annotations

import io
import re
import subprocess
from datetime import datetime, timedelta
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from openpyxl import load_workbook
from sqlalchemy import select

from bot.app import migrate
from bot.app.gateway import create_staff_app
from bot.cases import kpis
from bot.cases.sign_in import set_password
from bot.cases.staff_directory import add_staff
from bot.cases.tickets import open_complaint_ticket, resolve_ticket, transition
from bot.core.company import load_company
from bot.core.kinds import TicketStatus
from bot.db.models import AuditEntry
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT, Settings
from tests.browser import screenshot, serve_app

PASSWORD = "report-test-password"
# Mid-December 2026 (Shanghai): the fourth quarter is the current one, the third the previous.
NOW = datetime(2026, 12, 15, 4, 0)
PEOPLE = {"zhou": ("周经理", ["manager"], ["*"]), "head": ("滨江负责人", ["project_head"], ["binjiang"]),
          "zhao": ("赵客服", ["agent"], ["default"])}
RESULTS = PROJECT_ROOT / "results"


def build(url: str) -> TicketStore:
    migrate.upgrade(url)
    company = load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")
    store = TicketStore(url)
    with store.transaction() as s:
        for login, (name, roles, projects) in PEOPLE.items():
            member = add_staff(s, name=name, employee_number=login.upper(), roles=roles, projects=projects,
                               known_projects=company.codes, console_login=login)
            set_password(s, member, PASSWORD)
        for n, (code, when, text) in enumerate((
                ("default", NOW - timedelta(days=10), "楼上装修噪音太吵"), ("default", NOW - timedelta(days=9), "停车位被占"),
                ("binjiang", NOW - timedelta(days=8), "楼道卫生太差"), ("default", NOW - timedelta(days=100), "狗叫扰民"))):
            ticket = open_complaint_ticket(s, company.rules(code), openid=f"oReport{n}", description=text,
                                           demand="请处理", room=f"{n + 1}栋1单元101", channel="wechat", now=when)
            if n != 1:  # one complaint is still open
                transition(s, ticket, TicketStatus.ACCEPTED, rules=company.rules(code), actor="staff:钱客服",
                           channel="console", now=when + timedelta(hours=1))
                ticket.assignee, ticket.assignee_id = "钱客服", "staff:99"
                resolve_ticket(s, company.rules(code), ticket, actor="staff:钱客服", channel="console",
                               note="已处理", now=when + timedelta(hours=5))
    return store


class Client:
    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def login(self, login: str) -> None:
        async with self.http.get("/console/login") as page:
            token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)  # type: ignore[union-attr]
        async with self.http.post("/console/login", data={"csrf": token, "login": login, "password": PASSWORD},
                                  allow_redirects=False) as done:
            assert done.status == 303

    async def get(self, path: str) -> tuple[int, bytes, str]:
        async with self.http.get(path, allow_redirects=False) as response:
            return response.status, await response.read(), response.headers.get("Content-Type", "")


@pytest.fixture
async def client(sqlite_url) -> AsyncIterator[tuple[Client, TicketStore]]:
    store = build(sqlite_url)
    company = load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")
    server = TestServer(create_staff_app(Settings(database_url=sqlite_url, environment="development"), company,
                                         clock=lambda: NOW), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url("")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Client(http), store
    await server.close()
    store.dispose()


async def test_reports_are_for_managers_and_heads_of_their_own_projects(client):
    console, store = client
    await console.login("zhao")
    assert (await console.get("/console/reports"))[0] == 403
    await console.login("head")
    status, page, _ = await console.get("/console/reports")
    text = page.decode()
    assert status == 200 and "滨江花园" in text and "示例小区" not in text
    assert (await console.get("/console/reports?project=default"))[0] == 403
    await console.login("zhou")
    status, page, _ = await console.get("/console/reports?quarter=2026Q4")
    text = page.decode()
    assert status == 200 and text.count("<svg") == 4 and "2026年第4季度" in text
    assert "投诉处理及时率" in text and "噪音" in text
    with store.transaction() as s:
        rows = s.execute(select(AuditEntry).where(AuditEntry.action == "view_reports")).scalars().all()
        assert [(r.staff_name, r.allowed) for r in rows] == [("赵客服", False), ("滨江负责人", True),
                                                             ("滨江负责人", False), ("周经理", True)]


async def test_the_excel_export_holds_the_kpis_as_computed(client):
    console, store = client
    await console.login("zhou")
    status, body, kind = await console.get("/console/reports.xlsx?quarter=2026Q4")
    assert status == 200 and "spreadsheetml" in kind
    book = load_workbook(io.BytesIO(body))
    sheet = book["关键指标"]
    cells = {row[0]: row[1] for row in sheet.iter_rows(min_row=3, values_only=True)}
    company = load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")
    period = kpis.quarter_of(datetime(2026, 12, 1).date(), company.default.timezone)
    with store.transaction() as s:
        expected = kpis.by_key(kpis.kpis(s, company.codes, period, NOW))
    handling = expected["complaint_handling"]
    assert (handling.numerator, handling.denominator) == (2, 3)  # two of this quarter's three complaints handled
    assert cells["投诉处理率"].startswith("66.7%（2/3）")
    assert "重复投诉住户明细" in book.sheetnames and "员工工作量（报修汇总）" in book.sheetnames
    assert any(row[0] == "钱客服" for row in book["员工工作量（报修汇总）"].iter_rows(min_row=3, values_only=True))


def _pdf_text(body: bytes, tmp_path, name: str) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(body)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


async def test_the_pdf_and_the_owners_committee_version(client, tmp_path):
    console, _ = client
    await console.login("zhou")
    status, body, kind = await console.get("/console/reports.pdf?quarter=2026Q4")
    assert status == 200 and kind == "application/pdf" and body.startswith(b"%PDF")
    text = _pdf_text(body, tmp_path, "full")
    assert "物业服务质量季度报告" in text and "投诉处理率" in text and "钱客服" in text
    # Page one as a picture, for the README (results/ is where reports go).
    RESULTS.mkdir(exist_ok=True)
    pdf = tmp_path / "full.pdf"
    subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(RESULTS / "report-page-1")], check=True)
    assert (RESULTS / "report-page-1.png").stat().st_size > 10_000
    status, body, _ = await console.get("/console/reports.pdf?quarter=2026Q4&public=1")
    public = _pdf_text(body, tmp_path, "public")
    assert "物业服务质量季度公示" in public and "投诉处理率" in public and "不含个人信息" in public
    assert "钱客服" not in public and "重复投诉住户明细" not in public and "1栋1单元101" not in public, public


def test_the_report_page_draws_its_charts_in_chromium(page, sqlite_url, console_assets):  # type: ignore[no-untyped-def]
    store = build(sqlite_url)
    company = load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")
    app = create_staff_app(Settings(database_url=sqlite_url, environment="development"), company, clock=lambda: NOW)
    try:
        with serve_app(app) as base:
            page.goto(f"{base}/console/login")
            page.fill("input[name=login]", "zhou")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.goto(f"{base}/console/reports?quarter=2026Q4")
            charts = page.locator("svg.chart")
            assert charts.count() == 4
            box = charts.first.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 80
            assert page.locator("svg.chart rect").count() > 4  # bars were drawn
            screenshot(page, "report-desktop")
    finally:
        store.dispose()


