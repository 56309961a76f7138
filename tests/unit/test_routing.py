"""Where a resident's message goes, decided once for every resident channel (bot.cases.routing).

No WeChat here: a second resident channel would build the same `ResidentMessage`s. The
assistant is a stand-in for the external Rasa server behind the `Assistant` port.
"""
from __future__ import annotations

from typing import Any

import pytest

from bot.cases import handoff
from bot.cases.ports import AssistantUnavailable
from bot.cases.residents import import_roster
from bot.cases.routing import Disposition, MessageKind, MessageRouter, ResidentMessage
from bot.cases.tickets import request_human
from bot.core import replies

CHANNEL = "otherchat"  # any channel name: the policy does not depend on it


class RecordingAssistant:
    """Answers every message with a fixed text and records what it was asked."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.asked: list[tuple[str, str, dict[str, Any]]] = []

    async def ask(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[str]:
        if self.down:
            raise AssistantUnavailable("Rasa is restarting")
        self.asked.append((sender, text, dict(metadata or {})))
        return [f"助手收到：{text}"]

    async def trigger_intent(self, sender: str, intent: str, entities: dict[str, Any]) -> list[str]:
        return []


def message(openid: str, kind: MessageKind, text: str = "", **extra: str) -> ResidentMessage:
    return ResidentMessage(openid, kind, CHANNEL, text=text, dedupe_key=f"{openid}:{text}", **extra)


@pytest.fixture
def router_and_assistant(sqlite_store, company):
    assistant = RecordingAssistant()
    return MessageRouter(sqlite_store, company, assistant), assistant


async def test_text_goes_to_the_assistant_with_the_binding_prompt_on_first_contact(router_and_assistant):
    router, assistant = router_and_assistant
    first = await router.route(message("oRoute1", MessageKind.TEXT, "我要报修"))
    assert first.disposition is Disposition.ANSWERED
    assert first.answer == f"助手收到：我要报修\n\n{replies.BINDING_PROMPT}"
    second = await router.route(message("oRoute1", MessageKind.TEXT, "厨房漏水"))
    assert second.answer == "助手收到：厨房漏水"  # asked once only
    assert [(s, t, m["channel"]) for s, t, m in assistant.asked] == [("oRoute1", "我要报修", CHANNEL),
                                                                     ("oRoute1", "厨房漏水", CHANNEL)]


async def test_room_and_phone_bind_without_the_assistant(router_and_assistant, sqlite_store, rules, tmp_path):
    router, assistant = router_and_assistant
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone\n3栋2单元501,王小明,13812345678\n", encoding="utf-8")
    with sqlite_store.transaction() as session:
        import_roster(session, roster, projects={rules.code}, default_project=rules.code)
    routed = await router.route(message("oRoute2", MessageKind.TEXT, "绑定 3栋2单元501 13812345678"))
    assert routed.answer == replies.binding_done("3栋2单元501")
    assert assistant.asked == []


async def test_a_down_assistant_means_waiting_not_an_error(sqlite_store, company):
    router = MessageRouter(sqlite_store, company, RecordingAssistant(down=True))
    routed = await router.route(message("oRoute3", MessageKind.VOICE, "电梯坏了"))
    assert (routed.answer, routed.disposition) == (replies.received_will_answer_later(), Disposition.WAITING)


async def test_menus_events_and_media(router_and_assistant):
    router, assistant = router_and_assistant
    assert (await router.route(message("oRoute4", MessageKind.SUBSCRIBE))).answer == replies.welcome()
    assert (await router.route(message("oRoute4", MessageKind.UNSUBSCRIBE))).disposition is Disposition.IGNORED
    assert (await router.route(message("oRoute4", MessageKind.MENU, "enquiry"))).answer == replies.enquiry_menu()
    assert (await router.route(message("oRoute4", MessageKind.MENU, "unknown_button"))).disposition \
        is Disposition.IGNORED
    await router.route(message("oRoute4", MessageKind.MENU, "repair"))
    assert assistant.asked[-1][1] == "我要报修"
    assert (await router.route(message("oRoute4", MessageKind.VOICE, ""))).answer == replies.voice_not_recognised()
    assert (await router.route(message("oRoute4", MessageKind.IMAGE, picture_url="http://img/1"))).answer \
        == replies.what_does_the_picture_show()  # no open case to attach it to
    assert (await router.route(message("oRoute4", MessageKind.OTHER))).answer == replies.only_text_and_pictures()


async def test_while_staff_hold_the_case_messages_go_to_them(router_and_assistant, sqlite_store, rules):
    router, assistant = router_and_assistant
    with sqlite_store.transaction() as session:
        number = request_human(session, rules, openid="oRoute5", context="转人工", channel=CHANNEL).number
        handoff.claim(session, rules, number, handoff.Staff("api:li", "李"), channel="console")
    relayed = await router.route(message("oRoute5", MessageKind.TEXT, "楼上一直漏水"))
    assert (relayed.answer, relayed.disposition) == (None, Disposition.ANSWERED)
    ended = await router.route(message("oRoute5", MessageKind.TEXT, "结束人工"))
    assert ended.answer == replies.human_session_ended()
    back = await router.route(message("oRoute5", MessageKind.TEXT, "谢谢"))
    assert back.answer.startswith("助手收到：谢谢")
    assert [text for _, text, _ in assistant.asked] == ["谢谢"]
