"""Notices to residents: their kinds, what WeChat allows them to say, and which days are holidays
that the project greets its special-group households on. Pure: the wording is in replies.py,
the storage and sending in bot.cases.notices."""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any, Mapping, Protocol, Sequence

# Kinds: staff compose the first four; the worker writes the proactive-care ones.
OUTAGE = "outage"  # 停水停电
WORKS = "works"  # 施工
PUBLIC = "public"  # 公示
REMINDER = "reminder"  # 温馨提示
WELCOME_CALLBACK = "welcome_callback"  # 入住回访
HOLIDAY_GREETING = "holiday_greeting"  # 节日问候
STAFF_KINDS = (OUTAGE, WORKS, PUBLIC, REMINDER)
CARE_KINDS = (WELCOME_CALLBACK, HOLIDAY_GREETING)
KINDS = STAFF_KINDS + CARE_KINDS
# Kinds that are about a period (the outage, the works): it must be given.
PERIOD_KINDS = (OUTAGE, WORKS)
# What the FAQ's 停水停电 answer reads.
OUTAGE_KINDS = (OUTAGE, WORKS)

KIND_LABELS_ZH = {OUTAGE: "停水停电", WORKS: "施工通知", PUBLIC: "公示", REMINDER: "温馨提示",
                  WELCOME_CALLBACK: "入住回访", HOLIDAY_GREETING: "节日问候"}
PERIOD_LABELS_ZH = {OUTAGE: "影响时间", WORKS: "施工时间", PUBLIC: "公示期", REMINDER: "时间"}

# A notice's life.
DRAFT = "draft"
SCHEDULED = "scheduled"
SENDING = "sending"
SENT = "sent"
CANCELLED = "cancelled"
ANNOUNCED = (SCHEDULED, SENDING, SENT)  # (once its send time has come) residents may know it

# One resident's copy.
PENDING = "pending"
DELIVERED = "sent"
FAILED = "failed"
UNREACHABLE = "unreachable"
WITHDRAWN = "cancelled"
FINISHED = (DELIVERED, FAILED, UNREACHABLE, WITHDRAWN)

# WeChat: a template's thing field holds 20 characters, so does the title; the body goes out
# whole as a customer-service message inside the 48-hour window.
TITLE_MAX = 20


class NoticeError(ValueError):
    """A notice that cannot be composed or sent as asked (the message says why)."""


