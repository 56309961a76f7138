"""Resident-facing wording (polite Simplified Chinese) built from domain facts.

Kept apart from the actions so the gateway, scheduler and staff side phrase the same
facts the same way.
"""
from __future__ import annotations

from datetime import datetime
from typing import Protocol, Sequence

from bot.core.access import ROLE_LABELS, Role
from bot.core.clock import to_local
from bot.core.kinds import Case, Priority, TicketKind, TicketStatus
from bot.core.lifecycle import STATUS_LABELS_ZH
from bot.core.notices import CARE_KINDS, PERIOD_LABELS_ZH, NoticeFacts
from bot.core.notices import KIND_LABELS_ZH as NOTICE_LABELS_ZH
from bot.core.privacy import mask_phone
from bot.core.rules import ProjectRules
from bot.core.urgency import assess

KIND_LABELS_ZH = {
    TicketKind.REPAIR: "报修",
    TicketKind.COMPLAINT: "投诉",
    TicketKind.ENQUIRY: "咨询",
    TicketKind.SUGGESTION: "建议",
    TicketKind.PRAISE: "表扬",
}

PRIORITY_LABELS_ZH = {
    Priority.EMERGENCY: "紧急",
    Priority.NORMAL: "一般",
    Priority.MAJOR: "重大",
    Priority.URGENT: "紧急",
    Priority.GENERAL: "一般",
}

def format_local(moment: datetime | None, rules: ProjectRules) -> str:
    if moment is None:
        return ""
    local = to_local(moment, rules.timezone)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def repair_confirmation(ticket: Case, rules: ProjectRules, *, advice_given: bool = False) -> str:
    """Number, promise and time first (what fits a phone's first screen), details after."""
    sla = rules.sla
    urgency = assess(ticket.description, rules.urgency) if ticket.priority == Priority.EMERGENCY.value else None
    due = format_local(ticket.due_at, rules)
    lines = []
    # Where life is at risk, what to do now comes before anything else (unless the form
    # already said it while asking for the room).
    if urgency and urgency.life_risk and urgency.advice and not advice_given:
        lines.append(urgency.advice)
    if ticket.priority == Priority.EMERGENCY.value:
        lines.append(f"紧急报修已登记，工单号 {ticket.number}，维修人员 {sla.emergency_repair_onsite_minutes} 分钟内"
                     f"到场（{due} 前）。")
        if ticket.room:
            lines.append(f"地址：{ticket.room}。")
        if urgency and not urgency.life_risk and urgency.advice:
            lines.append(urgency.advice)
        return "\n".join(lines)
    lines.append(f"报修已登记，工单号 {ticket.number}，{sla.general_repair_hours} 小时内修好（{due} 前）。")
    when = f"，上门时间按“{ticket.visit_time}”" if ticket.visit_time else ""
    room = f"地址：{ticket.room}" if ticket.room else "维修人员会先联系您"
    lines.append(f"{room}{when}。需配件时会提前告知；完工后会回访，发“查询进度”可查看。")
    return "\n".join(lines)


def complaint_confirmation(ticket: Case, rules: ProjectRules, chased_repair: str | None = None) -> str:
    """Number, promise and time first; how it is followed up after."""
    sla = rules.sla
    due = format_local(ticket.due_at, rules)
    if ticket.priority == Priority.MAJOR.value:
        promise = f"已报告项目负责人和公司客服部，{sla.major_complaint_hours} 小时内（{due} 前）联系您"
    elif ticket.priority == Priority.URGENT.value:
        promise = f"我们会优先处理，{sla.urgent_complaint_hours} 小时内（{due} 前）答复您"
    else:
        promise = f"{sla.general_complaint_working_days} 个工作日内（{due} 前）答复您"
    lines = [f"非常抱歉给您添麻烦了。投诉已登记，工单号 {ticket.number}，{promise}。"]
    if chased_repair:
        lines.append(f"您的报修 {chased_repair} 已同步催办。")
    if ticket.priority == Priority.GENERAL.value:
        lines.append(f"情况复杂的最长不超过 {sla.complaint_max_working_days} 个工作日，其间随时告知进展；"
                     "专人跟进到底，办完后回访。")
    else:
        lines.append("专人跟进到底，办完后回访。")
    return "\n".join(lines)


