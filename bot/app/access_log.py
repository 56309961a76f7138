"""HTTP access log without query strings.

WeChat appends the resident's `openid` to every push URL (`/wechat?...&openid=o…`), and
aiohttp's default access log prints the whole request line. Logging the path only keeps
openids, signatures and nonces out of the logs.
"""
from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

# Sent by HAProxy's health checks of the gateway replicas (bot.app.balancer): two a second
# each, left out of the log when they pass.
HEALTH_CHECK_HEADER = "X-Wuye-Health-Check"


class PathOnlyAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status == 200 and HEALTH_CHECK_HEADER in request.headers:
            return
        self.logger.info("%s %s %s %s %.0f ms", request.remote, request.method, request.path,
                         response.status, time * 1000)
