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
HELDOUT_HARD = PROJECT_ROOT / "tests" / "nlu" / "heldout_hard.yml"
HELDOUT_PARTS = (HELDOUT, HELDOUT_HARD)
# Short replies residents phrase in only so many ways: the hard part needs fewer of them.
SMALL_TALK = ("greet", "goodbye", "thank", "affirm", "deny")


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


@pytest.mark.parametrize("path", HELDOUT_PARTS, ids=lambda path: path.name)
def test_no_held_out_example_appears_in_the_training_data(path: Path):
    train = {plain(text) for _, text in training()}
    leaked = [text for _, text in examples(path) if plain(text) in train]
    assert leaked == []


def test_every_held_out_message_appears_once_across_both_parts():
    seen: dict[str, str] = {}
    repeated = []
    for path in HELDOUT_PARTS:
        for _, text in examples(path):
            key = plain(text)
            if key in seen:
                repeated.append((text, seen[key], path.name))
            seen.setdefault(key, path.name)
    assert repeated == []


@pytest.mark.parametrize("intent, minimum", [
    *[(name, 60) for name in ("report_repair", "file_complaint", "check_status", "survey_answer", "inform")],
    *[(name, 25) for name in ("suggestion", "praise", "request_human", "cancel", "greet", "goodbye", "thank",
                              "affirm", "deny", "out_of_scope", "faq")],
])
def test_every_intent_has_enough_hand_written_examples(intent: str, minimum: int):
    counts = Counter(base_intent(name) for name, _ in training())
    assert counts[intent] >= minimum


@pytest.mark.parametrize("path, minimum, small_talk_minimum, per_topic", [
    (HELDOUT, 42, 42, 5),
    (HELDOUT_HARD, 15, 10, 2),
], ids=lambda value: value.name if isinstance(value, Path) else None)
def test_held_out_parts_have_enough_examples_per_intent_and_faq_topic(
        path: Path, minimum: int, small_talk_minimum: int, per_topic: int):
    pairs = examples(path)
    counts = Counter(base_intent(name) for name, _ in pairs)
    # Intents the model is trained on, and intents added to the held-out set ahead of their training data.
    contract = {base_intent(name) for name, _ in training() + examples(HELDOUT) + examples(HELDOUT_HARD)} - {"faq"}
    short = {intent: counts[intent] for intent in sorted(contract)
             if counts[intent] < (small_talk_minimum if intent in SMALL_TALK else minimum)}
    assert short == {}
    topics = Counter(name for name, _ in pairs if name.startswith("faq/"))
    trained_topics = {name for name, _ in training() if name.startswith("faq/")}
    assert {topic: topics[topic] for topic in sorted(trained_topics) if topics[topic] < per_topic} == {}


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
    annotated = training() + examples(HELDOUT) + examples(HELDOUT_HARD)
    rooms = [m.group(1) for _, text in annotated for m in ANNOTATION.finditer(text)
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
    held_out = {name.split("/")[1] for path in HELDOUT_PARTS for name, _ in examples(path) if name.startswith("faq/")}
    assert held_out <= trained
