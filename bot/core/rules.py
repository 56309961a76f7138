"""Per-project business rules loaded from the project YAML (see project/default.yml)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.core.knowledge import KnowledgeBase, parse_knowledge
from bot.core.notices import TITLE_MAX, NoticeError, check_greeting_day
from bot.core.urgency_reader import LearnedReader, train_reader
from bot.core.workdays import WorkCalendar, parse_calendar


@dataclass(frozen=True)
class SlaRules:
    emergency_repair_onsite_minutes: int = 10
    general_repair_hours: int = 24
    major_complaint_hours: int = 4
    urgent_complaint_hours: int = 24
    general_complaint_working_days: int = 2
    complaint_max_working_days: int = 7
    suggestion_reply_working_days: int = 3
    special_group_factor: float = 0.5
    # Completed repairs and handled complaints get their callback within this many hours.
    callback_within_hours: int = 24
    # Complaints open longer than this many working days get progress updates, every N.
    progress_update_after_working_days: int = 3
    progress_update_every_working_days: int = 2
    # Complaints: the initial investigation is fed back to the resident within this many hours
    # (accepted within 24 h, first feedback within 48 h, solved within 7 working days).
    complaint_first_feedback_hours: int = 48


@dataclass(frozen=True)
class FollowUpRules:
    """When the worker calls residents back and how it treats their answers."""

    callback_delay_minutes: int = 120
    # No messages to residents at night, unless the callback deadline would be missed.
    quiet_start: time = time(21, 30)
    quiet_end: time = time(8, 0)
    # A resident who wrote within the busy window is in a conversation: not interrupted,
    # the callback tries again this much later.
    busy_window_minutes: int = 10
    busy_defer_minutes: int = 15
    survey_reminder_hours: int = 24
    survey_close_hours: int = 48
    # A score at or below this (1-5) counts as dissatisfied: the case is reopened.
    dissatisfied_max_score: int = 2
    job_max_attempts: int = 6
    job_backoff_seconds: int = 60
    job_backoff_max_seconds: int = 3600
    # Whatever holds conversation text — the raw WeChat message logs, Rasa's tracker events,
    # finished jobs' payloads — is purged after this many days; the case record (ticket
    # events) is kept — it is the household's file (一户一档).
    message_log_retention_days: int = 180

    def is_quiet(self, local: time) -> bool:
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= local < self.quiet_end
        return local >= self.quiet_start or local < self.quiet_end


@dataclass(frozen=True)
class EscalationRules:
    """When a case goes to a person, and how hard the system chases an unclaimed one."""

    # 群诉: this many complaints about the same place and problem within the window.
    group_complaint_count: int = 3
    group_complaint_window_hours: int = 24
    # An escalated case nobody claimed is announced again, then goes to the project head.
    unclaimed_reannounce_minutes: int = 15
    unclaimed_head_minutes: int = 60
    # Problem categories for grouping complaints: topic -> words.
    complaint_topics: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class BindingRules:
    """Household binding (房号 + 手机号): how many tries before it waits for tomorrow.

    Both limits count failed attempts of the project's local day; they keep anyone from
    walking the roster to learn which rooms exist and which phone belongs to which.
    """

    max_failures_per_resident_per_day: int = 5
    max_failures_per_room_per_day: int = 10


@dataclass(frozen=True)
class FloodRules:
    """How much one resident may send: beyond `max_messages` within `window_seconds` a message
    is stored but not answered by the assistant (the resident is asked once to wait)."""

    max_messages: int = 10
    window_seconds: int = 60


@dataclass(frozen=True)
class SelfServiceRules:
    """What residents may do on their household file themselves (bot.cases.household, bot.cases.reviews)."""

    # "我今年报过哪些单" lists the cases opened within this many months, closed ones included.
    history_months: int = 12
    # A case finished (已办结, or done and awaiting the callback) at most this many days ago may be
    # put up for review (复议) by its resident; an older one is a new report.
    review_within_days: int = 30
    # "查询进度" lists the open cases and those finished (办结, 撤销) within this many days.
    progress_recent_days: int = 30
    # "查询进度" says who holds a case by their role ("维修师傅已接单"); True: by their name.
    progress_shows_holder_name: bool = False


@dataclass(frozen=True)
class TemplateMessage:
    """A WeChat template message: its id and how each field is filled from a notice."""

    template_id: str
    fields: tuple[tuple[str, str], ...]  # (field key, format string over the notice's values)
    url: str = ""


@dataclass(frozen=True)
class HazardRule:
    """One kind of emergency: how it is described, what resembles it, what to do now."""

    key: str
    label: str
    life_risk: bool
    advice: str
    cues: tuple[str, ...]  # regular expressions; any one reveals the hazard
    look_alikes: tuple[str, ...] = ()
    # Or a thing and what is happening to it, told in one clause (水 … 往外流) or anywhere in
    # the message (电梯卡住了 … 里面有人): one expression of every group must match.
    together: tuple[tuple[str, ...], ...] = ()
    together_in_message: tuple[tuple[str, ...], ...] = ()
    # Words that say it can wait (不着急): they cancel the hazard in their message. Never
    # configured for hazards that endanger life.
    calm: tuple[str, ...] = ()
    # Words that say this hazard is over (灭了 ends a fire, not a lift stuck in the dark).
    resolved: tuple[str, ...] = ()


@dataclass(frozen=True)
class UrgencyRules:
    """How emergencies are read from descriptions (see bot.core.urgency); per project."""

    hazards: tuple[HazardRule, ...] = ()
    people_at_risk: tuple[str, ...] = ()
    person_in_danger: HazardRule | None = None
    negations: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()
    past: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    hypothetical: tuple[str, ...] = ()
    # Typos, homophones and dialect read as the words they stand for (然气 → 燃气, 咗 → 了).
    spellings: tuple[tuple[str, str], ...] = ()
    # The learned second reader (bot.core.urgency_reader), trained on the project's labelled
    # descriptions: what it flags at `reader_threshold` or above, the cues missed, is sent
    # someone quickly with `reader_advice` (never an evacuation: it names no hazard).
    reader: LearnedReader | None = None
    reader_threshold: float = 0.9
    reader_advice: str = ""


@dataclass(frozen=True)
class ComplaintSignal:
    """Something a clerk hears in a complaint that raises its tier ("major" or "urgent")."""

    key: str
    label: str
    tier: str
    cues: tuple[str, ...]  # regular expressions


@dataclass(frozen=True)
class OurRepairComplaints:
    """A complaint about how we handle a repair ("报修两周没人来"): the words that name our
    repair work, the words that say it is slow or was never done, and how far back a
    finished repair may be the one complained about."""

    about: tuple[str, ...] = ()  # regular expressions: 报修, 维修部, 师傅 …
    slow: tuple[str, ...] = ()  # 没人来, 拖了, 两周了 …
    never_done: tuple[str, ...] = ()  # 根本没修, 没人来过 … (a repair marked done is reopened)
    within_days: int = 30


@dataclass(frozen=True)
class TriageRules:
    complaint_signals: tuple[ComplaintSignal, ...] = ()
    our_repairs: OurRepairComplaints = field(default_factory=OurRepairComplaints)


@dataclass(frozen=True)
class ServiceHours:
    open: time = time(8, 0)
    close: time = time(20, 0)
    phone: str = ""

    def is_open_at(self, local: time) -> bool:
        """Whether staff are at the desk at this local time of day."""
        return self.open <= local < self.close


# Special groups as the roster stores them (bot.cases.residents reads the Chinese names into these).
SPECIAL_GROUP_IDS = {"空巢老人": "empty_nest_elderly", "独居老人": "living_alone_elderly", "残疾人": "disabled",
                     "智力障碍人员": "intellectual_disability"}


@dataclass(frozen=True)
class NoticeRules:
    """Notices to residents and proactive care (bot.cases.notices): how fast they go out, which
    are "current" for the FAQ, and the welcome callback and holiday greetings the worker sends."""

    # WeChat's template messages are rate-limited: deliveries are spaced to this many a minute.
    per_minute: int = 600
    # The FAQ's 停水停电 answer names the notices going on now or starting within this many days.
    current_within_days: int = 3
    body_max_chars: int = 500
    # The daily proactive-care run (local time of the company's default project).
    care_time: time = time(10, 0)
    # A household bound (or added to the roster) within this many days gets its welcome callback once.
    welcome_within_days: int = 30
    welcome_title: str = "入住回访"
    welcome_text: str = ("您好，欢迎入住{project}！我是物业客服，想问问入住以来房屋、水电、门禁用着还顺利吗？"
                         "有需要报修或不清楚的地方，直接回复这条消息告诉我；也可以拨打 {phone}。")
    greeting_title: str = "节日问候"
    # Households with any of these tags get the greetings.
    greeting_tags: tuple[str, ...] = tuple(SPECIAL_GROUP_IDS.values())
    # (a date YYYY-MM-DD or an official holiday's name such as 中秋节, the greeting), in file order.
    greetings: tuple[tuple[str, str], ...] = ()


DEFAULT_PROJECT_CODE = "default"


@dataclass(frozen=True)
class ProjectRules:
    name: str = "示例小区"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    # The project's code in the company's registry (bot.core.company): on every row it owns.
    code: str = DEFAULT_PROJECT_CODE
    address: str = ""
    # The WeChat official accounts (app ids) residents of this project write to; empty: any.
    wechat_app_ids: tuple[str, ...] = ()
    # Where its escalations go: the project's staff group and its head (Telegram chat ids today).
    staff_chat_id: int = 0
    head_chat_id: int = 0
    sla: SlaRules = field(default_factory=SlaRules)
    triage: TriageRules = field(default_factory=TriageRules)
    urgency: UrgencyRules = field(default_factory=UrgencyRules)
    service_hours: ServiceHours = field(default_factory=ServiceHours)
    knowledge: KnowledgeBase = field(default_factory=KnowledgeBase)
    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    follow_up: FollowUpRules = field(default_factory=FollowUpRules)
    templates: dict[str, TemplateMessage] = field(default_factory=dict)
    escalation: EscalationRules = field(default_factory=EscalationRules)
    binding: BindingRules = field(default_factory=BindingRules)
    flood: FloodRules = field(default_factory=FloodRules)
    self_service: SelfServiceRules = field(default_factory=SelfServiceRules)
    # Annual satisfaction survey dimensions (GB/T 45698): key -> label residents see.
    annual_survey_dimensions: tuple[tuple[str, str], ...] = (
        ("quality", "服务质量"), ("attitude", "服务态度"), ("efficiency", "服务效率"), ("facilities", "服务设施"))
    notices: NoticeRules = field(default_factory=NoticeRules)


def _time(value: Any, fallback: time) -> time:
    if value is None:
        return fallback
    hours, minutes = str(value).split(":")
    return time(int(hours), int(minutes))


def _follow_up(raw: dict[str, Any]) -> FollowUpRules:
    d = FollowUpRules()
    return FollowUpRules(
        callback_delay_minutes=int(raw.get("callback_delay_minutes", d.callback_delay_minutes)),
        quiet_start=_time(raw.get("quiet_start"), d.quiet_start),
        quiet_end=_time(raw.get("quiet_end"), d.quiet_end),
        busy_window_minutes=int(raw.get("busy_window_minutes", d.busy_window_minutes)),
        busy_defer_minutes=int(raw.get("busy_defer_minutes", d.busy_defer_minutes)),
        survey_reminder_hours=int(raw.get("survey_reminder_hours", d.survey_reminder_hours)),
        survey_close_hours=int(raw.get("survey_close_hours", d.survey_close_hours)),
        dissatisfied_max_score=int(raw.get("dissatisfied_max_score", d.dissatisfied_max_score)),
        job_max_attempts=int(raw.get("job_max_attempts", d.job_max_attempts)),
        job_backoff_seconds=int(raw.get("job_backoff_seconds", d.job_backoff_seconds)),
        job_backoff_max_seconds=int(raw.get("job_backoff_max_seconds", d.job_backoff_max_seconds)),
        message_log_retention_days=int(raw.get("message_log_retention_days", d.message_log_retention_days)),
    )


def _escalation(raw: dict[str, Any]) -> EscalationRules:
    d = EscalationRules()
    return EscalationRules(
        group_complaint_count=int(raw.get("group_complaint_count", d.group_complaint_count)),
        group_complaint_window_hours=int(raw.get("group_complaint_window_hours", d.group_complaint_window_hours)),
        unclaimed_reannounce_minutes=int(raw.get("unclaimed_reannounce_minutes", d.unclaimed_reannounce_minutes)),
        unclaimed_head_minutes=int(raw.get("unclaimed_head_minutes", d.unclaimed_head_minutes)),
        complaint_topics=tuple((str(topic), tuple(str(w) for w in words or ()))
                               for topic, words in (raw.get("complaint_topics") or {}).items()),
    )


def _templates(raw: dict[str, Any]) -> dict[str, TemplateMessage]:
    templates = {}
    for name, spec in (raw or {}).items():
        spec = spec or {}
        if not spec.get("template_id"):
            continue  # not configured: outside the 48 h window the notice cannot be sent
        fields = tuple((str(k), str(v)) for k, v in (spec.get("fields") or {}).items())
        templates[str(name)] = TemplateMessage(str(spec["template_id"]), fields, str(spec.get("url") or ""))
    return templates


def _binding(raw: dict[str, Any]) -> BindingRules:
    defaults = BindingRules()
    return BindingRules(
        max_failures_per_resident_per_day=int(raw.get("max_failures_per_resident_per_day",
                                                      defaults.max_failures_per_resident_per_day)),
        max_failures_per_room_per_day=int(raw.get("max_failures_per_room_per_day",
                                                  defaults.max_failures_per_room_per_day)),
    )


def _words(raw: Any) -> tuple[str, ...]:
    return tuple(str(word) for word in raw or () if str(word))


COMPLAINT_TIERS = ("major", "urgent")


def _complaint_signals(raw: dict[str, Any]) -> tuple[ComplaintSignal, ...]:
    signals = []
    for key, spec in (raw.get("complaint_signals") or {}).items():
        spec = spec or {}
        tier = str(spec.get("tier") or "urgent")
        if tier not in COMPLAINT_TIERS:
            raise ValueError(f"triage.complaint_signals.{key}.tier: {tier!r} is not one of {COMPLAINT_TIERS}")
        signals.append(ComplaintSignal(str(key), str(spec.get("label") or key), tier, _words(spec.get("cues"))))
    # Project files written before signals existed: their two word lists still count.
    for tier in COMPLAINT_TIERS:
        words = _words(raw.get(f"{tier}_complaint_keywords"))
        if words:
            signals.append(ComplaintSignal(f"{tier}_words", "关键词", tier, tuple(re.escape(w) for w in words)))
    return tuple(signals)


def _groups(raw: Any) -> tuple[tuple[str, ...], ...]:
    return tuple(_words(group) for group in raw or () if group)


def _hazard(key: str, raw: dict[str, Any]) -> HazardRule:
    return HazardRule(key=key, label=str(raw.get("label") or key), life_risk=bool(raw.get("life_risk", True)),
                      advice=str(raw.get("advice") or ""), cues=_words(raw.get("cues")),
                      look_alikes=_words(raw.get("look_alikes")), together=_groups(raw.get("together")),
                      together_in_message=_groups(raw.get("together_in_message")), calm=_words(raw.get("calm")),
                      resolved=_words(raw.get("resolved")))


# The project files shipped with the code (project/default.yml and what it refers to).
BUNDLED_PROJECT_DIR = Path(__file__).resolve().parents[2] / "project"


def _labelled_descriptions(files: Any, base_dir: Path | None) -> list[tuple[str, bool]]:
    """Each file: `descriptions: [{text, hazard}]`, hazard `none` for a non-emergency; paths
    are relative to the rules file (rules parsed from no file have no examples)."""
    examples: list[tuple[str, bool]] = []
    if base_dir is None:
        return examples
    for name in files or ():
        path = base_dir / str(name)
        if not path.exists() and (BUNDLED_PROJECT_DIR / str(name)).exists():
            path = BUNDLED_PROJECT_DIR / str(name)  # a project elsewhere using the examples we ship
        rows = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("descriptions") or []
        examples += [(str(row["text"]), str(row["hazard"]) != "none") for row in rows]
    return examples


def _urgency(raw: dict[str, Any], base_dir: Path | None = None) -> UrgencyRules:
    danger = raw.get("person_in_danger")
    learned = raw.get("learned") or {}
    return UrgencyRules(
        reader=train_reader(_labelled_descriptions(learned.get("examples"), base_dir),
                            alpha=float(learned.get("alpha", 0.3))),
        reader_threshold=float(learned.get("threshold", UrgencyRules.reader_threshold)),
        reader_advice=str(learned.get("advice") or ""),
        hazards=tuple(_hazard(str(key), spec or {}) for key, spec in (raw.get("hazards") or {}).items()),
        people_at_risk=_words(raw.get("people_at_risk")),
        person_in_danger=_hazard("person", {"life_risk": True, **danger}) if danger else None,
        negations=_words(raw.get("negations")), resolved=_words(raw.get("resolved")), past=_words(raw.get("past")),
        present=_words(raw.get("present")), hypothetical=_words(raw.get("hypothetical")),
        spellings=tuple((str(wrong), str(right)) for wrong, right in (raw.get("spellings") or {}).items()),
    )


def _flood(raw: dict[str, Any]) -> FloodRules:
    defaults = FloodRules()
    return FloodRules(max_messages=int(raw.get("max_messages", defaults.max_messages)),
                      window_seconds=int(raw.get("window_seconds", defaults.window_seconds)))


def _self_service(raw: dict[str, Any]) -> SelfServiceRules:
    defaults = SelfServiceRules()
    return SelfServiceRules(history_months=int(raw.get("history_months", defaults.history_months)),
                            review_within_days=int(raw.get("review_within_days", defaults.review_within_days)),
                            progress_recent_days=int(raw.get("progress_recent_days", defaults.progress_recent_days)),
                            progress_shows_holder_name=bool(raw.get("progress_shows_holder_name",
                                                                    defaults.progress_shows_holder_name)))


def _care_text(key: str, text: str, title: bool = False) -> str:
    """A proactive-care text: only {project} and {phone} may be filled in; a title fits WeChat's field."""
    try:
        filled = text.format(project="", phone="")
    except (KeyError, IndexError, ValueError) as exc:
        raise NoticeError(f"notices.{key}: only {{project}} and {{phone}} may be used ({exc})") from None
    if title and (not filled.strip() or "\n" in text or len(text) > TITLE_MAX):
        raise NoticeError(f"notices.{key}: one line of at most {TITLE_MAX} characters")
    return text