def feedback_confirmation(ticket: Case, rules: ProjectRules) -> str:
    if ticket.kind == TicketKind.PRAISE.value:
        return (f"谢谢您的肯定！您的表扬已记录（编号 {ticket.number}），我们会转达给相关同事，"
                "大家一定会继续努力。")
    return (f"感谢您的宝贵建议！已记录（编号 {ticket.number}），我们会认真研究，"
            f"并在 {rules.sla.suggestion_reply_working_days} 个工作日内（{format_local(ticket.due_at, rules)} 前）"
            "给您回复。")


def status_line(ticket: Case, rules: ProjectRules) -> str:
    kind = KIND_LABELS_ZH[TicketKind(ticket.kind)]
    status = STATUS_LABELS_ZH[TicketStatus(ticket.status)]
    summary = ticket.description.strip().replace("\n", " ")
    if len(summary) > 20:
        summary = summary[:20] + "…"
    due = f"，预计 {format_local(ticket.due_at, rules)} 前" if ticket.due_at else ""
    return f"· {ticket.number}【{kind}】{summary}：{status}{due}"


def case_status(ticket: Case, rules: ProjectRules) -> str:
    """One named case: where it stands."""
    return f"您问的工单情况如下：\n{status_line(ticket, rules)}"


class CaseHolder(Protocol):
    """Who holds a case (bot.cases.progress.Holder): their role, if known, and their name."""

    @property
    def role(self) -> Role | None: ...
    @property
    def name(self) -> str: ...


class ProgressEntry(Protocol):
    """A line of 查询进度 (bot.cases.progress.ListedProgress)."""

    @property
    def ticket(self) -> Case: ...
    @property
    def holder(self) -> CaseHolder | None: ...
    @property
    def finished_at(self) -> datetime | None: ...


class ProgressReport(Protocol):
    """查询进度's answer (bot.cases.progress.Progress): open cases, those finished within `days`."""

    @property
    def open(self) -> Sequence[ProgressEntry]: ...
    @property
    def recent(self) -> Sequence[ProgressEntry]: ...
    @property
    def days(self) -> int: ...


# How residents hear of a holder's role; the other roles by their label (主管, 项目负责人 …).
HOLDER_ROLES_ZH = {Role.AGENT: "客服人员", Role.TECHNICIAN: "维修师傅", Role.ADMIN: "工作人员"}
PROGRESS_LINES = 5  # what fits a phone's screen; the rest is counted


def holder_words(holder: CaseHolder | None, rules: ProjectRules) -> str:
    """"维修师傅", or the holder's name where the project shows names; "" when nobody holds the case."""
    if holder is None:
        return ""
    if rules.self_service.progress_shows_holder_name and holder.name:
        return holder.name
    if holder.role is None:
        return "工作人员"
    return HOLDER_ROLES_ZH.get(holder.role, ROLE_LABELS[holder.role])


def _progress_line(entry: ProgressEntry, rules: ProjectRules, now: datetime) -> str:
    ticket = entry.ticket
    kind = KIND_LABELS_ZH.get(TicketKind(ticket.kind), "工单")
    status = TicketStatus(ticket.status)
    label, who = STATUS_LABELS_ZH[status], holder_words(entry.holder, rules)
    if entry.finished_at is not None:  # finished: when, and who did it
        did = f"（{who}经办）" if who and status is not TicketStatus.CANCELLED else ""
        return f"· {ticket.number} {kind}：{_day(entry.finished_at, rules, now)}{label}{did}"
    doing = "正在跟进" if status in (TicketStatus.IN_PROGRESS, TicketStatus.REOPENED) else "已接单"
    held = f"，{who}{doing}" if who else ""
    due = f"，预计 {format_local(ticket.due_at, rules)} 前" if ticket.due_at else ""
    return f"· {ticket.number} {kind}：{label}{held}{due}"