class NoticeFacts(Protocol):
    """What the wording reads of a notice (the stored notice satisfies it)."""

    @property
    def kind(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def target(self) -> Any: ...
    @property
    def starts_at(self) -> datetime | None: ...
    @property
    def ends_at(self) -> datetime | None: ...
    @property
    def send_at(self) -> datetime: ...


def check_text(title: str, body: str, body_max: int) -> tuple[str, str]:
    """The title and body trimmed; refused when empty, too long, or a title on several lines."""
    title, body = (title or "").strip(), (body or "").strip()
    if not title or not body:
        raise NoticeError("a notice needs a title and a body")
    if "\n" in title or len(title) > TITLE_MAX:
        raise NoticeError(f"the title must be one line of at most {TITLE_MAX} characters (WeChat's template field)")
    if len(body) > body_max:
        raise NoticeError(f"the body has {len(body)} characters; at most {body_max}")
    return title, body


_BUILDING = re.compile(r"^\s*(?P<b>[0-9]{1,3}|[A-Za-z])\s*(?:号楼|栋|幢|座|号)?\s*$")
_CN_NUMBER = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def _chinese_number(text: str) -> str:
    """三 → 3, 十二 → 12, 二十一 → 21 (the building numbers staff type)."""
    if not text or any(c not in _CN_NUMBER and c != "十" for c in text):
        return text
    if "十" not in text:
        return "".join(str(_CN_NUMBER[c]) for c in text)
    tens, _, ones = text.partition("十")
    return str((_CN_NUMBER[tens] if tens else 1) * 10 + (_CN_NUMBER[ones] if ones else 0))


def normalise_building(text: str) -> str | None:
    """A building as rooms write it: 3, 3栋, 3号楼, 3幢, 三栋 → 3栋; A, A座 → A座. None if unreadable."""
    plain = unicodedata.normalize("NFKC", str(text or "")).strip()
    head = re.match(r"^([一二两三四五六七八九十]+)(.*)$", plain)
    if head:
        plain = _chinese_number(head.group(1)) + head.group(2)
    match = _BUILDING.match(plain)
    if match is None:
        return None
    raw = match.group("b")
    return f"{raw.upper()}座" if raw.isalpha() else f"{int(raw)}栋"


def target_of(buildings: Sequence[str], rooms: Sequence[str]) -> dict[str, list[str]]:
    return {"buildings": sorted(set(buildings), key=_natural), "rooms": sorted(set(rooms), key=_natural)}


def _natural(text: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def in_target(target: Mapping[str, Any] | None, room: str | None, building: str | None) -> bool:
    """Whether a household (its room and the room's building) is among a notice's addressees."""
    buildings = list((target or {}).get("buildings") or ())
    rooms = list((target or {}).get("rooms") or ())
    if not buildings and not rooms:
        return True  # the whole project
    return (room is not None and room in rooms) or (building is not None and building in buildings)


def is_current(notice: NoticeFacts, now: datetime, ahead: timedelta) -> bool:
    """Going on now, or starting within `ahead`; a notice about no period: sent within `ahead`."""
    start = notice.starts_at or notice.send_at
    end = notice.ends_at or (notice.send_at + ahead)
    return notice.send_at <= now and start <= now + ahead and end >= now


# --- holidays ---------------------------------------------------------------------------------


def _official_holidays() -> dict[str, str]:
    """The official holidays by the names a company writes (春节, 中秋节 …, or spring_festival):
    the name the bundled calendar gives their days."""
    try:
        from chinese_calendar import Holiday
    except ImportError:  # pragma: no cover - the lock installs it
        return {}
    names: dict[str, str] = {}
    for holiday in Holiday:
        names[holiday.name] = holiday.value
        chinese = str(getattr(holiday, "chinese", "") or "")
        if chinese:
            names[chinese] = holiday.value
            if not chinese.endswith("节") and len(chinese) <= 3:
                names[f"{chinese}节"] = holiday.value  # 中秋 and 中秋节, 清明 and 清明节
    return names


OFFICIAL_HOLIDAYS = _official_holidays()


def _holiday_of(day: date) -> str | None:
    try:
        from chinese_calendar import get_holiday_detail
    except ImportError:  # pragma: no cover
        return None
    try:
        on_holiday, name = get_holiday_detail(day)
    except NotImplementedError:  # a year the bundled data does not cover
        return None
    return str(name) if on_holiday and name else None


def check_greeting_day(key: str) -> None:
    """A greeting's day: a date (YYYY-MM-DD) or an official holiday's name (春节, 中秋节 …)."""
    try:
        date.fromisoformat(key)
        return
    except ValueError:
        pass
    if key not in OFFICIAL_HOLIDAYS:
        raise NoticeError(f"{key!r} is neither a date YYYY-MM-DD nor an official holiday "
                          f"({', '.join(n for n in OFFICIAL_HOLIDAYS if not n.isascii() and len(n) <= 4)})")


def greeting_for(day: date, greetings: Sequence[tuple[str, str]], official: bool = True) -> str | None:
    """The greeting configured for this local day: by its date, else — on the first day of an
    official holiday (the calendar's data) — by the holiday's name."""
    for key, text in greetings:
        if key == day.isoformat():
            return text
    if not official:
        return None
    holiday = _holiday_of(day)
    if holiday is None or _holiday_of(day - timedelta(days=1)) == holiday:
        return None
    for key, text in greetings:
        if OFFICIAL_HOLIDAYS.get(key) == holiday:
            return text
    return None
