"""What staff see in Telegram: case cards and short case views (resident contact data masked)."""
from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.cases.escalation import REASON_LABELS_ZH
from bot.cases.handoff import ACTIONS, CLAIM, REPLY, RESOLVE
from bot.cases.tickets import tier_reason, urgency_reason
from bot.core.kinds import Priority, TicketKind, TicketStatus
from bot.core.lifecycle import STATUS_LABELS_ZH
from bot.core.privacy import mask_phone, redact_text
from bot.core.replies import KIND_LABELS_ZH, PRIORITY_LABELS_ZH, format_local
from bot.core.rules import ProjectRules
from bot.db.models import StaffAlert, Ticket


def card_keyboard(number: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        InlineKeyboardButton("接单", callback_data=f"{CLAIM}:{number}"),
        InlineKeyboardButton("回复", callback_data=f"{REPLY}:{number}"),
        InlineKeyboardButton("办结", callback_data=f"{RESOLVE}:{number}"),
    ]])


def parse_button(data: str | None) -> tuple[str, str] | None:
    action, _, number = (data or "").partition(":")
    return (action, number) if action in ACTIONS and number else None


def _summary(text: str, limit: int = 120) -> str:
    flat = " ".join(redact_text(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def ticket_lines(ticket: Ticket, rules: ProjectRules) -> list[str]:
    kind = KIND_LABELS_ZH[TicketKind(ticket.kind)]
    priority = PRIORITY_LABELS_ZH[Priority(ticket.priority)] if ticket.priority else ""
    phone = mask_phone(ticket.resident.phone) if ticket.resident is not None and ticket.resident.phone else "未登记"
    lines = [
        f"工单：{ticket.number}（{kind}{' · ' + priority if priority else ''}）",
        f"状态：{STATUS_LABELS_ZH[TicketStatus(ticket.status)]}" + (f" · 接单人 {ticket.assignee}" if ticket.assignee else ""),
        f"房号：{ticket.room or '未提供'}",
        f"内容：{_summary(ticket.description)}",
    ]
    reason = urgency_reason(ticket)
    if reason:
        lines.append(f"紧急原因：{reason}")
    grounds = tier_reason(ticket)
    if grounds:
        lines.append(f"定级依据：{grounds}")
    if ticket.demand:
        lines.append(f"诉求：{_summary(ticket.demand, 60)}")
    if ticket.due_at:
        lines.append(f"时限：{format_local(ticket.due_at, rules)}")
    lines.append(f"居民电话：{phone}")
    return lines


def alert_card(alert: StaffAlert, rules: ProjectRules) -> str:
    label = REASON_LABELS_ZH.get(alert.reason, alert.reason)
    if alert.ticket is None:
        return f"【{label}】\n{_summary(alert.detail, 300)}"
    return "\n".join([f"【{label}】"] + ticket_lines(alert.ticket, rules))


def ticket_view(ticket: Ticket, rules: ProjectRules, events: int = 8) -> str:
    lines = ticket_lines(ticket, rules) + ["", "最近记录："]
    for event in list(ticket.events)[-events:]:
        what = event.to_status and STATUS_LABELS_ZH.get(TicketStatus(event.to_status)) or event.action
        content = f"：{_summary(event.content, 60)}" if event.content and event.action != "claimed" else ""
        lines.append(f"· {format_local(event.at, rules)} {event.actor} {what}{content}")
    return "\n".join(lines)


def case_list(title: str, tickets: list[Ticket], rules: ProjectRules) -> str:
    if not tickets:
        return f"{title}：暂无。"
    rows = [f"{title}（{len(tickets)}）："]
    for ticket in tickets:
        due = f" · 时限 {format_local(ticket.due_at, rules)}" if ticket.due_at else ""
        rows.append(f"· {ticket.number} {KIND_LABELS_ZH[TicketKind(ticket.kind)]} {ticket.room or ''}"
                    f" {_summary(ticket.description, 30)}{due}")
    return "\n".join(rows)