def progress_overview(progress: ProgressReport, rules: ProjectRules, now: datetime) -> str:
    """查询进度: the open cases, then those finished lately; number first, at most PROGRESS_LINES cases."""
    total = len(progress.open) + len(progress.recent)
    if not total:
        return "您目前没有正在处理中的工单。如需报修或投诉，直接告诉我就可以。"
    lines = [f"您有 {len(progress.open)} 件正在处理的工单：" if progress.open else "您目前没有正在处理中的工单。"]
    lines.extend(_progress_line(entry, rules, now) for entry in progress.open[:PROGRESS_LINES])
    room = PROGRESS_LINES - min(len(progress.open), PROGRESS_LINES)
    if progress.recent and room:
        lines.append(f"近 {progress.days} 天已结束的：")
        lines.extend(_progress_line(entry, rules, now) for entry in progress.recent[:room])
    if total > PROGRESS_LINES:
        lines.append(f"等 {total} 件，发送工单号可查看某一件的详情。")
    return "\n".join(lines)


FORM_LABELS_ZH = {"repair_form": "报修", "complaint_form": "投诉", "phone_change_form": "手机号变更"}


def room_corrected(room: str) -> str:
    return f"好的，房号已更正为 {room}。"


def ticket_room_corrected(number: str, room: str) -> str:
    return f"好的，工单 {number} 的地址已改为 {room}，不用重新报修。"


def room_unchanged(number: str, room: str) -> str:
    return f"工单 {number} 登记的地址就是 {room}，不用改。"


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


# --- WeChat gateway wording -------------------------------------------------

BINDING_PROMPT = ("为了更快为您服务，请发送您的“房号+手机号”完成住户绑定，例如：3栋2单元501 13812345678。"
                  "绑定后报修、投诉会自动带上您的房号。")


def welcome(project_name: str = "") -> str:
    """The first words to a new follower; `project_name` when they came in through a project's QR code."""
    where = f"欢迎来到{project_name}！" if project_name else "欢迎关注！"
    return (f"您好，{where}我是物业智能客服，24小时在线，可以帮您报修、投诉、咨询物业问题、查询工单进度，"
            "也欢迎您提建议。\n" + BINDING_PROMPT)


def project_entered(project_name: str) -> str:
    """A follower scanned another project's QR code: their next cases go to that project."""
    return f"好的，已为您切换到{project_name}。接下来您的报修、投诉和咨询都会转给{project_name}的服务中心处理。"


def received_will_answer_later() -> str:
    return "您的消息我们已经收到，系统正在处理中，稍后会在这里回复您，请您放心。紧急情况请直接拨打物业值班电话。"


def sending_too_fast() -> str:
    return "您的消息发得有点快，请稍后再发，谢谢理解。如遇紧急情况，请直接拨打物业值班电话。"


def only_text_and_pictures() -> str:
    return "抱歉，我目前只能看懂文字和图片（语音会自动转成文字）。请用文字简单描述一下您遇到的问题，我马上为您处理。"


def voice_not_recognised() -> str:
    return "抱歉，这条语音没能识别出文字。请您打字告诉我遇到了什么问题，我马上为您处理。"


def evidence_attached(number: str) -> str:
    return f"照片已收到，已补充到您的工单 {number}，维修人员会一并查看。"


def what_does_the_picture_show() -> str:
    return "照片已收到。请问照片里是什么情况？需要报修还是投诉？用文字说一句就可以，例如“卫生间天花板渗水”。"


def location_received(label: str) -> str:
    where = f"（{label}）" if label else ""
    return f"已收到您发送的位置{where}。如需报修或投诉，请用文字告诉我具体是什么问题。"


def enquiry_menu() -> str:
    return ("请问您想咨询什么？可以直接发问题给我，例如：\n· 物业费怎么交\n· 装修要办什么手续\n"
            "· 门禁卡丢了怎么补办\n· 车位怎么租\n· 客服中心几点上班")


