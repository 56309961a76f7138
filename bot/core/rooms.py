"""Room addresses: recognise the many ways residents write them, and normalise.

Accepted, among others: 3栋2单元501, 3幢2单元501室, 3号楼2单元501, 7号楼1202, A座1803,
5-1-302, 5#1-302, 三栋二单元501, full-width digits. Normal form: 3栋2单元501, 7栋1202, A座1803.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot.core.chinese import to_simplified

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_RUN = re.compile(r"[零〇一二两三四五六七八九十百]+")


def _cn_to_int(run: str) -> int | None:
    if "十" not in run and "百" not in run:
        return None
    total, current = 0, 0
    for char in run:
        if char in _CN_DIGITS:
            current = _CN_DIGITS[char]
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        elif char == "百":
            total += (current or 1) * 100
            current = 0
    return total + current


def _arabise(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        value = _cn_to_int(run)
        if value is not None:
            return str(value)
        return "".join(str(_CN_DIGITS[c]) for c in run)

    return _CN_RUN.sub(replace, text)


_BUILDING = r"(?P<b>\d{1,3}|[A-Za-z])"
_LABELLED = re.compile(
    _BUILDING
    + r"\s*(?:号楼|栋|幢|座|号)\s*"
    + r"(?:(?P<u>\d{1,2})\s*(?:单元|号门|门)\s*)?"
    + r"(?:\d{1,2}\s*(?:楼|层)\s*)?"  # a floor said before the door number adds nothing
    + r"(?P<r>\d{3,4})(?!\d)\s*(?:室|号|房)?"
)
_DASHED = re.compile(
    r"(?<![\d])" + _BUILDING + r"\s*[-#—－]\s*(?:(?P<u>\d{1,2})\s*[-—－]\s*)?(?P<r>\d{3,4})(?![\d\-—－])"
)


@dataclass(frozen=True)
class Room:
    building: str
    unit: str | None
    number: str

    def __str__(self) -> str:
        unit = f"{self.unit}单元" if self.unit else ""
        return f"{self.building}{unit}{self.number}"


def _building_label(raw: str) -> str:
    return f"{raw.upper()}座" if raw.isalpha() else f"{int(raw)}栋"


def _plain_digits(text: str) -> str:
    """Simplified characters, half-width Arabic digits (三栋 → 3栋, ５０１ → 501)."""
    return _arabise(unicodedata.normalize("NFKC", to_simplified(text)))


def parse_room(text: str | None) -> Room | None:
    """The first room address found in `text`, normalised; None if there is none."""
    if not text:
        return None
    normalised = _plain_digits(str(text))
    for pattern in (_LABELLED, _DASHED):
        match = pattern.search(normalised)
        if match:
            unit = match.group("u")
            return Room(
                building=_building_label(match.group("b")),
                unit=str(int(unit)) if unit else None,
                number=match.group("r"),
            )
    return None


def read_room(text: str | None) -> Room | None:
    """The room a person would read from `text`: the first address, unless the message
    corrects itself ("3栋2单元501 哦不对 是502" → 3栋2单元502, "不是501 是502" → 502);
    a number the resident rules out ("是501 不是502") is never taken."""
    first = parse_room(text)
    if first is None or text is None:
        return first
    normalised = _plain_digits(str(text))
    spans = _room_spans(normalised)
    if not spans:
        return first
    first_start, first_end = spans[0][0], spans[0][1]
    corrected = _REJECTED.search(normalised[max(0, first_start - 4):first_start]) is not None
    corrected = corrected or _CORRECTION.search(normalised, first_end) is not None
    if not corrected:
        return first
    later = [(start, room) for start, end, room in spans[1:]
             if not _REJECTED.search(normalised[max(0, start - 4):start])]
    later += [(m.start(1), Room(first.building, first.unit, m.group(1)))
              for m in _BARE_NUMBER.finditer(normalised, first_end)
              if not _REJECTED.search(normalised[max(0, m.start(1) - 4):m.start(1)])
              and not any(start <= m.start(1) < end for start, end, _ in spans)]
    return max(later, key=lambda item: item[0])[1] if later else first


def _room_spans(normalised: str) -> list[tuple[int, int, Room]]:
    """Every whole address in the text, in order, as (start, end, room)."""
    found: dict[int, tuple[int, int, Room]] = {}
    for pattern in (_LABELLED, _DASHED):
        for match in pattern.finditer(normalised):
            if any(s <= match.start() < e for s, e, _ in found.values()):
                continue
            unit = match.group("u")
            found[match.start()] = (match.start(), match.end(), Room(
                building=_building_label(match.group("b")), unit=str(int(unit)) if unit else None,
                number=match.group("r")))
    return [found[key] for key in sorted(found)]


_MARKED = re.compile(r"号楼|栋|幢|座|单元|[-#—－]")


def find_rooms(text: str) -> list[tuple[int, int]]:
    """Where whole room addresses stand in `text`, as (start, end) offsets of `text` itself
    (一二零三, ５栋, ⑤栋 included); empty when reading the digits changed the text's length
    (二十三栋), since the offsets would no longer point at the resident's words."""
    normalised = _plain_digits(text)
    if len(normalised) != len(text):
        return []
    # "3号1200" is as likely a date and a sum as a room: a bare 号 is not enough here.
    spans = []
    for start, end, _ in _room_spans(normalised):
        while end > start and normalised[end - 1].isspace():
            end -= 1
        if _MARKED.search(normalised[start:end]):
            spans.append((start, end))
    return spans


def normalise_room(text: str | None) -> str | None:
    room = read_room(text)
    return str(room) if room else None


_CORRECTION = re.compile(r"不对|不是|错了|说错|写错|搞错|应该是|改成|改为|更正|更改")
_REJECTED = re.compile(r"不是说?\s*$")  # 不是502: the number after it is the wrong one
_BARE_NUMBER = re.compile(r"(?<![\d\-])(\d{3,4})(?![\d\-])")


def _same_building(current: Room, text: str) -> Room | None:
    """A bare door number after a correction keeps the building and unit already named;
    a number ruled out ("不是501") is skipped."""
    for match in _BARE_NUMBER.finditer(text):
        if not _REJECTED.search(text[max(0, match.start(1) - 4):match.start(1)]):
            return Room(current.building, current.unit, match.group(1))
    return None


def corrected_room(text: str | None, previous: str | None) -> str | None:
    """The room a correction names: a whole address ("不对，是3栋2单元502"), or, after a
    correction word, just the door number ("不对，是502"), kept in the previous building."""
    if not text:
        return None
    whole = normalise_room(text)
    if whole:
        return whole
    current = parse_room(previous)
    normalised = _plain_digits(text)
    correction = _CORRECTION.search(normalised)
    if current is None or correction is None:
        return None
    room = _same_building(current, normalised[correction.start():])
    return str(room) if room else None
