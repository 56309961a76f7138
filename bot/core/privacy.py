"""Masking of residents' personal data for logs and staff views that do not need it."""
from __future__ import annotations

import re

_PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


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
    """Mask mobile numbers that residents type into free text before it is logged."""
    return _PHONE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
