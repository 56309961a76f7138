"""The training data and the held-out test set: coverage, annotations, and no leakage."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bot.core.chinese import to_simplified
from bot.core.rooms import normalise_room
from bot.core.rules import load_rules
from bot.settings import PROJECT_ROOT

ANNOTATION = re.compile(r"\[([^\]]+)\](?:\((\w+)\)|\{([^}]*)\})")
HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"


def examples(path: Path) -> list[tuple[str, str]]:
    """(intent, annotated example) pairs of a Rasa NLU YAML file."""
    pairs = []
    for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
        if "intent" in block:
            for line in block["examples"].splitlines():
                if line.strip().startswith("- "):
                    pairs.append((block["intent"], line.strip()[2:].strip()))
    return pairs


def training() -> list[tuple[str, str]]:
    return [pair for path in sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml")) for pair in examples(path)]


def plain(example: str) -> str:
    """The text a resident typed: annotations removed, Simplified, no spaces or punctuation."""
    text = ANNOTATION.sub(lambda m: m.group(1), example)
    return re.sub(r"[\s，。！？!?,.、~～…]", "", to_simplified(text))


def base_intent(name: str) -> str:
    return name.split("/")[0]


def test_no_held_out_example_appears_in_the_training_data():
    train = {plain(text) for _, text in training()}
    leaked = [text for _, text in examples(HELDOUT) if plain(text) in train]
    assert leaked == []


@pytest.mark.parametrize("intent, minimum", [
    *[(name, 60) for name in ("report_repair", "file_complaint", "check_status", "survey_answer", "inform")],
    *[(name, 25) for name in ("suggestion", "praise", "request_human", "cancel", "greet", "goodbye", "thank",
                              "affirm", "deny", "out_of_scope", "faq")],
])
def test_every_intent_has_enough_hand_written_examples(intent: str, minimum: int):
    counts = Counter(base_intent(name) for name, _ in training())
    assert counts[intent] >= minimum


def test_held_out_set_has_at_least_15_examples_per_intent():
    counts = Counter(base_intent(name) for name, _ in examples(HELDOUT))
    contract = {base_intent(name) for name, _ in training()}
    assert {intent: counts[intent] for intent in contract if counts[intent] < 15} == {}


def test_no_example_is_labelled_with_two_intents():
    seen: dict[str, str] = {}
    clashes = []
    for name, text in training():
        key = plain(text)
        if key in seen and seen[key] != name:
            clashes.append((text, seen[key], name))
        seen.setdefault(key, name)
    assert clashes == []


def test_every_annotated_room_is_a_room_our_parser_reads():
    rooms = [m.group(1) for _, text in training() + examples(HELDOUT) for m in ANNOTATION.finditer(text)
             if m.group(2) == "room" or (m.group(3) and '"room"' in m.group(3))]
    assert len(rooms) > 50
    assert [room for room in rooms if normalise_room(room) is None] == []


def test_faq_topics_agree_across_training_data_domain_and_project_answers():
    trained = {name.split("/")[1] for name, _ in training() if name.startswith("faq/")}
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    responses = {key.split("/")[1] for key in domain["responses"] if key.startswith("utter_faq/")}
    answers = set(load_rules(PROJECT_ROOT / "project" / "default.yml").knowledge.topics())
    assert len(trained) >= 20
    assert trained == responses == answers
    held_out = {name.split("/")[1] for name, _ in examples(HELDOUT) if name.startswith("faq/")}
    assert held_out <= trained
