"""Mainland mobile numbers, as residents type them."""
from __future__ import annotations

import re

PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")


def normalise_phone(text: str | None) -> str | None:
    """A mainland mobile number, also when written 138-1234-5678 or 138 1234 5678."""
    text = text or ""
    match = PHONE_RE.search(text) or PHONE_RE.search(re.sub(r"(?<=\d)[\s-](?=\d{4}(?!\d{2}))", "", text))
    return match.group(1) if match else None
