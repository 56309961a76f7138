"""Traditional Chinese input: converted to Simplified before tokenising, as a Rasa component."""
from __future__ import annotations

from pathlib import Path

import pytest
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.core.chinese import to_simplified
from bot.core.rooms import normalise_room
from bot.nlu.entities import ReconcileEntities, reconcile
from bot.nlu.traditional import TraditionalToSimplified

PROJECT_ROOT = Path(__file__).resolve().parents[2]
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


@pytest.mark.parametrize(("text", "room"), [
    ("我家十二栋三单元六零二漏水了", "十二栋三单元六零二"),
    ("⑤栋1单元302的灯坏了", "⑤栋1单元302"),
    ("３#２-５０１ 门锁坏了", "３#２-５０１"),
    ("3栋一二零三 马桶堵了", "3栋一二零三"),
])
def test_rooms_our_parser_reads_are_found_where_no_pattern_matched(text, room):
    [entity] = reconcile([], text)
    assert (entity["entity"], text[entity["start"]:entity["end"]]) == ("room", room)


def test_a_date_and_a_sum_are_not_a_room():
    assert reconcile([], "我12月3号1200元的物业费交了吗") == []


def test_reconcile_component_rewrites_message_entities():
    message = Message(data={TEXT: "A座1803", "entities": [
        {"entity": "room", "start": 0, "end": 2, "value": "A座", "extractor": "DIETClassifier"},
        {"entity": "room", "start": 0, "end": 6, "value": "A座1803", "extractor": "RegexEntityExtractor"}]})
    [processed] = ReconcileEntities().process([message])
    assert [e["value"] for e in processed.get("entities")] == ["A座1803"]


# --- CharNgramIntentBlend: the linear character n-gram model blended with DIET ---------

def _blend_component(tmp_path, **config):
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource

    from bot.nlu.intent_blend import CharNgramIntentBlend
    storage = LocalModelStorage(tmp_path)
    resource = Resource("ngram_blend")
    context = ExecutionContext(GraphSchema({}), "test")
    return CharNgramIntentBlend, storage, resource, context, CharNgramIntentBlend.create(
        {**CharNgramIntentBlend.get_default_config(), **config}, storage, resource, context)


BLEND_TRAINING = {
    "report_repair": ["电梯坏了", "楼道灯不亮", "水管漏水了", "厨房下水道堵了", "门禁坏了打不开", "路灯坏了好几天"],
    "thank": ["谢谢", "多谢了", "谢谢你们", "太感谢了", "辛苦了谢谢", "谢啦"],
    "greet": ["你好", "在吗", "您好", "有人吗", "哈喽", "早上好"],
}


def _tokenised(text: str, intent: str | None = None) -> Message:
    """A message as the blend sees it in the pipeline: after the project's jieba tokenizer."""
    from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer

    message = Message(data={TEXT: text, **({"intent": intent} if intent else {})})
    config = {**JiebaTokenizer.get_default_config(), "dictionary_path": str(PROJECT_ROOT / "project" / "jieba")}
    JiebaTokenizer(config, None, None).process([message])
    return message


def test_blend_learns_from_characters_and_survives_persisting(tmp_path):
    cls, storage, resource, context, component = _blend_component(tmp_path)
    examples = [_tokenised(text, intent) for intent, texts in BLEND_TRAINING.items() for text in texts]
    component.train(TrainingData(examples))
    # No DIET ranking on the message: the linear model answers alone. 电灯坏啦 was never
    # seen, but shares characters with the repairs.
    unseen = [_tokenised("电灯坏啦"), _tokenised("谢谢啦"), _tokenised("在不在")]
    component.process(unseen)
    assert [m.get("intent")["name"] for m in unseen] == ["report_repair", "thank", "greet"]

    loaded = cls.load(component.config, storage, resource, context)
    before = component.probabilities([_tokenised("电梯又坏了")])
    after = loaded.probabilities([_tokenised("电梯又坏了")])
    assert loaded.classes == component.classes and abs(before - after).max() < 1e-12
    # Plain JSON and NumPy arrays: nothing executable is stored with the model.
    with storage.read_from(resource) as directory:
        assert sorted(p.name for p in directory.iterdir()) == ["ngram_intent.json", "ngram_intent.npz"]


def test_blend_scores_each_message_exactly_as_the_fitted_sparse_features_do(tmp_path):
    """probabilities() counts a message's own n-grams (TfidfSpace.vector) instead of sklearn's
    vectorizers; it must give the numbers the logistic regression was fitted on."""
    import numpy as np

    _, _, _, _, component = _blend_component(tmp_path)
    examples = [_tokenised(text, intent) for intent, texts in BLEND_TRAINING.items() for text in texts]
    component.train(TrainingData(examples))
    texts = ["电梯又坏了", "谢谢  谢谢   谢谢", "hello 在吗？？", "3栋2单元501 灯不亮", "電燈壞啦", "完全没见过的句子", " ", "修"]
    messages = [_tokenised(text) for text in texts]
    scores = component._features(messages) @ component.coef.T + component.intercept
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert abs(component.probabilities(messages) - expected).max() < 1e-12
    for space, document in [(component.spaces[0], "谢谢  谢谢   谢谢"), (component.spaces[1], "电梯 又 坏 了")]:
        columns, values = space.vector(document)
        row = space.transform([document]).toarray()[0]
        assert sorted(columns.tolist()) == np.flatnonzero(row).tolist()
        assert abs(row[columns] - values).max() < 1e-12


def test_blend_averages_with_diets_ranking_by_weight(tmp_path):
    cls, storage, resource, context, component = _blend_component(tmp_path, blend_weight=0.25)
    component.train(TrainingData([_tokenised(t, i) for i, ts in BLEND_TRAINING.items() for t in ts]))
    message = _tokenised("谢谢")
    own = dict(zip(component.classes, component.probabilities([message])[0].tolist()))
    # DIET (wrongly) sure it is a greeting, and knowing an intent the linear model lacks.
    diet = [{"name": "greet", "confidence": 0.7}, {"name": "affirm", "confidence": 0.3}]
    message.set("intent", {"name": "greet", "confidence": 0.7})
    message.set("intent_ranking", diet)
    component.process([message])
    ranking = {row["name"]: row["confidence"] for row in message.get("intent_ranking")}
    assert abs(ranking["greet"] - (0.25 * own["greet"] + 0.75 * 0.7)) < 1e-9
    assert abs(ranking["thank"] - 0.25 * own["thank"]) < 1e-9
    assert abs(ranking["affirm"] - 0.75 * 0.3) < 1e-9
    assert message.get("intent") == {"name": max(ranking, key=ranking.get), "confidence": max(ranking.values())}
    assert abs(sum(ranking.values()) - 1.0) < 1e-9


def test_untrained_blend_passes_diets_answer_through(tmp_path):
    cls, storage, resource, context, component = _blend_component(tmp_path)
    component.train(TrainingData([_tokenised("谢谢", "thank")]))  # one intent: nothing to learn
    loaded = cls.load(component.config, storage, resource, context)
    message = _tokenised("谢谢")
    message.set("intent", {"name": "thank", "confidence": 0.9})
    loaded.process([message])
    assert message.get("intent") == {"name": "thank", "confidence": 0.9}