def assistant_did_not_answer() -> str:
    return "抱歉，我没太明白您的意思。您可以直接说“报修”“投诉”“查询进度”，或者把问题描述得具体一点。"


def binding_done(room: str) -> str:
    return f"绑定成功！已将您的微信与 {room} 的住户档案关联。以后报修、投诉会自动带上这个房号。"


def binding_already(room: str) -> str:
    return f"您的微信已经绑定了 {room}，无需重复绑定。如需更换房号，请回复“转人工”。"


def binding_not_matched(number: str) -> str:
    # The same words whether the room is unknown or the phone does not match: the answer
    # must not tell anyone which rooms exist.
    return (f"房号和手机号与物业登记的信息对不上，暂时无法绑定。已请工作人员核实（编号 {number}），"
            "不影响您报修或投诉。")


def binding_too_many_tries() -> str:
    return "今天的绑定尝试次数已用完，请明天再试，或致电物业服务中心人工办理。这不影响您现在报修或投诉。"


# --- Enquiries, referrals, people, clarification ----------------------------

def question_for_staff(number: str, rules: ProjectRules, *, again: bool = False) -> str:
    """A question the assistant could not answer went to staff as an enquiry case (咨询单)."""
    phone = rules.service_hours.phone
    hurry = f"着急的话可拨打客服电话 {phone}。" if phone else "着急的话可回复“转人工”。"
    if again:
        return f"这个问题也已补充到您的咨询单 {number}，工作人员会一并在这里答复您。{hurry}"
    return f"这个问题我暂时答不上来，已转给工作人员（咨询单号 {number}），会尽快在这里答复您。{hurry}"


def referral(department: str, contact: str) -> str:
    return f"您好，这件事由{department}负责，不在物业服务范围内，我这边没法直接办理，还请见谅。{contact}"


def human_requested(number: str, rules: ProjectRules, now: datetime) -> str:
    hours = rules.service_hours
    opening = f"{hours.open.strftime('%H:%M')}–{hours.close.strftime('%H:%M')}"
    local = now.astimezone(rules.timezone).time()
    when = ("工作人员会尽快联系您" if hours.is_open_at(local)
            else f"现在是非工作时间，工作人员会在明天 {hours.open.strftime('%H:%M')} 上班后优先联系您")
    return f"好的，已为您转人工客服（编号 {number}），人工客服每天 {opening} 在线，{when}。"


# What each intent means to a resident, for "did you mean …?" questions.
# Each is something the resident can type back and be understood by the model.
INTENT_CHOICES_ZH = {
    "report_repair": "报修", "file_complaint": "投诉", "check_status": "查询进度", "suggestion": "提建议",
    "praise": "表扬", "request_human": "转人工", "cancel": "取消",
    "change_phone": "更换手机号", "request_review": "申请复议",
}


def did_you_mean(choices: list[str]) -> str:
    if len(choices) == 1:
        return (f"抱歉，我不太确定您的意思。您是想“{choices[0]}”吗？是的话请回复“{choices[0]}”；"
                "不是的话，请换个说法再说一次。")
    listed = "、".join(f"“{c}”" for c in choices)
    return f"抱歉，我不太确定您的意思。您是想{listed}中的哪一项？请直接回复对应的词；都不是的话，请换个说法再说一次。"


# --- follow-ups and satisfaction surveys ----------------------------------------------


def _case_phrase(ticket: Case) -> str:
    kind = KIND_LABELS_ZH.get(TicketKind(ticket.kind), "工单")
    summary = ticket.description.strip().replace("\n", " ")
    if len(summary) > 24:
        summary = summary[:23] + "…"
    return f"您的{kind}（工单号 {ticket.number}，{summary}）"


