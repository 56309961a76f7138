"""The staff console (web): `install(app, …)` mounts it under /console on the staff listener —
never on the public WeChat one. Server-rendered (Jinja2), htmx for the parts that refresh."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

import jinja2
from aiohttp import web

from bot.console import outreach, reports, survey_exports, views
from bot.console.assets import INSTALL_HINT, VENDOR_FILES, missing_assets
from bot.console.session import CLOCK, COMPANY, PATH, SECURE, STORE
from bot.core.company import Company
from bot.db.store import TicketStore

HERE = Path(__file__).resolve().parent
OWN_STATIC = HERE / "static"


class AssetsMissing(RuntimeError):
    pass


async def vendor_file(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = VENDOR_FILES.get(name) or (OWN_STATIC / name if (OWN_STATIC / name).is_file() and "/" not in name
                                      else None)
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "max-age=3600"})


ROUTES = [
    web.get(f"{PATH}", views.home),
    web.get(f"{PATH}/", views.home),
    web.get(f"{PATH}/login", views.login_page),
    web.post(f"{PATH}/login", views.login),
    web.post(f"{PATH}/logout", views.logout),
    web.get(f"{PATH}/queue", views.queue_page),
    web.get(f"{PATH}/queue/rows", views.queue_rows),
    web.get(f"{PATH}/cases/{{number}}", views.case_page),
    web.post(f"{PATH}/cases/{{number}}/{{action}}", views.case_action),
    web.get(f"{PATH}/households", views.household_page),
    web.post(f"{PATH}/households/{{resident_id:\\d+}}/{{action}}", views.household_action),
    web.get(f"{PATH}/alerts", views.alerts_page),
    web.post(f"{PATH}/alerts/{{alert_id:\\d+}}/ack", views.acknowledge_alert),
    web.post(f"{PATH}/jobs/{{job_id:\\d+}}/retry", views.retry_job),
    web.get(f"{PATH}/notices", outreach.notices_page),
    web.post(f"{PATH}/notices", outreach.compose_notice),
    web.get(f"{PATH}/notices/{{notice_id:\\d+}}", outreach.notice_page),
    web.post(f"{PATH}/notices/{{notice_id:\\d+}}/{{action}}", outreach.notice_action),
    web.get(f"{PATH}/surveys", outreach.surveys_page),
    web.post(f"{PATH}/surveys/{{action}}", outreach.survey_action),
    web.get(f"{PATH}/surveys/{{campaign}}.xlsx", survey_exports.survey_excel),
    web.get(f"{PATH}/surveys/{{campaign}}.pdf", survey_exports.survey_pdf),
    web.get(f"{PATH}/reports", reports.report_page),
    web.get(f"{PATH}/reports.xlsx", reports.report_excel),
    web.get(f"{PATH}/reports.pdf", reports.report_pdf),
    web.get(f"{PATH}/static/{{name}}", vendor_file),
]


@web.middleware
async def security_headers(request: web.Request, handler: Callable) -> web.StreamResponse:  # type: ignore[type-arg]
    response = await handler(request)
    if request.path.startswith(PATH):
        # Our own files only: no inline script, no frames, no third-party origin.
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; "
                                    "style-src 'self'; script-src 'self'; img-src 'self' https: data:")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def install(app: web.Application, *, company: Company, clock: Callable[[], datetime], secure_cookies: bool) -> None:
    """Add the console's routes; the store is attached at startup (`attach_store`)."""
    missing = missing_assets()
    if missing:
        raise AssetsMissing(f"the console's front-end files are not installed ({', '.join(missing)}): {INSTALL_HINT}")
    app[COMPANY] = company
    app[CLOCK] = clock
    app[SECURE] = secure_cookies
    app[views.TEMPLATES] = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                              autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                                              lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    app.middlewares.append(security_headers)
    app.add_routes(ROUTES)


def attach_store(app: web.Application, store: TicketStore) -> None:
    app[STORE] = store
