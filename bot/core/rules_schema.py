"""What a project rules file may say: every section and key, with its type.

The company's defaults (project/default.yml) and each project's overlay are checked against
the same schema (an overlay gives any subset of it), then merged: the overlay wins key by
key. An unknown key or a wrong type is refused when the file is loaded, naming the file and
the key, instead of being ignored or failing later deep inside parsing.

The schema below is the one place that lists the keys. Its nodes:

    Map({...})        a section with fixed keys (an unknown key is refused, with a suggestion)
    OpenMap(value)    keys are the company's own names (FAQ topics, facts, hazards ...)
    ListOf(item)      a list
    OrNull(node)      `~` or an empty value is allowed: the key then keeps its default
    INT, NUMBER, BOOL, STR, TEXT, TIME, TIMEZONE, REGEX, DATE, WEEKDAY, OneOf(...)  scalars

Pure: the standard library only.
"""
from __future__ import annotations

import copy
import difflib
import re
from datetime import date, datetime
from typing import Any, Mapping
from zoneinfo import ZoneInfo, available_timezones

__all__ = [
    "RulesFileError", "check_rules", "merge_rules", "SCHEMA", "COMPLAINT_TIERS",
    "Node", "Map", "OpenMap", "ListOf", "OrNull", "Int", "Number", "Bool", "Str", "OneOf", "Time", "TimeZone",
    "Regex", "Date",
]

# The same as bot.core.rules.COMPLAINT_TIERS (not imported: the rules module loads files through this one).
COMPLAINT_TIERS = ("major", "urgent")


class RulesFileError(ValueError):
    """A rules file says something the schema does not allow: `<file>: <key.path>: <problem>`."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key  # dotted path with list indices (urgency.hazards.gas.cues[3]); "" for the whole file
        self.problem = problem
        super().__init__(f"{file}: {key or '(top level)'}: {problem}")


class _Invalid(Exception):
    """Raised inside the schema; check_rules adds the file name."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem


def _show(value: object) -> str:
    """The value as the message quotes it (YAML's null as `null`, long values cut)."""
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _quote_hint(value: object) -> str:
    if isinstance(value, bool):
        return " (YAML reads yes/no/true/false/on/off as a boolean: put it in quotes)"
    if isinstance(value, (int, float, date)):
        return " (put it in quotes to make it text)"
    return ""


def _child(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


# --- nodes -----------------------------------------------------------------------------------


class Node:
    """One place in the schema; `check` raises _Invalid naming the key path."""

    def check(self, value: object, path: str) -> None:
        raise NotImplementedError


class OrNull(Node):
    """`~` or an empty value allowed: the rules parser then uses the default (see merge_rules)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def check(self, value: object, path: str) -> None:
        if value is not None:
            self.node.check(value, path)


class Map(Node):
    """A mapping with fixed keys; keys in `required` must be present."""

    def __init__(self, fields: Mapping[str, Node], required: tuple[str, ...] = ()) -> None:
        self.fields = dict(fields)
        self.required = required

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise _Invalid(path, f"expected a mapping (key: value), got {_show(value)}")
        for key, item in value.items():
            node = self.fields.get(key) if isinstance(key, str) else None
            if node is None:
                raise _Invalid(_child(path, key), self._unknown(key))
            node.check(item, _child(path, key))
        for key in self.required:
            if key not in value:
                raise _Invalid(_child(path, key), "missing (required)")

    def _unknown(self, key: object) -> str:
        close = difflib.get_close_matches(str(key), list(self.fields), n=1)
        if close:
            return f"unknown key (did you mean {close[0]}?)"
        return f"unknown key (expected one of: {', '.join(self.fields)})"


class OpenMap(Node):
    """A mapping whose keys are the company's own names, each value following `value`."""

    def __init__(self, value: Node) -> None:
        self.value = value

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise _Invalid(path, f"expected a mapping (name: value), got {_show(value)}")
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise _Invalid(_child(path, key), f"a name must be non-empty text, got {_show(key)}"
                                                  f"{_quote_hint(key)}")
            self.value.check(item, _child(path, key))


class ListOf(Node):
    def __init__(self, item: Node) -> None:
        self.item = item

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, list):
            raise _Invalid(path, f"expected a list, got {_show(value)}")
        for index, item in enumerate(value):
            self.item.check(item, f"{path}[{index}]")


