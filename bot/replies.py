"""Resident-facing wording (polite Simplified Chinese) built from domain facts.

Kept apart from the actions so the gateway, scheduler and staff side phrase the same
facts the same way.
"""
from __future__ import annotations

from datetime import datetime

from bot.clock import to_local
from bot.lifecycle import STATUS_LABELS_ZH
from bot.models import Priority, Ticket, TicketKind, TicketStatus
from bot.rules import ProjectRules

KIND_LABELS_ZH = {
    TicketKind.REPAIR: "报修",
    TicketKind.COMPLAINT: "投诉",
    TicketKind.ENQUIRY: "咨询",
    TicketKind.SUGGESTION: "建议",
    TicketKind.PRAISE: "表扬",
}

# First-aid advice for emergencies, keyed by words in the description.
_SAFETY_TIPS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("燃气", "煤气", "漏气"), "请立即关闭燃气总阀、打开门窗通风，不要开关电器或使用明火，并尽快离开室内。"),
    (("着火", "起火", "火情", "冒烟", "冒火"), "如有明火请立即拨打119并有序撤离，不要乘坐电梯。"),
    (("困人", "被困", "困在电梯", "关在电梯", "卡在电梯"), "请保持冷静，按下轿厢内的警铃或拨打电梯内的求助电话，不要强行扒门。"),
    (("漏水", "爆管", "爆了", "跑水", "淹", "水漫", "喷水"), "请先关闭进户水阀，并把贵重物品和电器移到高处。"),
    (("断电", "停电", "没电", "跳闸"), "请暂时不要自行拆修电路，注意用电安全。"),
)


def format_local(moment: datetime | None, rules: ProjectRules) -> str:
    if moment is None:
        return ""
    local = to_local(moment, rules.timezone)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def safety_tip(description: str) -> str:
    for words, tip in _SAFETY_TIPS:
        if any(word in description for word in words):
            return tip
    return ""


def repair_confirmation(ticket: Ticket, rules: ProjectRules) -> str:
    sla = rules.sla
    lines = [f"您的报修已登记，工单号 {ticket.number}。"]
    if ticket.priority == Priority.EMERGENCY.value:
        lines.append(f"这是紧急报修，维修人员将在 {sla.emergency_repair_onsite_minutes} 分钟内到场"
                     f"（{format_local(ticket.due_at, rules)} 前）。")
        tip = safety_tip(ticket.description)
        if tip:
            lines.append(tip)
    else:
        when = f"，上门时间按您说的“{ticket.visit_time}”安排" if ticket.visit_time else ""
        lines.append(f"维修人员会尽快与您联系{when}，一般维修将在 {sla.general_repair_hours} 小时内完成"
                     f"（{format_local(ticket.due_at, rules)} 前）；如需配件或外部单位协助，我们会提前告诉您预计完成时间。")
    lines.append("完工后我们会回访，听听您对维修的意见。随时发送“查询进度”可查看处理情况。")
    return "\n".join(lines)


def complaint_confirmation(ticket: Ticket, rules: ProjectRules) -> str:
    sla = rules.sla
    due = format_local(ticket.due_at, rules)
    lines = [f"非常抱歉给您带来不便，您的投诉已登记，工单号 {ticket.number}。"]
    if ticket.priority == Priority.MAJOR.value:
        lines.append(f"我们已将此事列为重大投诉，立即报告项目负责人和公司客服部门，"
                     f"将在 {sla.major_complaint_hours} 小时内（{due} 前）与您联系。")
    elif ticket.priority == Priority.URGENT.value:
        lines.append(f"我们会优先处理，将在 {sla.urgent_complaint_hours} 小时内（{due} 前）给您答复。")
    else:
        lines.append(f"我们将在 {sla.general_complaint_working_days} 个工作日内（{due} 前）给您答复；"
                     f"如情况较复杂，最长不超过 {sla.complaint_max_working_days} 个工作日，其间会随时告知进展。")
    lines.append("由首位接手的同事负责跟进到底，处理完成后会回访您是否满意。")
    return "\n".join(lines)


def feedback_confirmation(ticket: Ticket, rules: ProjectRules) -> str:
    if ticket.kind == TicketKind.PRAISE.value:
        return (f"谢谢您的肯定！您的表扬已记录（编号 {ticket.number}），我们会转达给相关同事，"
                "大家一定会继续努力。")
    return (f"感谢您的宝贵建议！已记录（编号 {ticket.number}），我们会认真研究，"
            f"并在 {rules.sla.suggestion_reply_working_days} 个工作日内（{format_local(ticket.due_at, rules)} 前）"
            "给您回复。")


def status_line(ticket: Ticket, rules: ProjectRules) -> str:
    kind = KIND_LABELS_ZH[TicketKind(ticket.kind)]
    status = STATUS_LABELS_ZH[TicketStatus(ticket.status)]
    summary = ticket.description.strip().replace("\n", " ")
    if len(summary) > 20:
        summary = summary[:20] + "…"
    due = f"，预计 {format_local(ticket.due_at, rules)} 前" if ticket.due_at else ""
    return f"· {ticket.number}【{kind}】{summary}：{status}{due}"


def status_overview(tickets: list[Ticket], rules: ProjectRules) -> str:
    if not tickets:
        return "您目前没有正在处理中的工单。如需报修或投诉，直接告诉我就可以。"
    lines = [f"您有 {len(tickets)} 个正在处理的工单："]
    lines.extend(status_line(ticket, rules) for ticket in tickets)
    return "\n".join(lines)


FORM_LABELS_ZH = {"repair_form": "报修", "complaint_form": "投诉"}


def form_cancelled(form: str) -> str:
    return f"好的，已为您取消本次{FORM_LABELS_ZH.get(form, '')}登记，没有生成工单。还有其他需要随时告诉我。"


def ticket_cancelled(number: str) -> str:
    return f"已为您撤销工单 {number}。如以后还需要，随时再告诉我。"


def ticket_not_found(number: str) -> str:
    return f"没有找到您名下的工单 {number}，请核对一下工单号。"


def nothing_to_cancel() -> str:
    return "您目前没有可以撤销的工单（已开始处理的工单无法在线撤销，如有需要可以转人工客服）。"


def which_to_cancel(numbers: list[str]) -> str:
    return f"您有多个未开始处理的工单：{'、'.join(numbers)}。请回复“取消 + 工单号”，告诉我要撤销哪一个。"


def already_started(number: str) -> str:
    return f"工单 {number} 已经在处理中，无法在线撤销；如需更改，请回复“转人工”。"
