"""A resident names a case (issue 13, item 6): its number, or "the repair I filed last week",
gets that case's status — closed ones too — and a number that is not theirs gets no details."""
from __future__ import annotations

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.status import ActionCheckStatus
from bot.cases.tickets import open_complaint_ticket, transition
from bot.core.kinds import TicketKind, TicketStatus
from bot.core.references import CaseReference, case_reference
from bot.db.models import Ticket
from tests.unit.test_actions import DOMAIN, file_repairs, tracker, wired  # noqa: F401 - the fixture wires the actions


@pytest.mark.parametrize("text,expected", [
    ("BX20261201-0007怎么样了", CaseReference(number="BX20261201-0007")),
    ("工单 bx20261201-0007 到哪一步了", CaseReference(number="BX20261201-0007")),
    ("我上周报的那个修怎么样了", CaseReference(kind=TicketKind.REPAIR)),
    ("之前那个投诉有结果了吗", CaseReference(kind=TicketKind.COMPLAINT)),
    ("查询进度", None),
    ("我的电话13812345678", None),
])
def test_what_a_message_points_at(text, expected):
    assert case_reference(text) == expected


async def status_reply(text: str, sender: str = "oTestResident0001") -> str:
    dispatcher = CollectingDispatcher()
    await ActionCheckStatus().run(dispatcher, tracker(text, intent="check_status", sender=sender), DOMAIN)
    return dispatcher.messages[0]["text"]


async def test_a_named_case_gets_its_status_even_when_closed(wired, rules):  # noqa: F811
    first, second = await file_repairs(wired, "客厅灯不亮", "门锁坏了")
    with wired.transaction() as s:
        transition(s, s.get(Ticket, first.id), TicketStatus.CANCELLED, rules=rules, actor="resident", channel="rest")
    text = await status_reply(f"{first.number}怎么样了")
    assert first.number in text and second.number not in text and "已撤销" in text
    latest = await status_reply("我上周报的那个修怎么样了")
    assert second.number in latest and first.number not in latest


async def test_someone_elses_number_gets_no_details(wired, rules):  # noqa: F811
    with wired.transaction() as s:
        theirs = open_complaint_ticket(s, rules, openid="oSomeoneElse", description="邻居家狗叫", demand=None,
                                       room="9栋1单元101", channel="wechat").number
    text = await status_reply(f"{theirs}处理得怎么样")
    nobodys = await status_reply("TS20990101-0001处理得怎么样")
    assert text == nobodys.replace("TS20990101-0001", theirs)  # the same answer as for a number nobody has
    assert "狗" not in text and "9栋" not in text