class Int(Node):
    """A whole number (true/false are not numbers), optionally within [low, high]."""

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low = low
        self.high = high

    def check(self, value: object, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(path, f"expected an integer, got {_show(value)}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise _Invalid(path, f"expected an integer from {self.low} to {self.high}, got {value}")


class Number(Node):
    """An integer or a decimal number."""

    def check(self, value: object, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(path, f"expected a number, got {_show(value)}")


class Bool(Node):
    def check(self, value: object, path: str) -> None:
        if not isinstance(value, bool):
            raise _Invalid(path, f"expected true or false, got {_show(value)}")


class Str(Node):
    """Text; with `pattern`, text that matches it whole (`described` says what it allows).
    `whole_numbers`: an unquoted whole number is accepted too (it reads the same as text)."""

    def __init__(self, pattern: str | None = None, described: str = "", whole_numbers: bool = False) -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.described = described
        self.whole_numbers = whole_numbers

    def check(self, value: object, path: str) -> None:
        if self.whole_numbers and isinstance(value, int) and not isinstance(value, bool):
            return
        if not isinstance(value, str):
            raise _Invalid(path, f"expected a string, got {_show(value)}{_quote_hint(value)}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise _Invalid(path, f"expected {self.described}, got {_show(value)}")


class OneOf(Node):
    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def check(self, value: object, path: str) -> None:
        if value not in self.choices:
            raise _Invalid(path, f"expected one of {', '.join(self.choices)}, got {_show(value)}")


class Time(Node):
    """A local time of day, "HH:MM" (quoted: YAML reads an unquoted 21:30 as the number 1290)."""

    _FORMAT = re.compile(r"([0-9]{1,2}):([0-9]{2})")

    def check(self, value: object, path: str) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            hours, minutes = divmod(value, 60)
            raise _Invalid(path, f'expected a time "HH:MM" in quotes, got {value} '
                                 f'(YAML reads an unquoted {hours}:{minutes:02d} as a number)')
        match = self._FORMAT.fullmatch(value) if isinstance(value, str) else None
        if match is None or int(match[1]) > 23 or int(match[2]) > 59:
            raise _Invalid(path, f'expected a time "HH:MM" (00:00-23:59), got {_show(value)}')


class TimeZone(Node):
    """An IANA timezone name that ZoneInfo knows (Asia/Shanghai)."""

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, str):
            raise _Invalid(path, f"expected a timezone name such as Asia/Shanghai, got {_show(value)}")
        try:
            ZoneInfo(value)
        except (KeyError, ValueError, OSError):  # not found, a malformed name, a directory of the database
            close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
            hint = f"did you mean {close[0]}?" if close else "an IANA name such as Asia/Shanghai"
            raise _Invalid(path, f"unknown timezone {value!r} ({hint})") from None


class Regex(Node):
    """A regular expression (Python's re syntax) that compiles."""

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, str):
            raise _Invalid(path, f"expected a regular expression (a string), got {_show(value)}{_quote_hint(value)}")
        try:
            re.compile(value)
        except re.error as exc:
            raise _Invalid(path, f"bad regular expression: {exc}") from None


class Date(Node):
    """A calendar date, YYYY-MM-DD (YAML reads it as a date; quoted text is accepted too)."""

    def check(self, value: object, path: str) -> None:
        if isinstance(value, date) and not isinstance(value, datetime):
            return
        if isinstance(value, str):
            try:
                date.fromisoformat(value)
                return
            except ValueError:
                pass
        raise _Invalid(path, f"expected a date YYYY-MM-DD, got {_show(value)}")


INT = Int()
NUMBER = Number()
BOOL = Bool()
STR = Str()
TEXT = Str(whole_numbers=True)  # a fact: text, or a whole number that reads the same (parcel_hold_days: 3)
TIME = Time()
TIMEZONE = TimeZone()
REGEX = Regex()
DATE = Date()
WEEKDAY = Int(1, 7)  # ISO weekday, Monday = 1
PROJECT_CODE = Str(r"[a-z0-9_-]{1,32}", "a project code of 1-32 characters from a-z, 0-9, _ and -")

WORDS = OrNull(ListOf(STR))  # plain words, looked for as they are
PATTERNS = OrNull(ListOf(REGEX))  # regular expressions
PATTERN_GROUPS = OrNull(ListOf(ListOf(REGEX)))  # one expression of every group must match
DATES = OrNull(ListOf(DATE))

# --- the schema ------------------------------------------------------------------------------

HAZARD = Map({
    "label": OrNull(STR),
    "life_risk": BOOL,
    "advice": OrNull(STR),
    "cues": PATTERNS,
    "look_alikes": PATTERNS,
    "together": PATTERN_GROUPS,
    "together_in_message": PATTERN_GROUPS,
    "calm": WORDS,
    "resolved": WORDS,
})

SCHEMA = Map({
    # The company running the projects (the project registry, bot.core.company, reads it).
    "company": OrNull(Map({
        "name": OrNull(STR),
        "cs_chat_id": OrNull(INT),  # the company customer-service department's chat
        "default_project": OrNull(PROJECT_CODE),  # the project of requests that name none
    })),
    "project": OrNull(Map({
        "code": OrNull(PROJECT_CODE),
        "name": OrNull(STR),
        "address": OrNull(STR),
        "timezone": OrNull(TIMEZONE),
        "wechat_app_ids": WORDS,  # the official accounts its residents write to; none: any
        "staff_chat_id": OrNull(INT),
        "head_chat_id": OrNull(INT),
        "company_cs_chat_id": OrNull(INT),
    })),
    "sla": OrNull(Map({
        "emergency_repair_onsite_minutes": INT,
        "general_repair_hours": INT,
        "major_complaint_hours": INT,
        "urgent_complaint_hours": INT,
        "general_complaint_working_days": INT,
        "complaint_max_working_days": INT,
        "suggestion_reply_working_days": INT,
        "special_group_factor": NUMBER,
        "callback_within_hours": INT,
        "progress_update_after_working_days": INT,
        "progress_update_every_working_days": INT,
        "complaint_first_feedback_hours": INT,
        # Older files kept the calendar here (bot.core.workdays.parse_calendar still reads them).
        "holidays": DATES,
        "working_days": ListOf(WEEKDAY),
    })),
    "calendar": OrNull(Map({
        "official": BOOL,
        "holiday_file": OrNull(STR),  # relative to the rules file
        "working_weekdays": ListOf(WEEKDAY),
        "holidays": DATES,
        "workdays": DATES,
    })),
    "follow_up": OrNull(Map({
        "callback_delay_minutes": INT,
        "quiet_start": OrNull(TIME),
        "quiet_end": OrNull(TIME),
        "busy_window_minutes": INT,
        "busy_defer_minutes": INT,
        "survey_reminder_hours": INT,
        "survey_close_hours": INT,
        "dissatisfied_max_score": INT,
        "job_max_attempts": INT,
        "job_backoff_seconds": INT,
        "job_backoff_max_seconds": INT,
        "message_log_retention_days": INT,
    })),
    "binding": OrNull(Map({
        "max_failures_per_resident_per_day": INT,
        "max_failures_per_room_per_day": INT,
    })),
    "flood": OrNull(Map({
        "max_messages": INT,
        "window_seconds": INT,
    })),
    "self_service": OrNull(Map({
        "history_months": INT,
        "review_within_days": INT,
        "progress_recent_days": INT,
        "progress_shows_holder_name": BOOL,
    })),
    "escalation": OrNull(Map({
        "group_complaint_count": INT,
        "group_complaint_window_hours": INT,
        "unclaimed_reannounce_minutes": INT,
        "unclaimed_head_minutes": INT,
        "complaint_topics": OrNull(OpenMap(WORDS)),  # topic -> words
    })),
    "wechat_templates": OrNull(OpenMap(OrNull(Map({  # notice -> template
        "template_id": OrNull(STR),  # empty: not configured, the notice is not sent
        "fields": OrNull(OpenMap(STR)),  # template field -> format string over the notice's values
        "url": OrNull(STR),
    })))),
    "annual_survey_dimensions": OrNull(OpenMap(STR)),  # key -> label residents see
    "triage": OrNull(Map({
        "complaint_signals": OrNull(OpenMap(OrNull(Map({
            "label": OrNull(STR),
            "tier": OrNull(OneOf(*COMPLAINT_TIERS)),
            "cues": PATTERNS,
        })))),
        # Older files: plain words that make a complaint major or urgent.
        "major_complaint_keywords": WORDS,
        "urgent_complaint_keywords": WORDS,
        "our_repairs": OrNull(Map({
            "about": PATTERNS,
            "slow": PATTERNS,
            "never_done": PATTERNS,
            "within_days": INT,
        })),
    })),
    "urgency": OrNull(Map({
        "hazards": OrNull(OpenMap(OrNull(HAZARD))),  # in the order they are looked for
        "people_at_risk": WORDS,
        "person_in_danger": OrNull(HAZARD),
        "negations": WORDS,
        "resolved": WORDS,
        "past": WORDS,
        "present": WORDS,
        "hypothetical": WORDS,
        "learned": OrNull(Map({
            "examples": OrNull(ListOf(STR)),  # files relative to the rules file
            "threshold": NUMBER,
            "alpha": NUMBER,
            "advice": OrNull(STR),
        })),
        "spellings": OrNull(OpenMap(STR)),  # written -> read as
    })),
    "service_hours": OrNull(Map({
        "open": OrNull(TIME),
        "close": OrNull(TIME),
        "phone": OrNull(STR),
    })),
    "facts": OrNull(OpenMap(TEXT)),  # fact -> value the FAQ answers quote
    "faq": OrNull(OpenMap(STR)),  # topic -> answer template over the facts
    "referrals": OrNull(ListOf(Map({
        "department": STR,
        "topics": WORDS,
        "contact": OrNull(STR),
    }, required=("department",)))),
    "referral_default": OrNull(STR),
    # Notices to residents and proactive care (bot.core.rules.NoticeRules, bot.cases.notices).
    "notices": OrNull(Map({
        "per_minute": Int(1, 100000),  # WeChat template messages a minute: deliveries are spaced to it
        "current_within_days": INT,  # the FAQ's 停水停电 answer: going on now or starting within this
        "body_max_chars": INT,
        "care_time": OrNull(TIME),  # the daily welcome callbacks and greetings, local time
        "welcome": OrNull(Map({
            "within_days": INT,
            "title": OrNull(STR),
            "text": OrNull(STR),  # {project} and {phone} are filled in
        })),
        "greetings": OrNull(Map({
            "title": OrNull(STR),
            "tags": WORDS,  # households with any of these special-group tags are greeted
            "days": OrNull(OpenMap(STR)),  # "YYYY-MM-DD" (quoted) or an official holiday (春节, 中秋节) -> text
        })),
    })),
})


def check_rules(raw: object, file: str) -> None:
    """Refuse a rules file (the defaults or a project's overlay) the schema does not allow.

    `raw` is the file as yaml.safe_load read it; an empty file (None) says nothing and passes.
    Raises RulesFileError naming `file` and the key.
    """
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise RulesFileError(file, "", f"expected a mapping of sections (project:, sla: ...), got {_show(raw)}")
    try:
        SCHEMA.check(raw, "")
    except _Invalid as exc:
        raise RulesFileError(file, exc.key, exc.problem) from None


def merge_rules(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` over `base`: mappings merge key by key (open maps too: a project may add an FAQ
    topic or change one fact), lists and scalars replace. A null in the overlay says nothing
    (the key keeps the base's value), as a null means "the default" in a rules file.
    Returns a new dict; neither input is changed."""
    merged = {key: copy.deepcopy(value) for key, value in base.items()}
    for key, value in overlay.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_rules(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
