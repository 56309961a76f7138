"""Traditional Chinese input: converted to Simplified before tokenising, as a Rasa component."""
from __future__ import annotations

from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.chinese import to_simplified
from bot.nlu.entities import ReconcileEntities, reconcile
from bot.nlu.traditional import TraditionalToSimplified
from bot.rooms import normalise_room


def test_traditional_text_becomes_simplified_and_simplified_stays():
    assert to_simplified("電梯壞了，快來人修") == "电梯坏了，快来人修"
    assert to_simplified("我要報修，廚房漏水") == "我要报修，厨房漏水"
    assert to_simplified("我要报修") == "我要报修"
    assert to_simplified("") == "" and to_simplified("OK 123") == "OK 123"


def test_room_addresses_in_traditional_characters_are_understood():
    assert normalise_room("3棟2單元501") == "3栋2单元501"
    assert normalise_room("7號樓1202室") == "7栋1202"


def test_component_converts_messages_at_prediction():
    component = TraditionalToSimplified()
    messages = component.process([Message(data={TEXT: "樓道燈不亮了"}), Message(data={TEXT: "谢谢"})])
    assert [m.get(TEXT) for m in messages] == ["楼道灯不亮了", "谢谢"]


def test_component_converts_training_examples_and_keeps_entity_offsets():
    annotated = Message(data={TEXT: "我住3棟2單元501", "intent": "inform",
                              "entities": [{"entity": "room", "start": 2, "end": 11, "value": "3棟2單元501"}]})
    plain = Message(data={TEXT: "電燈壞了", "intent": "report_repair"})
    data = TraditionalToSimplified().process_training_data(TrainingData([annotated, plain]))
    converted, simple = data.training_examples
    assert converted.get(TEXT) == "我住3栋2单元501" and converted.get(TEXT)[2:11] == "3栋2单元501"
    assert simple.get(TEXT) == "电灯坏了"


def test_pattern_entities_win_over_overlapping_learned_ones():
    text = "我家18号楼2单元1702漏水"
    found = [
        {"entity": "phone", "start": 2, "end": 6, "value": "18号楼", "extractor": "DIETClassifier"},
        {"entity": "room", "start": 7, "end": 9, "value": "单元", "extractor": "DIETClassifier"},
        {"entity": "room", "start": 2, "end": 14, "value": "18号楼2单元1702", "extractor": "RegexEntityExtractor"},
    ]
    assert reconcile(found, text) == [found[2]]


def test_learned_entities_must_parse_as_their_type_and_lose_stray_spaces():
    text = "楼下单元门坏了 9栋3单元602 电话13812345678"
    found = [
        {"entity": "room", "start": 2, "end": 4, "value": "单元", "extractor": "DIETClassifier"},
        {"entity": "room", "start": 7, "end": 16, "value": " 9栋3单元602", "extractor": "DIETClassifier"},
        {"entity": "phone", "start": 19, "end": 30, "value": "13812345678", "extractor": "DIETClassifier"},
        {"entity": "rating", "start": 0, "end": 1, "value": "7", "extractor": "DIETClassifier"},
    ]
    kept = reconcile(found, text)
    assert [(e["entity"], e["value"], text[e["start"]:e["end"]]) for e in kept] == [
        ("room", "9栋3单元602", "9栋3单元602"), ("phone", "13812345678", "13812345678")]


def test_reconcile_component_rewrites_message_entities():
    message = Message(data={TEXT: "A座1803", "entities": [
        {"entity": "room", "start": 0, "end": 2, "value": "A座", "extractor": "DIETClassifier"},
        {"entity": "room", "start": 0, "end": 6, "value": "A座1803", "extractor": "RegexEntityExtractor"}]})
    [processed] = ReconcileEntities().process([message])
    assert [e["value"] for e in processed.get("entities")] == ["A座1803"]
