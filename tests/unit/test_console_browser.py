"""The console in real headless Chromium (Debian's), desktop and phone: sign in, a new repair
appears in the queue without a reload, claim it, reply (the fake WeChat API receives it), mark
on site, resolve. Screenshots of the queue, a case and a household go to results/console/."""
from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import aiohttp
import pytest
from sqlalchemy import select

from bot.app import migrate
from bot.app.gateway import create_staff_app
from bot.cases.residents import bind_resident, import_roster
from bot.cases.sign_in import set_password
from bot.cases.staff_directory import add_staff
from bot.cases.tickets import open_complaint_ticket, open_repair_ticket
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.delivery import WeChatResidentChannel
from bot.core.clock import utcnow
from bot.core.company import Company, load_company
from bot.db.models import Ticket
from bot.db.store import TicketStore
from bot.settings import PROJECT_ROOT, Settings
from bot.worker.handlers import Context
from bot.worker.loop import Worker
from tests.browser import screenshot, serve_app
from tests.wechat_fakes import APP_ID, APP_SECRET, FakeWeChatApi

PASSWORD = "browser-test-password"
OPENID = "oBrowserResident"


class Desk:
    """The console's server, its store, and a fake WeChat API the worker delivers replies to."""

    def __init__(self, url: str, store: TicketStore, company: Company) -> None:
        self.url, self.store, self.company = url, store, company

    def open_repair(self, description: str, room: str) -> str:
        with self.store.transaction() as s:
            return open_repair_ticket(s, self.company.default, openid=OPENID, description=description, room=room,
                                      visit_time="今天下午", channel="wechat").number

    def ticket(self, number: str) -> Ticket:
        with self.store.transaction() as s:
            ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
            _ = ticket.events
            return ticket

    def deliver_to_wechat(self) -> list[str]:
        """One worker round against a loopback fake of WeChat's API; what the resident received."""
        async def run() -> list[str]:
            fake = FakeWeChatApi()
            api_url = await fake.start()
            try:
                async with aiohttp.ClientSession() as http:
                    channel = WeChatResidentChannel(WeChatApi(http, self.store, api_url, APP_ID, APP_SECRET),
                                                    self.store, self.company)
                    await Worker(Context(self.store, self.company, channel, None), "browser").run_due()  # type: ignore[arg-type]
                return fake.texts_to(OPENID)
            finally:
                await fake.close()
        # Playwright's sync API holds this thread's event loop: the worker runs in a thread of its own.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result(timeout=60)


@pytest.fixture
def desk(tmp_path, console_assets) -> Iterator[Desk]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'console.db'}"
    migrate.upgrade(url)
    company = load_company(PROJECT_ROOT / "project" / "default.yml", PROJECT_ROOT / "tests" / "projects")
    store = TicketStore(url)
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone\n3栋2单元501,王小明,13812345678\n", encoding="utf-8")
    with store.transaction() as s:
        member = add_staff(s, name="赵客服", employee_number="E01", roles=["agent"], projects=["default"],
                           known_projects=company.codes, console_login="zhao")
        set_password(s, member, PASSWORD)
        import_roster(s, roster, projects=company.codes, default_project="default")
        bind_resident(s, company.default, openid=OPENID, room="3栋2单元501", phone="13812345678", channel="wechat")
        open_complaint_ticket(s, company.default, openid="oNeighbour", description="楼下广场舞太吵了",
                              demand="控制音量", room="5栋", channel="wechat")
    with store.transaction() as s:  # the resident wrote just now: replies go out as customer-service messages
        from bot.db.models import Resident
        for resident in s.execute(select(Resident).where(Resident.openid == OPENID)).scalars():
            resident.last_message_at = utcnow()
    settings = Settings(database_url=url, environment="development")
    with serve_app(create_staff_app(settings, company)) as base:
        yield Desk(base, store, company)
    store.dispose()


def sign_in(tab, desk: Desk) -> None:  # type: ignore[no-untyped-def]
    tab.goto(f"{desk.url}/console/login")
    tab.fill("input[name=login]", "zhao")
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(re.compile(r".*/console/queue"))


def work_a_case(tab, desk: Desk, *, name: str) -> str:  # type: ignore[no-untyped-def]
    sign_in(tab, desk)
    number = desk.open_repair(f"厨房水槽下面漏水了（{name}）", "3栋2单元501")
    # It appears without a reload: htmx refreshes the rows.
    tab.locator(f"tr[data-number='{number}']").wait_for(timeout=15_000)
    screenshot(tab, f"queue-{name}")
    tab.click(f"a[href='/console/cases/{number}']")
    tab.wait_for_url(re.compile(f".*/console/cases/{number}"))
    tab.click("form[action$='/claim'] button")
    tab.locator(".flash").wait_for()
    tab.fill("form[action$='/reply'] textarea", "您好，维修师傅二十分钟内到，请您在家等候。")
    tab.click("form[action$='/reply'] button")
    tab.locator(".flash").wait_for()
    tab.click("form[action$='/on_site'] button")
    tab.locator(".flash").wait_for()
    assert "处理中" in tab.locator("b.status").inner_text()
    screenshot(tab, f"case-{name}")
    tab.fill("form[action$='/resolve'] textarea", "更换了水槽下水管的密封圈，已不漏。")
    tab.click("form[action$='/resolve'] button")
    tab.locator(".flash").wait_for()
    assert "已处理，待回访" in tab.locator("b.status").inner_text()
    tab.goto(f"{desk.url}/console/households?q=13812345678")
    tab.locator(".household").first.wait_for()
    screenshot(tab, f"household-{name}")
    return number


def check_the_record(desk: Desk, number: str) -> None:
    ticket = desk.ticket(number)
    assert ticket.status == "resolved" and ticket.assignee == "赵客服"
    actions = [e.action for e in ticket.events]
    assert actions.index("claimed") < actions.index("staff_reply") < actions.index("on_site")
    assert [e.to_status for e in ticket.events if e.action == "status"][-1] == "resolved"
    received = desk.deliver_to_wechat()
    assert any("维修师傅二十分钟内到" in text for text in received), received


def test_working_a_repair_on_a_desktop(page, desk):  # type: ignore[no-untyped-def]
    check_the_record(desk, work_a_case(page, desk, name="desktop"))


def test_working_a_repair_on_a_phone_in_wechat(phone_page, desk):  # type: ignore[no-untyped-def]
    number = work_a_case(phone_page, desk, name="phone")
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px screen"
    check_the_record(desk, number)