def survey_prompt(ticket: Case | None, dimension_labels: list[str], rules: ProjectRules) -> str:
    """The callback question: the case it is about, then how to answer in one message."""
    dims = "、".join(dimension_labels)
    example = " ".join(["5"] * (len(dimension_labels) - 1) + ["4"])
    if ticket is not None:
        opening = f"您好，{_case_phrase(ticket)}已处理完毕，想请您做个一分钟回访。"
    else:
        opening = f"您好，这里是{rules.name}物业服务中心，正在做年度满意度调查。"
    return f"{opening}\n请为{dims}各打 1–5 分（5 分最满意），如“{example}”；也可只给总分或说说感受。"


def survey_ask_again(dimension_labels: list[str]) -> str:
    dims = "、".join(dimension_labels)
    return (f"抱歉，我没看懂您的评分。请按{dims}各回复一个 1–5 的数字，例如“5 4 5”；"
            "只给一个总分（如“4分”），或者说“满意”“不满意”也可以。")


def survey_ask_comment() -> str:
    return "谢谢您的评分！还有什么意见或建议想告诉我们吗？没有的话回复“没有”就好。"


def survey_closed_thanks(number: str | None) -> str:
    case = f"工单 {number} 已办结。" if number else ""
    return f"感谢您的评价，我们已如实记录。{case}今后有任何需要，随时在这里找我们。"


def survey_reopened(ticket: Case, rules: ProjectRules) -> str:
    due = format_local(ticket.due_at, rules)
    when = f"，{due} 前给您答复" if due else ""
    return (f"非常抱歉没能让您满意。工单 {ticket.number} 已重新打开，负责同事会尽快联系您{when}；"
            "处理好后再回访，直到您满意。")


def survey_recorded() -> str:
    return "谢谢您的反馈，我们已如实记录，会用来改进服务。"


def survey_unclear_recorded() -> str:
    return "谢谢您的回复，已经记下了。稍后会有工作人员跟您联系，确认您对这次服务的评价。"


def survey_reminder(ticket: Case | None) -> str:
    about = f"关于{_case_phrase(ticket)}的" if ticket is not None else "年度满意度"
    return (f"您好，{about}回访还在等您的评价。回复 1–5 的分数（5 分最满意）或说说您的感受就可以，"
            "感谢您的支持！")


def progress_update(ticket: Case, rules: ProjectRules) -> str:
    status = STATUS_LABELS_ZH[TicketStatus(ticket.status)]
    limit = format_local(ticket.final_due_at or ticket.due_at, rules)
    until = f"，{limit} 前给您最终答复" if limit else ""
    return (f"进展同步：{_case_phrase(ticket)}现为“{status}”，同事正在跟进{until}。"
            "有补充直接回复这条消息即可。")


# --- a person takes over ---------------------------------------------------------------


def staff_joined(staff_name: str, number: str) -> str:
    return (f"您好，我是物业客服{staff_name}，已接手您的工单 {number}，接下来由我为您服务。"
            "您直接在这里回复就可以和我对话；如需回到智能助手，回复“结束人工”即可。")


def staff_says(staff_name: str, text: str) -> str:
    return f"【客服{staff_name}】{text}"


def expected_completion(ticket: Case, rules: ProjectRules, reason: str) -> str:
    """Staff moved the expected completion (parts, an outside contractor): the new date, and why."""
    why = f"（{reason}）" if reason else ""
    return (f"您的工单 {ticket.number} 需要多一点时间{why}，预计 {format_local(ticket.due_at, rules)} 前处理好。"
            "给您添麻烦了，有进展我们会及时告诉您。")


def case_opened_by_staff(ticket: Case, rules: ProjectRules, how: str) -> str:
    """A bound resident phoned or came by: the case staff opened for them, on WeChat too."""
    kind = KIND_LABELS_ZH.get(TicketKind(ticket.kind), "工单")
    due = f"，预计 {format_local(ticket.due_at, rules)} 前处理" if ticket.due_at else ""
    return f"您通过{how}反映的{kind}已登记，工单号 {ticket.number}{due}。发“查询进度”可随时查看。"


def outside_responsibility(number: str, explanation: str, department: str) -> str:
    """The case is not the property company's to do: why, and where the resident can turn."""
    where = f"建议您联系{department}。" if department else ""
    return f"关于您的工单 {number}：{explanation}{where}很抱歉这次没能直接帮到您，如有其他物业问题随时找我们。"


