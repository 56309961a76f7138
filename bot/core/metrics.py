"""What the long-running processes report about themselves (the port; bot.app.metrics is the
Prometheus side). This base class reports nowhere: what tests, the CLI and anything built
without a registry get, so the adapters never need to ask whether they are being watched.

Labels are small closed sets (a delivery, a reason, a job kind, an errcode), never a
resident, a case or a URL.
"""
from __future__ import annotations

# How an answer reached the resident (`reply_sent`).
PASSIVE = "passive"  # in the HTTP response to WeChat's push, within its 5-second window
CUSTOM = "custom"  # a customer-service message, the passive window missed
RETRIED = "retried"  # a customer-service message once the assistant was back (the message waited)

# Why the assistant could not answer (`assistant_error`).
ACTION_SERVER_DOWN = "action_server_down"
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
HTTP_5XX = "http_5xx"
AUTH_REFUSED = "auth_refused"
REFUSED = "refused"  # any other 4xx: a bad request, not retried


class Metrics:
    def reply_sent(self, delivery: str, seconds: float) -> None:
        """An answer went out `seconds` after the resident's message arrived."""

    def reply_deferred(self) -> None:
        """An answer missed the passive window and goes as a customer-service message."""

    def assistant_error(self, reason: str) -> None:
        """A call to the assistant failed (one of the reasons above)."""

    def wechat_api_error(self, call: str, errcode: int) -> None:
        """A WeChat API call returned a non-zero errcode."""

    def job_finished(self, kind: str, result: str, seconds: float) -> None:
        """The worker ran a job: done, deferred, failed (retried later) or parked."""

    def sla_breach(self, deadline: str) -> None:
        """A case missed a deadline (due / final / first_feedback / callback) and staff were alerted."""

    def heartbeat(self) -> None:
        """The worker is alive: it finished a job or a round of its loop."""


NO_METRICS = Metrics()
