"""Rooms read as a person reads them: corrections inside a message, and right after filing."""
from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.corrections import ActionCorrectTicketRoom
from actions.repair import ValidateRepairForm
from bot.cases.tickets import ROOM_CORRECTED
from bot.db.models import TicketEvent
from tests.unit.test_actions import DOMAIN, file_repairs, slot_events, tickets, tracker, wired  # noqa: F401


async def test_a_room_corrected_inside_the_answer_is_the_corrected_one():
    said = tracker("3栋2单元501 哦不对 是502", entities=[{"entity": "room", "value": "3栋2单元501"}],
                   slots={"requested_slot": "room", "repair_description": "客厅灯不亮", "room": "3栋2单元501"},
                   active_loop="repair_form")
    # Rasa fills the slot from the entity span before the form validates it.
    said.events += [{"event": "user", "text": said.latest_message["text"]},
                    {"event": "slot", "name": "room", "value": "3栋2单元501"}]
    events = await ValidateRepairForm().run(CollectingDispatcher(), said, DOMAIN)
    assert slot_events(events)["room"] == "3栋2单元502"


async def test_a_correction_after_filing_changes_that_case_and_opens_no_other(sqlite_store):
    [ticket] = await file_repairs(sqlite_store, "客厅灯不亮")
    dispatcher = CollectingDispatcher()
    await ActionCorrectTicketRoom().run(dispatcher, tracker(
        "不对 是1202", intent="deny", slots={"last_ticket_number": ticket.number}), DOMAIN)
    [after] = tickets(sqlite_store)
    assert (after.number, after.room) == (ticket.number, "3栋2单元1202")
    assert ticket.number in dispatcher.messages[0]["text"] and "1202" in dispatcher.messages[0]["text"]
    with sqlite_store.transaction() as s:
        [event] = s.execute(select(TicketEvent).where(TicketEvent.action == ROOM_CORRECTED)).scalars()
        assert event.content == "3栋2单元501 → 3栋2单元1202" and event.actor == "resident"


async def test_someone_elses_case_or_no_room_is_not_corrected(sqlite_store):
    [ticket] = await file_repairs(sqlite_store, "客厅灯不亮")
    dispatcher = CollectingDispatcher()
    await ActionCorrectTicketRoom().run(dispatcher, tracker(
        "不对 是1202", intent="deny", slots={"last_ticket_number": ticket.number}, sender="oSomeoneElse"), DOMAIN)
    dispatcher_no_room = CollectingDispatcher()
    await ActionCorrectTicketRoom().run(dispatcher_no_room, tracker(
        "不对", intent="deny", slots={"last_ticket_number": ticket.number}), DOMAIN)
    [after] = tickets(sqlite_store)
    assert after.room == "3栋2单元501"
    assert dispatcher.messages[0]["response"] == "utter_default"
    assert dispatcher_no_room.messages[0]["response"] == "utter_default"
