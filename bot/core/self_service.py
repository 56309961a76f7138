"""Self-service on the household file (一户一档): what a message asks of it, and the windows it looks through.

Pure: the use cases in `bot.cases.household` and `bot.cases.reviews` query the store with these.
"""
from __future__ import annotations

import calendar
import re
from datetime import datetime

from bot.core.chinese import to_simplified
from bot.core.phones import PHONE_RE, normalise_phone

# A progress enquiry that asks for the past, not only what is open: "我今年报过哪些修", "查历史工单".
_HISTORY = re.compile(r"历史|以前|所有|全部|今年|去年|这一年|近一年|一年内|办结|报过哪些|提过哪些|投诉过哪些|记录")


def asks_for_history(text: str) -> bool:
    """True when a progress enquiry asks for the cases of the past year, closed ones included."""
    return bool(_HISTORY.search(to_simplified(text or "")))


# Words just before the new number when a message names two ("把139…改成138…", "旧号139… 新号138…").
_NEW_NUMBER_CUE = re.compile(r"(新|改成|改为|改用|换成|换为|变成|变为|更新为|正确的是|以后打|以后用|现在用|现在是)[^\d]{0,6}$")


def new_phone_in(text: str) -> str | None:
    """The new mobile number a message gives: the one after a cue such as 改成/新号, else the last one."""
    text = to_simplified(text or "")
    found = list(PHONE_RE.finditer(text))
    if len(found) < 2:
        return normalise_phone(text)
    cued = [m for m in found if _NEW_NUMBER_CUE.search(text[max(0, m.start() - 12):m.start()])]
    return (cued or found)[-1].group(1)


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (31 March - 1 month = 28/29 February)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)
