"""Masking of residents' personal data for logs and staff views that do not need it."""
from __future__ import annotations

import re

# What residents type into free text and must not reach a log unmasked. Digits next to the
# match are excluded so that longer numbers (ticket numbers, amounts) are left alone.
_ID_CARD_RE = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{11}(\d{3}[\dXx])(?![0-9A-Za-z])")  # 18-character 身份证号
_MOBILE_RE = re.compile(r"(?<![\d+])((?:\+?86[\s-]?)?1[3-9]\d)[\s-]?\d{4}[\s-]?(\d{4})(?!\d)")
# Landlines with their area code: 010-12345678, 0755 1234567, (021)12345678.
_LANDLINE_RE = re.compile(r"(?<!\d)(\(?0\d{2,3}\)?[\s-]?)\d{3,4}[\s-]?(\d{4})(?!\d)")


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_name(name: str | None) -> str:
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)


def mask_openid(openid: str | None) -> str:
    if not openid:
        return ""
    if len(openid) <= 8:
        return openid[:2] + "***"
    return f"{openid[:4]}***{openid[-4:]}"


def mask_room(room: str | None) -> str:
    """Keep the building, hide the door: 3栋2单元501 -> 3栋2单元***."""
    if not room:
        return ""
    return re.sub(r"\d+$", "***", room) if re.search(r"\d+$", room) else room[:2] + "***"


def redact_text(text: str) -> str:
    """Mask ID-card numbers, mobiles (also written with spaces or dashes, or +86) and
    landlines that residents type into free text, before it is logged or shown."""
    text = _ID_CARD_RE.sub(lambda m: f"{m.group(1)}{'*' * 11}{m.group(2)}", text)
    text = _MOBILE_RE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    return _LANDLINE_RE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