def human_session_ended() -> str:
    return "好的，已为您结束人工对话，接下来由智能助手继续为您服务。如需人工，随时回复“转人工”。"


def human_session_resolved(number: str) -> str:
    return (f"您的工单 {number} 已处理完毕，本次人工服务结束，接下来由智能助手继续为您服务。"
            "稍后我们会请您对这次服务做个简短评价，感谢您的耐心！")


# --- the household file: the phone on file, the past year's cases, 复议 -----------------------


def phone_change_needs_binding() -> str:
    return ("更换手机号需要先绑定住户档案：请发送“房号+物业登记的手机号”，例如 3栋2单元501 13812345678。"
            "绑定后再告诉我新号码。")


def phone_unchanged(phone: str) -> str:
    return f"{mask_phone(phone)} 就是您档案里登记的手机号，不用更换。"


def phone_changed(phone: str) -> str:
    return f"已核对物业登记信息，您的手机号已更新为 {mask_phone(phone)}。以后我们用这个号码联系您。"


def phone_change_pending(number: str, phone: str) -> str:
    return (f"已收到更换手机号为 {mask_phone(phone)} 的申请（编号 {number}）。"
            "工作人员致电核实后为您更新，核实前仍用原号码联系您。")


class ListedCase(Protocol):
    """What a line of the case history shows (the stored ticket satisfies it)."""

    @property
    def number(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


HISTORY_LINES = 8  # what fits a phone's screen; the rest is counted


def _day(moment: datetime, rules: ProjectRules, now: datetime) -> str:
    local, today = to_local(moment, rules.timezone), to_local(now, rules.timezone)
    day = f"{local.month}月{local.day}日"
    return day if local.year == today.year else f"{local.year}年{day}"


def case_history(cases: Sequence[ListedCase], months: int, rules: ProjectRules, now: datetime) -> str:
    """The cases of the past `months`, newest first, one short line each."""
    if not cases:
        return f"您近 {months} 个月没有工单记录。如需报修或投诉，直接告诉我就可以。"
    lines = [f"您近 {months} 个月共有 {len(cases)} 件工单（新的在前）："]
    for case in cases[:HISTORY_LINES]:
        kind = KIND_LABELS_ZH.get(TicketKind(case.kind), "工单")
        lines.append(f"· {case.number} {kind} {STATUS_LABELS_ZH[TicketStatus(case.status)]} "
                     f"{_day(case.created_at, rules, now)}")
    if len(cases) > HISTORY_LINES:
        lines.append(f"还有 {len(cases) - HISTORY_LINES} 件未列出。")
    lines.append("发送工单号可查看某一件的详情。")
    return "\n".join(lines)


def review_reopened(number: str, due: datetime | None, rules: ProjectRules) -> str:
    when = f"，{format_local(due, rules)} 前给您答复" if due else ""
    return f"已收到您的复议申请，工单 {number} 已重新打开。负责同事会尽快联系您{when}。"


def review_opened(original: str, review: str, due: datetime | None, rules: ProjectRules) -> str:
    when = f"，{format_local(due, rules)} 前给您答复" if due else ""
    return f"已收到您对工单 {original} 的复议申请，复议单号 {review}。负责同事会尽快联系您{when}。"


def review_already(original: str, review: str) -> str:
    return f"工单 {original} 的复议（{review}）正在处理中，您刚才说的已补充进去，负责同事会一并处理。"


def review_still_open(number: str) -> str:
    return f"工单 {number} 还在处理中，暂不需要复议；处理完后如不满意，可以再申请复议。"


def review_cancelled(number: str) -> str:
    return f"工单 {number} 已撤销，不能复议。如问题还在，直接告诉我重新报修或投诉就可以。"


def review_too_old(number: str, days: int) -> str:
    return (f"工单 {number} 办结已超过 {days} 天，不能在线申请复议。"
            "如问题还在，可以重新报修或投诉，或回复“转人工”。")


def review_nothing(days: int) -> str:
    return f"没有找到您近 {days} 天内办结的工单。如需复议，请发送工单号；如问题还在，可以直接报修或投诉。"


# --- notices to residents (停水停电, 施工, 公示, 温馨提示) and proactive care ---------------------


def notice_period(starts_at: datetime | None, ends_at: datetime | None, rules: ProjectRules) -> str:
    """12月5日 09:00 至 12:00; 12月5日 09:00 至 12月6日 18:00; 12月5日 09:00 起; "" for no period."""
    if starts_at is None:
        return f"至 {format_local(ends_at, rules)}" if ends_at else ""
    start = format_local(starts_at, rules)
    if ends_at is None:
        return f"{start} 起"
    same_day = to_local(starts_at, rules.timezone).date() == to_local(ends_at, rules.timezone).date()
    end = f"{to_local(ends_at, rules.timezone):%H:%M}" if same_day else format_local(ends_at, rules)
    return f"{start} 至 {end}"


def notice_period_field(notice: NoticeFacts, rules: ProjectRules) -> str:
    """The period for a template's time field (at most 20 characters, WeChat's "~" for a span):
    12月5日 09:00~12:00, or 12月5日~12月6日 across days; the send day for a notice about none."""
    if notice.starts_at is None:
        local = to_local(notice.send_at, rules.timezone)
        return f"{local.month}月{local.day}日"
    start = to_local(notice.starts_at, rules.timezone)
    if notice.ends_at is None:
        return f"{start.month}月{start.day}日 {start:%H:%M}"
    end = to_local(notice.ends_at, rules.timezone)
    if start.date() == end.date():
        return f"{start.month}月{start.day}日 {start:%H:%M}~{end:%H:%M}"
    return f"{start.month}月{start.day}日~{end.month}月{end.day}日"


def notice_scope(target: object) -> str:
    """Whom a notice is for, as residents read it: 全小区, 3栋、5栋, 3栋2单元501, or 5栋等 12 户."""
    spec = target if isinstance(target, dict) else {}
    buildings, rooms = list(spec.get("buildings") or ()), list(spec.get("rooms") or ())
    if not buildings and not rooms:
        return "全小区"
    parts = buildings + (rooms if len(rooms) <= 2 else [f"{rooms[0]}等 {len(rooms)} 户"])
    return "、".join(parts)


def notice_text(notice: NoticeFacts, rules: ProjectRules) -> str:
    """What a resident receives as a customer-service message. A care message is its own words."""
    if notice.kind in CARE_KINDS:
        return notice.body
    lines = [f"【{NOTICE_LABELS_ZH.get(notice.kind, '通知')}】{notice.title}", f"范围：{notice_scope(notice.target)}"]
    period = notice_period(notice.starts_at, notice.ends_at, rules)
    if period:
        lines.append(f"{PERIOD_LABELS_ZH.get(notice.kind, '时间')}：{period}")
    lines.append(notice.body)
    phone = f"，电话 {rules.service_hours.phone}" if rules.service_hours.phone else ""
    lines.append(f"{rules.name}物业服务中心{phone}。有疑问直接回复这条消息。")
    return "\n".join(lines)


CURRENT_NOTICE_LINES = 3  # what fits a phone's screen under the FAQ answer; the rest is counted


def current_notices(notices: Sequence[NoticeFacts], rules: ProjectRules) -> str:
    """The FAQ's 停水停电 answer, added to it: the notices going on now or coming up; "" for none."""
    if not notices:
        return ""
    lines = ["近期通知："]
    for notice in notices[:CURRENT_NOTICE_LINES]:
        period = notice_period(notice.starts_at, notice.ends_at, rules)
        lines.append(f"· {notice.title}（{notice_scope(notice.target)}{'，' + period if period else ''}）")
    if len(notices) > CURRENT_NOTICE_LINES:
        lines.append(f"另有 {len(notices) - CURRENT_NOTICE_LINES} 条，可回复“转人工”详询。")
    return "\n".join(lines)
