"""What each job kind does when it comes due.

Every handler first re-reads the case: a job scheduled yesterday may find the case closed,
reopened or already answered, and then does nothing. Handlers may run more than once
(at-least-once delivery); what they send carries an idempotency key, what they write is
keyed too, so a repeat changes nothing.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Awaitable, Callable

from bot.cases import alerts, complaint_analysis, escalation, kpis, notices, residents, surveys
from bot.cases.ports import Assistant, ConversationMemory, NotDeliverable, Notice, ResidentChannel
from bot.core import replies
from bot.core.clock import to_local, to_utc_naive
from bot.core.company import Company
from bot.core.kinds import TicketKind, TicketStatus
from bot.core.lifecycle import OPEN_STATUSES, STATUS_LABELS_ZH
from bot.core.metrics import NO_METRICS, Metrics
from bot.core.rules import ProjectRules
from bot.core.sla import next_progress_update_at, outside_quiet_hours
from bot.db import queue
from bot.db.models import Resident, Survey, SurveyStatus, Ticket
from bot.db.queue import ClaimedJob
from bot.db.records import require
from bot.db.store import TicketStore

log = logging.getLogger(__name__)

OPEN_SURVEY_INTENT = "EXTERNAL_satisfaction_survey"
CLOSE_SURVEY_INTENT = "EXTERNAL_survey_closed"


@dataclass
class Context:
    store: TicketStore
    company: Company
    residents: ResidentChannel
    assistant: Assistant
    memory: ConversationMemory | None = None  # the assistant's conversation store, for retention
    # The rules of the project whose job is running (`for_project`); the default project's otherwise.
    project: str | None = None
    metrics: Metrics = NO_METRICS  # jobs run, SLA breaches found (bot.app.metrics)

    @property
    def rules(self) -> ProjectRules:
        return self.company.rules(self.project) if self.company.knows(self.project) else self.company.default

    def for_project(self, project: str) -> "Context":
        return replace(self, project=project)


class Deferred(Exception):
    """Run the job again at `until`; not a failure."""

    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until


def _notice_values(ticket: Ticket | None, rules: ProjectRules, now: datetime, title: str) -> dict[str, str]:
    """What a template message's fields may use (see `wechat_templates` in the project file)."""
    local = to_local(now, rules.timezone)
    values = {"project": rules.name, "time": f"{local:%Y-%m-%d %H:%M}", "title": title}
    if ticket is not None:
        values.update(number=ticket.number, kind=replies.KIND_LABELS_ZH[TicketKind(ticket.kind)],
                      status=STATUS_LABELS_ZH[TicketStatus(ticket.status)], summary=ticket.description)
    else:
        values.update(number="", kind="满意度调查", status="", summary="年度满意度调查")
    return values


async def _deliver_or_alert(ctx: Context, notice: Notice, now: datetime, what: str) -> bool:
    """Deliver; when WeChat cannot reach the resident at all, staff are asked to phone them. True when sent."""
    try:
        await ctx.residents.deliver(notice, now)
        return True
    except NotDeliverable as exc:
        reason = str(exc)

        def unreachable() -> None:
            with ctx.store.transaction() as session:
                ticket = session.get(Ticket, notice.ticket_id) if notice.ticket_id else None
                alerts.raise_alert(session, reason=alerts.UNREACHABLE, ticket=ticket, project=ctx.rules.code,
                                   key=f"{notice.key}:unreachable",
                                   now=now, detail=f"{what} cannot reach the resident ({reason}); please call them")
        await asyncio.to_thread(unreachable)
        return False


# --- surveys ------------------------------------------------------------------------


