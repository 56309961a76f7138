"""Rasa graph component: reconcile what the entity extractors found.

Two extractors look for rooms, phones and ratings: the RegexEntityExtractor (exact
patterns) and DIET (learned, so it also finds odd forms, and sometimes half a room or a
room labelled as a phone). Listed after EntitySynonymMapper, this component

- drops a learned entity that overlaps a pattern match: the pattern is exact;
- drops a learned entity whose value is not what its type must be (a room our parser
  cannot read, a phone that is not a mobile number, a rating outside 1–5);
- trims whitespace the learned spans sometimes include.

So the forms and the evaluation see one clean answer per span.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.core.phones import normalise_phone
from bot.core.rooms import find_rooms, normalise_room

PATTERN_EXTRACTOR = "RegexEntityExtractor"
RATINGS = frozenset("12345")


def _valid(entity: Dict[str, Any]) -> bool:
    value = str(entity.get("value") or "")
    kind = entity.get("entity")
    if kind == "room":
        return normalise_room(value) is not None
    if kind == "phone":
        return normalise_phone(value) is not None
    if kind == "rating":
        return value in RATINGS
    return True


def _trim(entity: Dict[str, Any], text: str) -> Dict[str, Any]:
    start, end = entity["start"], entity["end"]
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if (start, end) != (entity["start"], entity["end"]):
        entity = {**entity, "start": start, "end": end}
        if isinstance(entity.get("value"), str):
            entity["value"] = entity["value"].strip()
    return entity


def parsed_rooms(text: str, entities: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rooms our parser reads where no pattern matched (十二栋三单元六零二, ⑤栋1单元302,
    ３#２-５０１): exact like the patterns, so they count as pattern matches."""
    found = []
    for start, end in find_rooms(text):
        overlapping = [e for e in entities if e.get("extractor") == PATTERN_EXTRACTOR and e.get("entity") == "room"
                       and e["start"] < end and start < e["end"]]
        if all(e["end"] - e["start"] < end - start for e in overlapping):
            found.append({"entity": "room", "start": start, "end": end, "value": text[start:end],
                          "confidence_entity": 1.0, "extractor": PATTERN_EXTRACTOR})
    return found


def reconcile(entities: List[Dict[str, Any]], text: str) -> List[Dict[str, Any]]:
    rooms = parsed_rooms(text, entities)
    # A parsed room replaces a shorter pattern match inside it (the pattern saw half of it).
    patterns = [e for e in entities if e.get("extractor") == PATTERN_EXTRACTOR
                and not any(e["start"] < r["end"] and r["start"] < e["end"] for r in rooms)] + rooms
    kept = list(patterns)
    for entity in entities:
        if entity.get("extractor") == PATTERN_EXTRACTOR:
            continue
        entity = _trim(entity, text)
        overlaps = any(entity["start"] < p["end"] and p["start"] < entity["end"] for p in patterns)
        if not overlaps and _valid(entity):
            kept.append(entity)
    return sorted(kept, key=lambda e: (e["start"], e["end"]))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class ReconcileEntities(GraphComponent):
    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "ReconcileEntities":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            entities = message.get(ENTITIES) or []
            text = message.get(TEXT) or ""
            if entities or find_rooms(text):
                message.set(ENTITIES, reconcile(entities, text), add_to_output=True)
        return messages
