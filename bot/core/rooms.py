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


def normalise_room(text: str | None) -> str | None:
    room = parse_room(text)
    return str(room) if room else None


_CORRECTION = re.compile(r"不对|不是|错了|说错|写错|搞错|应该是|改成|改为|更正|更改")
_BARE_NUMBER = re.compile(r"(?<![\d\-])(\d{3,4})(?![\d\-])")


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
    if current is None or not _CORRECTION.search(normalised):
        return None
    match = _BARE_NUMBER.search(normalised)
    if match is None:
        return None
    return str(Room(current.building, current.unit, match.group(1)))