async def _open_survey(ctx: Context, survey_id: int, now: datetime) -> None:
    """Open the survey in the resident's conversation and deliver its question."""
    def load() -> tuple[str, int | None, dict[str, str]] | None:
        with ctx.store.transaction() as session:
            survey = require(session, Survey, survey_id)
            if survey.status not in (SurveyStatus.SCHEDULED.value, SurveyStatus.SENT.value):
                return None
            title = "服务回访" if survey.ticket_id else "年度满意度调查"
            openid = survey.resident.openid
            if openid is None:
                raise LookupError(f"survey {survey_id}: resident {survey.resident_id} has no WeChat openid")
            return openid, survey.ticket_id, _notice_values(survey.ticket, ctx.rules, now, title)

    loaded = await asyncio.to_thread(load)
    if loaded is None:
        return
    openid, ticket_id, values = loaded
    said = await ctx.assistant.trigger_intent(openid, OPEN_SURVEY_INTENT, {"survey_id": str(survey_id)})
    if not said:
        raise RuntimeError("the assistant opened the survey but asked nothing")
    notice = Notice(openid, "\n\n".join(said), key=f"survey:{survey_id}:question", template="survey",
                    values=values, ticket_id=ticket_id, project=ctx.rules.code)
    sent = await _deliver_or_alert(ctx, notice, now, "the satisfaction survey")
    await asyncio.to_thread(_survey_sent if sent else _survey_undeliverable, ctx, survey_id, now)


def _survey_undeliverable(ctx: Context, survey_id: int, _now: datetime) -> None:
    with ctx.store.transaction() as session:
        survey = require(session, Survey, survey_id)
        survey.status = SurveyStatus.CANCELLED.value  # staff phone instead


def _survey_sent(ctx: Context, survey_id: int, now: datetime) -> None:
    follow = ctx.rules.follow_up
    with ctx.store.transaction() as session:
        survey = require(session, Survey, survey_id)
        if survey.status == SurveyStatus.SCHEDULED.value:
            survey.status = SurveyStatus.SENT.value
            survey.sent_at = now
        remind = now + timedelta(hours=follow.survey_reminder_hours)
        close = now + timedelta(hours=follow.survey_close_hours)
        for kind, due in ((queue.SURVEY_REMINDER, outside_quiet_hours(remind, close, ctx.rules)),
                          (queue.SURVEY_CLOSE, close)):
            queue.enqueue(session, kind=kind, project=survey.project, due_at=due, key=f"{kind}:{survey_id}", now=now,
                          ticket_id=survey.ticket_id, survey_id=survey_id, max_attempts=follow.job_max_attempts)


