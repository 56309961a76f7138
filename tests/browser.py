"""Browser tests: Debian's headless Chromium (/usr/bin/chromium, `make browser`) through Playwright.

Fixtures (registered through tests/fixtures.py):
  chromium     one browser per test module
  page         a desktop tab, 1280x800
  phone_page   a phone tab, 390x844, as WeChat's in-app browser (mobile user agent, touch)
  console_assets  the staff console's vendor files (bot/console/assets.py), installed or not
Helpers:
  serve_app(app)          runs an aiohttp app on loopback in a thread of its own; yields its base URL
  screenshot(page, name)  -> results/console/<name>.png

Browser tests are plain `def` tests: Playwright's sync API cannot run inside the asyncio loop of an
`async def` test, so the app under test runs in its own thread and loop (serve_app).

Every tab fails its test when the page raises an uncaught JavaScript error, or asks for anything
that is not on this machine (a CDN, a font service): the console ships its files itself.

A missing /usr/bin/chromium (or CJK font, or vendor file) fails the test in CI (CI set) and skips
it elsewhere. Playwright never downloads a browser here: no `playwright install`.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from bot.console.assets import INSTALL_HINT, VENDOR_FILES, missing_assets
from bot.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = [
    "CHROMIUM", "CHROMIUM_ARGS", "DESKTOP_VIEWPORT", "PHONE_VIEWPORT", "SCREENSHOTS", "WECHAT_USER_AGENT",
    "chromium", "console_assets", "page", "phone_page", "screenshot", "serve_app",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync")
DESKTOP_VIEWPORT = {"width": 1280, "height": 800}
PHONE_VIEWPORT = {"width": 390, "height": 844}
# WeChat's in-app browser on an iPhone (what residents and staff open links from).
WECHAT_USER_AGENT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                     "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN")
SCREENSHOTS = PROJECT_ROOT / "results" / "console"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def _in_ci() -> bool:
    return bool(os.environ.get("CI"))


def _absent(message: str) -> None:
    """Fail in CI, which must run the browser tests; skip elsewhere."""
    if _in_ci():
        pytest.fail(message + " (CI must run the browser tests)", pytrace=False)
    pytest.skip(message)


def _has_cjk_font() -> bool:
    if not shutil.which("fc-list"):
        return False
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False)
    return bool(found.stdout.strip())


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, for one test module. Not longer: Playwright's sync API keeps an
    event loop running in this thread while it is open, and the async tests of the next modules
    (pytest-asyncio) need the thread's loop to themselves."""
    if not CHROMIUM.exists():
        _absent(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium fonts-noto-cjk)")
    if not _has_cjk_font():
        message = "no CJK font: Chinese text renders as boxes; run `make browser` (apt-get install fonts-noto-cjk)"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        warnings.warn(message, stacklevel=1)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def _tab(browser: Browser, **options: Any) -> Iterator[Page]:
    """A tab in a fresh context (no cookies or storage from other tests), Chinese locale and time.
    Fails the test on an uncaught script error or a request that leaves this machine."""
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **options)
    context.set_default_timeout(10_000)
    offsite: list[str] = []

    def keep_local(route: Any) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    context.route("**/*", keep_local)
    tab = context.new_page()
    script_errors: list[str] = []
    tab.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    problems = [f"asked for {url} (nothing may come from off this machine, such as a CDN)" for url in offsite]
    problems += [f"raised an uncaught script error: {error}" for error in script_errors]
    if problems:
        pytest.fail("the page " + "; ".join(problems), pytrace=False)


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A desktop tab, 1280x800."""
    with _tab(chromium, viewport=DESKTOP_VIEWPORT) as tab:
        yield tab


@pytest.fixture
def phone_page(chromium: Browser) -> Iterator[Page]:
    """A phone tab, 390x844 (an iPhone 12-15), as WeChat's in-app browser: mobile, touch."""
    with _tab(chromium, viewport=PHONE_VIEWPORT, screen=PHONE_VIEWPORT, user_agent=WECHAT_USER_AGENT,
              is_mobile=True, has_touch=True, device_scale_factor=3) as tab:
        yield tab


@pytest.fixture
def console_assets() -> dict[str, Path]:
    """The staff console's vendor files (URL name -> installed file), once `make console-assets` ran."""
    missing = missing_assets()
    if missing:
        _absent(f"missing {', '.join(missing)}: {INSTALL_HINT}")
    return VENDOR_FILES


@contextmanager
def serve_app(app: web.Application) -> Iterator[str]:
    """Runs `app` on 127.0.0.1 at a free port, in a thread and event loop of its own; yields the base
    URL ("http://127.0.0.1:PORT"). Things bound to a loop (client sessions, the store's background
    tasks) belong in the app's on_startup / cleanup_ctx, which run in that loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="browser-test-server", daemon=True)
    thread.start()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Saves the page as results/console/<name>.png and returns the path."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"a screenshot name is a plain file name, not {name!r}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
