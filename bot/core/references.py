"""Which case a resident means: a case number (BX20261201-0007 怎么样了), or "the repair /
the complaint I filed" (我上周报的那个修) — the most recent of that kind."""
from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.chinese import to_simplified
from bot.core.kinds import TicketKind

_NUMBER = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2}\d{8}-\d{4,7})(?!\d)")
_POINTING = re.compile(r"那个|那件|那次|上次|上周|上个月|前几天|之前|刚才|昨天|前天|我报的|我提的|我投诉的")
_KINDS = ((TicketKind.COMPLAINT, re.compile(r"投诉")), (TicketKind.REPAIR, re.compile(r"修|报修|维修")))


@dataclass(frozen=True)
class CaseReference:
    number: str | None = None
    kind: TicketKind | None = None


def case_reference(text: str) -> CaseReference | None:
    """None when the message names no case in particular (then all open cases are listed)."""
    text = to_simplified(text or "")
    match = _NUMBER.search(text)
    if match:
        return CaseReference(number=match.group(1).upper())
    if _POINTING.search(text):
        for kind, words in _KINDS:
            if words.search(text):
                return CaseReference(kind=kind)
    return None