async def satisfaction_callback(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    def prepare() -> int | None:
        with ctx.store.transaction() as session:
            ticket = session.get(Ticket, job.ticket_id)
            stamp = job.payload.get("resolved_at")
            if ticket is None or ticket.status != TicketStatus.RESOLVED.value or ticket.resident is None \
                    or ticket.resolved_at is None or ticket.resolved_at.isoformat() != stamp:
                return None  # reopened, closed or answered since: this callback is moot
            last = ticket.resident.last_message_at
            later = now + timedelta(minutes=ctx.rules.follow_up.busy_defer_minutes)
            chatting = timedelta(minutes=ctx.rules.follow_up.busy_window_minutes)
            if last is not None and now - last < chatting and (ticket.callback_due_at is None
                                                               or later <= ticket.callback_due_at):
                raise Deferred(later, "resident is in a conversation")
            return surveys.callback_survey_for(session, ticket, stamp, now).id

    survey_id = await asyncio.to_thread(prepare)
    if survey_id is not None:
        await _open_survey(ctx, survey_id, now)


async def annual_survey(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    def prepare() -> int | None:
        with ctx.store.transaction() as session:
            resident = session.get(Resident, int(job.payload["resident_id"]))
            if resident is None or not resident.openid or not resident.subscribed:
                return None  # moved out or unfollowed since the campaign started
            return surveys.annual_survey_for(session, ctx.rules, resident, str(job.payload["campaign"]), now,
                                             job.payload.get("dimensions")).id

    survey_id = await asyncio.to_thread(prepare)
    if survey_id is not None:
        await _open_survey(ctx, survey_id, now)


async def survey_reminder(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    def load() -> Notice | None:
        with ctx.store.transaction() as session:
            survey = session.get(Survey, job.survey_id)
            if survey is None or survey.status != SurveyStatus.SENT.value:
                return None
            openid = survey.resident.openid
            if openid is None:
                raise LookupError(f"survey {survey.id}: resident {survey.resident_id} has no WeChat openid")
            return Notice(openid, replies.survey_reminder(survey.ticket),
                          key=f"survey:{survey.id}:reminder", template="survey",
                          values=_notice_values(survey.ticket, ctx.rules, now, "服务回访"),
                          ticket_id=survey.ticket_id, project=ctx.rules.code)

    def reminded() -> None:
        with ctx.store.transaction() as session:
            survey = require(session, Survey, job.survey_id)
            if survey.status == SurveyStatus.SENT.value:
                survey.status = SurveyStatus.REMINDED.value
                survey.reminded_at = now

    notice = await asyncio.to_thread(load)
    if notice is None:
        return
    try:
        await ctx.residents.deliver(notice, now)
    except NotDeliverable:
        log.warning("survey %d: reminder not deliverable; the survey will close as unanswered", job.survey_id)
    await asyncio.to_thread(reminded)


async def survey_close(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    def close() -> str | None:
        with ctx.store.transaction() as session:
            survey = session.get(Survey, job.survey_id)
            if survey is None:
                return None
            surveys.close_unanswered(session, ctx.rules, survey, now)
            return survey.resident.openid if survey.status == SurveyStatus.NO_ANSWER.value else None

    openid = await asyncio.to_thread(close)
    if openid:
        # The resident's conversation must stop reading their messages as survey answers.
        await ctx.assistant.trigger_intent(openid, CLOSE_SURVEY_INTENT, {})


# --- case follow-ups ------------------------------------------------------------------


async def progress_update(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    sequence = int(job.payload.get("sequence", 1))

    def load() -> Notice | None:
        with ctx.store.transaction() as session:
            ticket = session.get(Ticket, job.ticket_id)
            if ticket is None or TicketStatus(ticket.status) not in OPEN_STATUSES or ticket.resident is None:
                return None
            openid = ticket.resident.openid
            if openid is None:
                raise LookupError(f"ticket {ticket.number}: resident {ticket.resident_id} has no WeChat openid")
            return Notice(openid, replies.progress_update(ticket, ctx.rules),
                          key=f"progress:{ticket.id}:{sequence}", template="progress",
                          values=_notice_values(ticket, ctx.rules, now, "进展通知"),
                          ticket_id=ticket.id, project=ctx.rules.code)

    def schedule_next() -> None:
        with ctx.store.transaction() as session:
            ticket = require(session, Ticket, job.ticket_id)
            # Counted from when this update actually went out: a worker that was down catches
            # up with one update, not a burst of overdue ones.
            due = next_progress_update_at(ticket.created_at, max(job.due_at, now), ctx.rules)
            queue.enqueue(session, kind=queue.PROGRESS_UPDATE, project=ticket.project, due_at=due,
                          key=f"progress:{ticket.id}:{sequence + 1}",
                          now=now, ticket_id=ticket.id, payload={"sequence": sequence + 1},
                          max_attempts=ctx.rules.follow_up.job_max_attempts)

    notice = await asyncio.to_thread(load)
    if notice is None:
        return
    await _deliver_or_alert(ctx, notice, now, "the progress update")
    await asyncio.to_thread(schedule_next)


async def sla_check(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    deadline = str(job.payload.get("deadline", "due"))

    def check() -> bool:
        with ctx.store.transaction() as session:
            ticket = session.get(Ticket, job.ticket_id)
            return ticket is not None and escalation.check_deadline(
                session, ctx.rules, ticket, deadline=deadline, due_at=job.due_at,
                resolved_at=job.payload.get("resolved_at"), now=now)

    if await asyncio.to_thread(check):
        ctx.metrics.sla_breach(deadline)


async def unclaimed_check(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    def check() -> None:
        with ctx.store.transaction() as session:
            ticket = session.get(Ticket, job.ticket_id)
            if ticket is not None:
                escalation.chase_unclaimed(session, ctx.rules, ticket, sequence=int(job.payload.get("sequence", 1)),
                                           since=datetime.fromisoformat(str(job.payload["since"])), now=now)

    await asyncio.to_thread(check)


async def resident_message(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    """A staff member's words (or a notice about the human session) to the resident."""
    def load() -> Notice | None:
        with ctx.store.transaction() as session:
            ticket = session.get(Ticket, job.ticket_id)
            openid = str(job.payload.get("openid") or (ticket.resident.openid if ticket and ticket.resident else ""))
            if not openid:
                return None
            return Notice(openid, str(job.payload["text"]), key=job.idempotency_key, template="staff_reply",
                          values=_notice_values(ticket, ctx.rules, now, "客服回复"),
                          ticket_id=job.ticket_id, project=ctx.rules.code)

    notice = await asyncio.to_thread(load)
    if notice is not None:
        await _deliver_or_alert(ctx, notice, now, "a staff member's message")


async def message_log_retention(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    """Daily housekeeping: whatever holds residents' words past the retention period goes — the
    channel's raw message logs, the assistant's conversation events, finished jobs' payloads —
    and old failed-binding records; the case records (一户一档) are kept."""
    cutoff = now - timedelta(days=ctx.rules.follow_up.message_log_retention_days)
    purged = await ctx.residents.purge_raw_logs(cutoff)

    def forget_in_store() -> tuple[int, int]:
        with ctx.store.transaction() as session:
            return residents.forget_binding_attempts(session, now), queue.forget_old_payloads(session, cutoff, now)

    purged["binding attempts"], purged["job payloads"] = await asyncio.to_thread(forget_in_store)
    if ctx.memory is not None:
        purged["conversation events"] = await ctx.memory.prune(cutoff)
    log.info("records older than %s purged: %s", cutoff.date().isoformat(),
             ", ".join(f"{count} {what}" for what, count in purged.items()) or "nothing")


def schedule_daily(store: TicketStore, rules: ProjectRules, now: datetime) -> None:
    """Make sure today's housekeeping job exists (one per local day, whichever worker gets there first)."""
    local = to_local(now, rules.timezone)
    at = local.replace(hour=3, minute=30, second=0, microsecond=0)  # a quiet hour
    if at < local:
        at = at + timedelta(days=1)
    with store.transaction() as session:
        queue.enqueue(session, kind=queue.MESSAGE_LOG_RETENTION, project=rules.code, due_at=to_utc_naive(at),
                      key=f"{queue.MESSAGE_LOG_RETENTION}:{at.date().isoformat()}", now=now,
                      max_attempts=rules.follow_up.job_max_attempts)
        notices.schedule_daily_care(session, rules, now)
    schedule_quarterly(store, rules, now)


# --- notices to residents and proactive care (bot.cases.notices) ----------------------------


async def notice_delivery(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    """One resident's copy of a notice: sent once (the delivery row's status, the outbound key),
    recorded sent / unreachable / failed. Unreachable alerts no one (the notice's summary is
    logged); a failed attempt is retried, and recorded as failed after the last one."""
    notice_id, resident_id = int(job.payload["notice_id"]), int(job.payload["resident_id"])

    def load() -> Notice | None:
        with ctx.store.transaction() as session:
            return notices.outbound_for(session, ctx.rules, notice_id, resident_id, now)

    def record(status: str, via: str | None = None, error: str | None = None) -> None:
        with ctx.store.transaction() as session:
            notices.record_delivery(session, notice_id, resident_id, status=status, via=via, error=error, now=now)

    outbound = await asyncio.to_thread(load)
    if outbound is None:
        return
    try:
        how = await ctx.residents.deliver(outbound, now)
    except NotDeliverable as exc:
        await asyncio.to_thread(record, notices.UNREACHABLE, None, str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - recorded on the delivery, then retried by the queue
        last = job.attempts >= job.max_attempts
        await asyncio.to_thread(record, notices.FAILED if last else notices.PENDING, None,
                                f"{exc.__class__.__name__}: {exc}")
        if not last:
            raise
        log.warning("notice %d: delivery to resident %d failed for good: %s", notice_id, resident_id, exc)
        return
    await asyncio.to_thread(record, notices.DELIVERED, how if how in ("custom", "template") else None)


async def proactive_care(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    """Daily, for every project: welcome callbacks to newly bound households, and on the days the
    project greets, its special-group households' greetings (both idempotent)."""
    def run() -> None:
        for code in ctx.company.codes:
            rules = ctx.company.rules(code)
            day = to_local(job.due_at, rules.timezone).date()
            with ctx.store.transaction() as session:
                welcomed = notices.schedule_move_in_callbacks(session, rules, now)
                greeted = notices.schedule_holiday_greetings(session, rules, day, now=now)
            if welcomed or greeted:
                log.info("project %s: %d welcome callback(s), %d holiday greeting(s) scheduled", code, welcomed,
                         greeted)

    await asyncio.to_thread(run)


# --- the quarter-end report (bot.cases.complaint_analysis) ------------------------------------


def schedule_quarterly(store: TicketStore, rules: ProjectRules, now: datetime) -> None:
    """Make sure this quarter's report job exists: due 04:00 local on the first day of the next
    quarter, one per quarter (its key), whichever worker gets there first."""
    quarter = kpis.quarter_of(to_local(now, rules.timezone).date(), rules.timezone)
    due = to_local(quarter.end, rules.timezone).replace(hour=4)
    with store.transaction() as session:
        queue.enqueue(session, kind=queue.QUARTERLY_REPORT, project=rules.code, due_at=to_utc_naive(due),
                      key=f"{queue.QUARTERLY_REPORT}:{quarter.code}", now=now,
                      payload={"quarter": to_local(quarter.start, rules.timezone).date().isoformat()},
                      max_attempts=rules.follow_up.job_max_attempts)


async def quarterly_report(ctx: Context, job: ClaimedJob, now: datetime) -> None:
    """The quarter's KPIs and complaint analysis of every project and of the company, each beside
    the previous quarter's, written as JSON files (REPORTS_DIR/<quarter>/<project>.json)."""
    period = kpis.quarter_of(date.fromisoformat(str(job.payload["quarter"])), ctx.rules.timezone)

    def write() -> list[str]:
        with ctx.store.transaction() as session:
            reports = complaint_analysis.quarterly_report_for(session, ctx.company.codes, period,
                                                              kpis.previous(period), ctx.company.rules, now)
        return [str(path) for path in complaint_analysis.write_reports(reports, complaint_analysis.reports_dir(),
                                                                       period)]

    log.info("quarterly report %s written: %s", period.label, ", ".join(await asyncio.to_thread(write)))


Handler = Callable[[Context, ClaimedJob, datetime], Awaitable[None]]

HANDLERS: dict[str, Handler] = {
    queue.SATISFACTION_CALLBACK: satisfaction_callback,
    queue.ANNUAL_SURVEY: annual_survey,
    queue.SURVEY_REMINDER: survey_reminder,
    queue.SURVEY_CLOSE: survey_close,
    queue.PROGRESS_UPDATE: progress_update,
    queue.SLA_CHECK: sla_check,
    queue.UNCLAIMED_CHECK: unclaimed_check,
    queue.RESIDENT_MESSAGE: resident_message,
    queue.MESSAGE_LOG_RETENTION: message_log_retention,
    queue.QUARTERLY_REPORT: quarterly_report,
    queue.NOTICE_DELIVERY: notice_delivery,
    queue.PROACTIVE_CARE: proactive_care,
}
