"""The browser-test infrastructure end to end: Debian's Chromium loads htmx from our own lock
(bot/console/node_modules, served by a loopback aiohttp app, nothing from a CDN) and swaps a
fragment in, on a desktop and on a phone in WeChat's in-app browser."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from bot.console.assets import CONSOLE_DIR
from tests.browser import screenshot, serve_app

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>物业工单控制台</title>
  <script src="/static/htmx.min.js"></script>
  <style>
    body { font-family: "Noto Sans CJK SC", sans-serif; margin: 2rem; line-height: 1.6; }
    button { font-size: 1.1rem; padding: .6rem 1.2rem; }
    #result { margin-top: 1rem; padding: 1rem; border: 1px solid #ccc; border-radius: 6px; }
  </style>
</head>
<body>
  <h1>物业工单控制台</h1>
  <p>报修 BX20261125-0001：卫生间的水龙头一直滴水，关不紧（3栋2单元501）</p>
  <button id="progress-button" hx-get="/fragment/progress" hx-target="#result">查看处理进度</button>
  <div id="result">尚未加载进度</div>
</body>
</html>
"""
SWAPPED = "已派单：维修班组将于明天上午上门"


def console_app(vendor_files: dict[str, Path]) -> web.Application:
    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html", charset="utf-8")

    async def progress(request: web.Request) -> web.Response:
        # htmx marks its requests: this fragment comes only through htmx, not a plain page load.
        if request.headers.get("HX-Request") != "true":
            raise web.HTTPBadRequest(text="not an htmx request")
        return web.Response(text=f'<p id="progress">{SWAPPED}</p>', content_type="text/html", charset="utf-8")

    async def vendor(request: web.Request) -> web.FileResponse:
        path = vendor_files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/fragment/progress", progress)
    app.router.add_get("/static/{name}", vendor)
    return app


def locked_htmx_version() -> str:
    lock = json.loads((CONSOLE_DIR / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["lockfileVersion"] == 3
    return str(lock["packages"]["node_modules/htmx.org"]["version"])


@pytest.mark.parametrize("tab", ["page", "phone_page"])
def test_htmx_from_our_lock_swaps_a_fragment_in(tab: str, request: pytest.FixtureRequest,
                                                 console_assets: dict[str, Path]) -> None:
    from playwright.sync_api import expect

    browser_tab = request.getfixturevalue(tab)
    with serve_app(console_app(console_assets)) as base:
        browser_tab.goto(base + "/")
        expect(browser_tab.locator("h1")).to_have_text("物业工单控制台")
        # The htmx that runs is the one our lock pins, loaded from our server.
        assert browser_tab.evaluate("() => window.htmx && window.htmx.version") == locked_htmx_version()
        assert locked_htmx_version().startswith("2.")

        button = browser_tab.get_by_role("button", name="查看处理进度")
        if tab == "phone_page":
            assert browser_tab.evaluate("() => navigator.userAgent").find("MicroMessenger") > 0
            assert browser_tab.evaluate("() => window.innerWidth") == 390
            button.tap()
        else:
            button.click()
        expect(browser_tab.locator("#result #progress")).to_have_text(SWAPPED)
        expect(browser_tab.get_by_text("尚未加载进度")).to_have_count(0)

        shot = screenshot(browser_tab, "smoke-desktop" if tab == "page" else "smoke-phone")
    assert shot.stat().st_size > 5_000