def _notices(raw: dict[str, Any]) -> NoticeRules:
    d = NoticeRules()
    welcome = raw.get("welcome") or {}
    greetings = raw.get("greetings") or {}
    days = tuple((str(key), str(text)) for key, text in (greetings.get("days") or {}).items())
    for key, text in days:
        try:
            check_greeting_day(key)
        except NoticeError as exc:
            raise NoticeError(f"notices.greetings.days.{key}: {exc}") from None
        _care_text(f"greetings.days.{key}", text)
    tags = greetings.get("tags")
    return NoticeRules(
        per_minute=max(1, int(raw.get("per_minute", d.per_minute))),
        current_within_days=int(raw.get("current_within_days", d.current_within_days)),
        body_max_chars=int(raw.get("body_max_chars", d.body_max_chars)),
        care_time=_time(raw.get("care_time"), d.care_time),
        welcome_within_days=int(welcome.get("within_days", d.welcome_within_days)),
        welcome_title=_care_text("welcome.title", str(welcome.get("title") or d.welcome_title), title=True),
        welcome_text=_care_text("welcome.text", str(welcome.get("text") or d.welcome_text).strip()),
        greeting_title=_care_text("greetings.title", str(greetings.get("title") or d.greeting_title), title=True),
        greeting_tags=d.greeting_tags if tags is None else tuple(SPECIAL_GROUP_IDS.get(t, t) for t in _words(tags)),
        greetings=days,
    )


