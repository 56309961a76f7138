"""Per-project business rules loaded from the project YAML (see project/default.yml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.knowledge import KnowledgeBase, parse_knowledge


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
    working_days: tuple[int, ...] = (1, 2, 3, 4, 5)
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class TriageRules:
    emergency_repair_keywords: tuple[str, ...] = ()
    major_complaint_keywords: tuple[str, ...] = ()
    urgent_complaint_keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceHours:
    open: time = time(8, 0)
    close: time = time(20, 0)
    phone: str = ""

    def is_open_at(self, local: time) -> bool:
        """Whether staff are at the desk at this local time of day."""
        return self.open <= local < self.close


@dataclass(frozen=True)
class ProjectRules:
    name: str = "示例小区"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    sla: SlaRules = field(default_factory=SlaRules)
    triage: TriageRules = field(default_factory=TriageRules)
    service_hours: ServiceHours = field(default_factory=ServiceHours)
    knowledge: KnowledgeBase = field(default_factory=KnowledgeBase)


def _time(value: Any, fallback: time) -> time:
    if value is None:
        return fallback
    hours, minutes = str(value).split(":")
    return time(int(hours), int(minutes))


def parse_rules(raw: dict[str, Any]) -> ProjectRules:
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
        working_days=tuple(int(d) for d in sla_raw.get("working_days", defaults.working_days)),
        holidays=frozenset(date.fromisoformat(str(d)) for d in sla_raw.get("holidays") or ()),
    )
    triage = TriageRules(
        emergency_repair_keywords=tuple(triage_raw.get("emergency_repair_keywords") or ()),
        major_complaint_keywords=tuple(triage_raw.get("major_complaint_keywords") or ()),
        urgent_complaint_keywords=tuple(triage_raw.get("urgent_complaint_keywords") or ()),
    )
    service_hours = ServiceHours(
        open=_time(hours_raw.get("open"), time(8, 0)),
        close=_time(hours_raw.get("close"), time(20, 0)),
        phone=str(hours_raw.get("phone") or ""),
    )
    knowledge = parse_knowledge(raw, {
        "office_open": service_hours.open.strftime("%H:%M"),
        "office_close": service_hours.close.strftime("%H:%M"),
        "service_phone": service_hours.phone,
    })
    return ProjectRules(
        name=str(project.get("name") or "示例小区"),
        timezone=ZoneInfo(str(project.get("timezone") or "Asia/Shanghai")),
        sla=sla,
        triage=triage,
        service_hours=service_hours,
        knowledge=knowledge,
    )


@lru_cache(maxsize=8)
def load_rules(path: Path) -> ProjectRules:
    with open(path, encoding="utf-8") as handle:
        return parse_rules(yaml.safe_load(handle) or {})
