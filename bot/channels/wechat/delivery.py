"""Notices to residents from the worker: customer-service message inside WeChat's 48-hour
window, template message outside it. Each attempt is recorded (outbound log, ticket event),
and a notice whose key was already sent is never sent again."""
from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from bot.cases.ports import NotDeliverable, Notice
from bot.channels.wechat import inbound, replay
from bot.channels.wechat.api import CUSTOMER_SERVICE_WINDOW, OUT_OF_WINDOW, WeChatApi, WeChatApiError
from bot.channels.wechat.models import OutboundMessage
from bot.channels.wechat.protocol import split_for_wechat
from bot.core.company import Company
from bot.core.privacy import mask_openid
from bot.core.rules import ProjectRules, TemplateMessage
from bot.db.models import Resident, Ticket
from bot.db.records import SYSTEM, add_event, require
from bot.db.store import TicketStore

log = logging.getLogger(__name__)

TEMPLATE_FIELD_MAX = 20  # WeChat's limit for thing/character fields; longer values are refused


def template_field(value: str) -> str:
    """One line, at most 20 characters (an ellipsis marks a cut)."""
    flat = re.sub(r"\s+", " ", value).strip()
    return flat if len(flat) <= TEMPLATE_FIELD_MAX else flat[:TEMPLATE_FIELD_MAX - 1] + "…"


def template_data(template: TemplateMessage, values: dict[str, str]) -> dict[str, str]:
    data = {}
    for key, pattern in template.fields:
        try:
            data[key] = template_field(pattern.format(**values))
        except (KeyError, IndexError, ValueError):
            log.error("template field %s: pattern %r uses a value this notice does not have", key, pattern)
            data[key] = template_field(values.get("title", ""))
    return data


def _in_window(store: TicketStore, openid: str, now: datetime) -> bool:
    with store.transaction() as session:
        last = session.execute(select(func.max(Resident.last_message_at)).where(Resident.openid == openid)).scalar()
    return last is not None and now - last < CUSTOMER_SERVICE_WINDOW


def already_sent(store: TicketStore, key: str) -> bool:
    with store.transaction() as session:
        return session.execute(
            select(OutboundMessage.id).where(OutboundMessage.idempotency_key == key,
                                             OutboundMessage.status == "sent").limit(1)
        ).first() is not None


def _record(store: TicketStore, notice: Notice, *, key: str | None, content: str, via: str, status: str,
            error: str | None, now: datetime) -> None:
    with store.transaction() as session:
        # Failed attempts are kept too, without the key: the key marks a delivered message.
        session.add(OutboundMessage(openid=notice.openid, content=content, created_at=now, status=status, error=error,
                                    ticket_id=notice.ticket_id, via=via,
                                    idempotency_key=key if status == "sent" else None))
        if notice.ticket_id is not None:
            ticket = require(session, Ticket, notice.ticket_id)
            add_event(session, ticket, actor=SYSTEM, channel="wechat", action="notified", content=content,
                      result=f"{via}: {status}" + (f" ({error})" if error else ""), now=now)


class WeChatResidentChannel:
    """`ResidentChannel` over the official account: free text in the window, a template outside it."""

    def __init__(self, api: WeChatApi, store: TicketStore, company: Company) -> None:
        self.api = api
        self.store = store
        self.company = company

    async def deliver(self, notice: Notice, now: datetime) -> str:
        rules = self.company.rules(notice.project) if self.company.knows(notice.project) else self.company.default
        return await deliver(self.api, self.store, rules, notice, now)

    async def purge_raw_logs(self, before: datetime) -> dict[str, int]:
        inbound_rows, outbound_rows = await asyncio.to_thread(inbound.purge_logs, self.store, before)
        nonces = await asyncio.to_thread(replay.forget_before, self.store, before)
        return {"inbound": inbound_rows, "outbound": outbound_rows, "nonces": nonces}

    async def raw_logs_of(self, openid: str) -> dict[str, list[dict[str, Any]]]:
        return await asyncio.to_thread(inbound.logs_of, self.store, openid)

    async def erase_raw_logs_of(self, openid: str) -> dict[str, int]:
        inbound_rows, outbound_rows = await asyncio.to_thread(inbound.erase_logs_of, self.store, openid)
        return {"inbound": inbound_rows, "outbound": outbound_rows}


async def deliver(api: WeChatApi, store: TicketStore, rules: ProjectRules, notice: Notice, now: datetime) -> str:
    """Send the notice once. Returns how: 'custom', 'template' or 'already_sent'.

    A long text goes out in parts, each with its own key, so a retry sends only what is missing.
    """
    parts = split_for_wechat(notice.text)
    part_keys = [notice.key if index == 0 else f"{notice.key}#{index}" for index in range(len(parts))]
    sent = [await asyncio.to_thread(already_sent, store, key) for key in part_keys]
    if all(sent):
        log.info("notice %s already delivered; not sending it again", notice.key)
        return "already_sent"
    if any(sent) or await asyncio.to_thread(_in_window, store, notice.openid, now):
        try:
            for part, key, done in zip(parts, part_keys, sent):
                if done:
                    continue
                await api.send_text(notice.openid, part)
                await asyncio.to_thread(_record, store, notice, key=key, content=part, via="custom",
                                        status="sent", error=None, now=now)
            return "custom"
        except Exception as exc:  # every attempt is recorded, whatever failed
            await asyncio.to_thread(_record, store, notice, key=None, content=notice.text, via="custom",
                                    status="failed", error=f"{exc.__class__.__name__}: {exc}", now=now)
            if not (isinstance(exc, WeChatApiError) and exc.errcode == OUT_OF_WINDOW):
                raise
            log.info("%s is outside the customer-service window; trying a template", mask_openid(notice.openid))
    template = rules.templates.get(notice.template)
    if template is None:
        await asyncio.to_thread(_record, store, notice, key=None, content=notice.text, via="template",
                                status="failed", error="no template configured", now=now)
        raise NotDeliverable(f"no '{notice.template}' template configured and the resident is outside "
                             "the 48-hour window")
    data = template_data(template, notice.values)
    summary = " / ".join(data.values())
    try:
        await api.send_template(notice.openid, template.template_id, data, template.url)
    except Exception as exc:
        await asyncio.to_thread(_record, store, notice, key=None, content=summary, via="template", status="failed",
                                error=f"{exc.__class__.__name__}: {exc}", now=now)
        raise
    await asyncio.to_thread(_record, store, notice, key=notice.key, content=summary, via="template", status="sent",
                            error=None, now=now)
    return "template"