def parse_rules(raw: dict[str, Any], base_dir: Path | None = None) -> ProjectRules:
    project = raw.get("project") or {}
    sla_raw = dict(raw.get("sla") or {})
    triage_raw = raw.get("triage") or {}
    hours_raw = raw.get("service_hours") or {}
    defaults = SlaRules()
    sla = SlaRules(
        emergency_repair_onsite_minutes=int(
            sla_raw.get("emergency_repair_onsite_minutes", defaults.emergency_repair_onsite_minutes)
        ),
        general_repair_hours=int(sla_raw.get("general_repair_hours", defaults.general_repair_hours)),
        major_complaint_hours=int(sla_raw.get("major_complaint_hours", defaults.major_complaint_hours)),
        urgent_complaint_hours=int(sla_raw.get("urgent_complaint_hours", defaults.urgent_complaint_hours)),
        general_complaint_working_days=int(
            sla_raw.get("general_complaint_working_days", defaults.general_complaint_working_days)
        ),
        complaint_max_working_days=int(
            sla_raw.get("complaint_max_working_days", defaults.complaint_max_working_days)
        ),
        suggestion_reply_working_days=int(
            sla_raw.get("suggestion_reply_working_days", defaults.suggestion_reply_working_days)
        ),
        special_group_factor=float(sla_raw.get("special_group_factor", defaults.special_group_factor)),
        callback_within_hours=int(sla_raw.get("callback_within_hours", defaults.callback_within_hours)),
        progress_update_after_working_days=int(
            sla_raw.get("progress_update_after_working_days", defaults.progress_update_after_working_days)),
        progress_update_every_working_days=int(
            sla_raw.get("progress_update_every_working_days", defaults.progress_update_every_working_days)),
        complaint_first_feedback_hours=int(
            sla_raw.get("complaint_first_feedback_hours", defaults.complaint_first_feedback_hours)),
    )
    repairs_raw = triage_raw.get("our_repairs") or {}
    triage = TriageRules(complaint_signals=_complaint_signals(triage_raw), our_repairs=OurRepairComplaints(
        about=_words(repairs_raw.get("about")), slow=_words(repairs_raw.get("slow")),
        never_done=_words(repairs_raw.get("never_done")),
        within_days=int(repairs_raw.get("within_days", OurRepairComplaints.within_days))))
    service_hours = ServiceHours(
        open=_time(hours_raw.get("open"), time(8, 0)),
        close=_time(hours_raw.get("close"), time(20, 0)),
        phone=str(hours_raw.get("phone") or ""),
    )
    knowledge = parse_knowledge(raw, {
        "project_name": str(project.get("name") or "示例小区"),
        "office_open": service_hours.open.strftime("%H:%M"),
        "office_close": service_hours.close.strftime("%H:%M"),
        "service_phone": service_hours.phone,
    })
    return ProjectRules(
        name=str(project.get("name") or "示例小区"),
        timezone=ZoneInfo(str(project.get("timezone") or "Asia/Shanghai")),
        code=str(project.get("code") or DEFAULT_PROJECT_CODE),
        address=str(project.get("address") or ""),
        wechat_app_ids=_words(project.get("wechat_app_ids")),
        staff_chat_id=int(project.get("staff_chat_id") or 0),
        head_chat_id=int(project.get("head_chat_id") or 0),
        sla=sla,
        triage=triage,
        urgency=_urgency(raw.get("urgency") or {}, base_dir),
        service_hours=service_hours,
        knowledge=knowledge,
        calendar=parse_calendar(raw, base_dir),
        follow_up=_follow_up(raw.get("follow_up") or {}),
        templates=_templates(raw.get("wechat_templates") or {}),
        escalation=_escalation(raw.get("escalation") or {}),
        binding=_binding(raw.get("binding") or {}),
        flood=_flood(raw.get("flood") or {}),
        self_service=_self_service(raw.get("self_service") or {}),
        annual_survey_dimensions=tuple(
            (str(k), str(v)) for k, v in (raw.get("annual_survey_dimensions") or {}).items()
        ) or ProjectRules().annual_survey_dimensions,
        notices=_notices(raw.get("notices") or {}),
    )


@lru_cache(maxsize=8)
def load_rules(path: Path) -> ProjectRules:
    with open(path, encoding="utf-8") as handle:
        return parse_rules(yaml.safe_load(handle) or {}, path.parent)
