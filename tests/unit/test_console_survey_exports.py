"""The annual survey's results exported from the console: Excel and PDF read back, the figures
checked against the ones worked out by hand from a small campaign below; scope by role and
project, every export audited, and the owners'-committee version without personal data (no room,
no resident's words, no average of fewer than three answers)."""
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
from bot.cases.sign_in import set_password
from bot.cases.staff_directory import add_staff
from bot.core.company import load_company
from bot.db.models import AuditEntry, Resident, Survey, SurveyScore
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT, Settings

PASSWORD = "survey-export-password"
NOW = datetime(2026, 12, 15, 4, 0)  # 12:00 in Shanghai
PEOPLE = {"zhou": ("周经理", ["manager"], ["*"]), "head": ("滨江负责人", ["project_head"], ["binjiang"]),
          "sun": ("孙主管", ["supervisor"], ["default"]), "zhao": ("赵客服", ["agent"], ["default"])}
# (project, room, campaign, status, quality, attitude, overall, comment)
ANSWERS = [
    ("default", "3栋2单元501", "2026", "answered", 5, 4, 4, None),
    ("default", "3栋2单元502", "2026", "answered", 4, 2, 3, "前台态度冷淡，回电请打13812345678"),
    ("default", "3栋1单元101", "2026", "answered", 3, 3, 3, None),
    ("default", "5栋1单元101", "2026", "answered", 1, 1, 1, "电梯总坏"),
    ("default", "5栋1单元102", "2026", "no_answer", None, None, None, None),
    ("binjiang", "1栋1单元101", "2026", "answered", 5, 5, 5, None),
    ("default", "3栋2单元501", "2025", "answered", 1, 1, 1, "去年的意见"),  # another campaign: not counted
]
# Worked out by hand from ANSWERS (campaign 2026):
#   服务质量 (5+4+3+1+5)/5 = 3.6, 服务态度 (4+2+3+1+5)/5 = 3.0; 示例小区 alone 13/4 = 3.25 and 10/4 = 2.5.
#   Overall by building: 滨江花园 1栋 5 (1 answer), 示例小区 3栋 (4+3+3)/3 = 3.33, 5栋 1 (1 answer).
#   Sent: 示例小区 5 (4 answered, 1 no answer: 80.0%), 滨江花园 1 (100.0%), together 5/6 = 83.3%.
#   To follow up (a score ≤ 2 or a comment): 3栋2单元502 (服务态度, comment), 5栋1单元101 (both, comment).


