"""The forms' slots, and leaving a form without submitting it (cancel, a person takes over)."""
from __future__ import annotations

from typing import List

from rasa_sdk.events import ActiveLoop, EventType, SlotSet

from actions.complaint import COMPLAINT_SLOTS
from actions.repair import REPAIR_SLOTS
from actions.survey import SURVEY_SLOTS

FORM_SLOTS: dict[str, tuple[str, ...]] = {"repair_form": REPAIR_SLOTS, "complaint_form": COMPLAINT_SLOTS,
                                        "survey_form": SURVEY_SLOTS + ("survey_id",)}


def leave_form(form: str) -> List[EventType]:
    """Deactivate `form` and forget what it had collected."""
    return [ActiveLoop(None), SlotSet("requested_slot", None)] + [SlotSet(s, None) for s in FORM_SLOTS.get(form, ())]
