"""Who is signed in to the console: the session cookie, the CSRF check, the signed-in principal."""
from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from aiohttp import web
from multidict import MultiDictProxy

from bot.cases.sign_in import live_session
from bot.cases.staff_directory import principal_of
from bot.core.access import Principal
from bot.core.company import Company
from bot.db.store import TicketStore

log = logging.getLogger(__name__)

COOKIE = "wuye_console"
LOGIN_CSRF_COOKIE = "wuye_console_login"
PATH = "/console"

STORE = web.AppKey("console_store", TicketStore)
COMPANY = web.AppKey("console_company", Company)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("console_clock")
SECURE: web.AppKey[bool] = web.AppKey("console_secure_cookies")


@dataclass(frozen=True)
class Signed:
    principal: Principal
    csrf: str
    session_id: str


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, *, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, the console's path only; Secure outside development."""
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="Strict",
                        secure=request.app[SECURE])


def _wants_fragment(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true" or request.method != "GET"


async def signed_in(request: web.Request) -> Signed:
    """The session's person; otherwise to the login page (a page) or 401 (htmx, a form post)."""
    session_id = request.cookies.get(COOKIE, "")
    now = request.app[CLOCK]()

    def find() -> Signed | None:
        with request.app[STORE].transaction() as session:
            found = live_session(session, session_id, now)
            if found is None:
                return None
            principal = principal_of(found.staff)
            return Signed(principal, found.csrf, session_id) if principal.roles else None

    signed = await asyncio.to_thread(find) if session_id else None
    if signed is None:
        if _wants_fragment(request):
            raise web.HTTPUnauthorized(text="登录已过期，请重新登录。", headers={"HX-Redirect": f"{PATH}/login"})
        raise web.HTTPFound(f"{PATH}/login")
    return signed


def check_csrf(signed: Signed, form: MultiDictProxy[Any]) -> None:
    """Every form carries the session's token; a form from anywhere else is refused."""
    token = str(form.get("csrf") or "")
    if not token or not hmac.compare_digest(token, signed.csrf):
        log.warning("console: refused a form without a valid CSRF token from %s", signed.principal.actor_id)
        raise web.HTTPForbidden(text="表单已失效，请刷新页面后重试。")