def build(url: str) -> TicketStore:
    migrate.upgrade(url)
    company = load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")
    store = TicketStore(url)
    with store.transaction() as s:
        for login, (name, roles, projects) in PEOPLE.items():
            member = add_staff(s, name=name, employee_number=login.upper(), roles=roles, projects=projects,
                               known_projects=company.codes, console_login=login)
            set_password(s, member, PASSWORD)
        households: dict[tuple[str, str], Resident] = {}
        for n, (project, room, campaign, status, quality, attitude, overall, comment) in enumerate(ANSWERS):
            resident = households.get((project, room))
            if resident is None:
                resident = Resident(project=project, openid=f"oSurvey{n}", room=room, name="住户", created_at=NOW,
                                    updated_at=NOW, bound_at=NOW, subscribed=True)
                s.add(resident)
                s.flush()
                households[(project, room)] = resident
            survey = Survey(kind="annual", project=project, resident_id=resident.id, campaign=campaign,
                            dimensions=["quality", "attitude"], status=status, created_at=NOW - timedelta(days=5),
                            sent_at=NOW - timedelta(days=5), overall_score=overall, comment=comment,
                            answered_at=NOW - timedelta(days=4) if status == "answered" else None)
            s.add(survey)
            s.flush()
            if quality is not None:
                s.add_all([SurveyScore(survey_id=survey.id, dimension="quality", score=quality),
                           SurveyScore(survey_id=survey.id, dimension="attitude", score=attitude)])
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

    async def get(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        async with self.http.get(path, allow_redirects=False) as response:
            return response.status, await response.read(), dict(response.headers)


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


def rows(book, title: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [tuple(row) for row in book[title].iter_rows(min_row=3, values_only=True)]


def _pdf_text(body: bytes, tmp_path, name: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The PDF's text laid out as printed, and in reading order without any white space (a cell's
    words wrapped over lines in a narrow column come together again)."""
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(body)
    laid_out, plain = (subprocess.run(["pdftotext", *option, str(path), "-"], capture_output=True, text=True,
                                      check=True).stdout for option in (["-layout"], []))
    return laid_out, re.sub(r"\s+", "", plain)


async def test_the_excel_export_holds_the_results_as_worked_out_by_hand(client):
    console, _ = client
    await console.login("zhou")
    status, page, _ = await console.get("/console/surveys?campaign=2026")
    assert status == 200 and "/console/surveys/2026.xlsx" in page.decode() and "2026.pdf?public=1" in page.decode()
    status, body, headers = await console.get("/console/surveys/2026.xlsx")
    assert status == 200 and "spreadsheetml" in headers["Content-Type"]
    assert 'filename="survey-2026.xlsx"' in headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(body))
    assert book.sheetnames == ["调查进度", "按维度", "各项目按维度", "按项目和楼栋", "低分与意见明细"]
    assert book["按维度"]["A1"].value == "年度满意度调查结果 · 滨江花园、示例小区 · 2026 年度调查"
    assert [c.value for c in book["按维度"][2]] == ["维度", "平均分", "答复数"]
    assert rows(book, "调查进度") == [("滨江花园", 0, 0, 1, 1, 0, 0, "100.0%（1/1）"),
                                      ("示例小区", 0, 0, 5, 4, 1, 0, "80.0%（4/5）"),
                                      ("合计", 0, 0, 6, 5, 1, 0, "83.3%（5/6）")]
    assert rows(book, "按维度") == [("服务质量", 3.6, 5), ("服务态度", 3.0, 5), ("服务效率", "—", 0),
                                    ("服务设施", "—", 0)]
    assert book["按维度"]["B3"].number_format == "0.00"
    assert rows(book, "各项目按维度") == [("滨江花园", 5.0, 5.0, "—", "—"), ("示例小区", 3.25, 2.5, "—", "—")]
    assert rows(book, "按项目和楼栋") == [("滨江花园", "1栋", 1, 5.0), ("示例小区", "3栋", 3, 3.33),
                                        ("示例小区", "5栋", 1, 1.0)]
    assert rows(book, "低分与意见明细") == [
        ("示例小区", "3栋2单元502", 3, "服务态度", "前台态度冷淡，回电请打138****5678", "2026-12-11 12:00"),
        ("示例小区", "5栋1单元101", 1, "服务质量、服务态度", "电梯总坏", "2026-12-11 12:00")]


async def test_the_pdf_and_the_owners_committee_version_without_personal_data(client, tmp_path):
    console, _ = client
    await console.login("zhou")
    status, body, headers = await console.get("/console/surveys/2026.pdf")
    assert status == 200 and headers["Content-Type"] == "application/pdf" and body.startswith(b"%PDF")
    text, compact = _pdf_text(body, tmp_path, "full")
    assert "年度满意度调查结果" in text and "83.3%（5/6）" in text and "对比" not in text
    assert re.search(r"服务质量\s+3\.60\s+5\n", text) and re.search(r"服务态度\s+3\.00\s+5\n", text), text
    assert re.search(r"示例小区\s+3\.25\s+2\.50\s+—\s+—", text) and re.search(r"3栋\s+3\s+3\.33", text), text
    assert "低分与意见明细" in compact
    assert "示例小区3栋2单元5023服务态度前台态度冷淡，回电请打138****56782026-12-1112:00" in compact, compact
    assert "示例小区5栋1单元1011服务质量、服务态度电梯总坏2026-12-1112:00" in compact, compact

    status, body, headers = await console.get("/console/surveys/2026.pdf?public=1")
    assert status == 200 and 'filename="survey-2026-public.pdf"' in headers["Content-Disposition"]
    public, compact = _pdf_text(body, tmp_path, "public")
    assert "年度满意度调查结果公示" in public and "不含个人信息" in public
    assert re.search(r"服务质量\s+3\.60\s+5", public) and re.search(r"3栋\s+3\s+3\.33", public), public
    assert re.search(r"5栋\s+1\s+—（不足 3 份）", public) and re.search(r"1栋\s+1\s+—（不足 3 份）", public), public
    for personal in ("低分与意见明细", "3栋2单元502", "5栋1单元101", "前台态度冷淡", "138", "电梯总坏", "住户"):
        assert personal not in compact, personal

    status, body, _ = await console.get("/console/surveys/2026.xlsx?public=1")
    book = load_workbook(io.BytesIO(body))
    assert "低分与意见明细" not in book.sheetnames
    assert rows(book, "各项目按维度") == [("滨江花园", "—（不足 3 份）", "—（不足 3 份）", "—", "—"),
                                        ("示例小区", 3.25, 2.5, "—", "—")]
    assert rows(book, "按项目和楼栋") == [("滨江花园", "1栋", 1, "—（不足 3 份）"), ("示例小区", "3栋", 3, 3.33),
                                        ("示例小区", "5栋", 1, "—（不足 3 份）")]


async def test_survey_exports_follow_the_pages_access_rules_and_are_audited(client):
    console, store = client
    await console.login("zhao")
    assert (await console.get("/console/surveys/2026.xlsx"))[0] == 403  # agents do not see the survey
    await console.login("head")
    status, body, _ = await console.get("/console/surveys/2026.xlsx")
    book = load_workbook(io.BytesIO(body))
    assert status == 200 and rows(book, "调查进度") == [("滨江花园", 0, 0, 1, 1, 0, 0, "100.0%（1/1）")]
    assert rows(book, "按项目和楼栋") == [("滨江花园", "1栋", 1, 5.0)] and rows(book, "低分与意见明细") == []
    assert (await console.get("/console/surveys/2026.pdf?project=default"))[0] == 403  # not their project
    assert (await console.get("/console/surveys/2026.xlsx?project=nowhere"))[0] == 400
    await console.login("sun")  # supervisors run the survey: they read its results for their project
    status, body, _ = await console.get("/console/surveys/2026.xlsx?project=default")
    book = load_workbook(io.BytesIO(body))
    assert status == 200 and [r[0] for r in rows(book, "按项目和楼栋")] == ["示例小区", "示例小区"]
    assert [r[1] for r in rows(book, "低分与意见明细")] == ["3栋2单元502", "5栋1单元101"]
    status, body, _ = await console.get("/console/surveys/2025.xlsx")  # another campaign, its own figures
    assert rows(load_workbook(io.BytesIO(body)), "按维度")[:2] == [("服务质量", 1.0, 1), ("服务态度", 1.0, 1)]
    with store.transaction() as s:
        audit = s.execute(select(AuditEntry).where(AuditEntry.detail.startswith("annual survey 20"),
                                                   AuditEntry.interface == "console")
                          .order_by(AuditEntry.id)).scalars().all()
        assert [(a.staff_name, a.action, a.allowed, a.project) for a in audit] == [
            ("赵客服", "send_notices", False, None),
            ("滨江负责人", "view_reports", True, None),
            ("滨江负责人", "view_reports", False, "default"),
            ("孙主管", "send_notices", True, "default"),
            ("孙主管", "send_notices", True, None)]
        assert audit[1].detail == "annual survey 2026 xlsx binjiang"
