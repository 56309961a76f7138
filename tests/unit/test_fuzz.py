"""Generated input against the parsers that read what strangers send: the WeChat push
parser, and the room, phone, binding, correction and survey-answer readers. They may refuse
(ProtocolError) or find nothing; they never raise anything else, and the gateway never
answers 5xx."""
from __future__ import annotations

import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cases.residents import mentions_binding
from bot.cases.surveys import parse_answer
from bot.channels.wechat.protocol import ProtocolError, WeChatCredentials, read_push, sign
from bot.core.phones import normalise_phone
from bot.core.privacy import redact_text
from bot.core.rooms import corrected_room, normalise_room
from tests.unit.test_wechat_gateway import Gateway
from tests.unit.test_wechat_gateway import gateway as gateway  # the fixture, re-exported for this module
from tests.wechat_fakes import AES_KEY, APP_ID, TOKEN, text_xml

CREDS = {mode: WeChatCredentials(TOKEN, APP_ID, AES_KEY if mode == "safe" else "") for mode in ("safe", "plain")}
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text residents might send: Chinese, digits, building words, punctuation, control characters.
resident_text = st.text(alphabet=st.sampled_from(list("0123456789栋幢号楼单元室层座区一二三四五六七八九十零两"
                                                     "-—/#、，。 abcABC\n\t\x00\u3000") + ["🙂", "樓", "單"]),
                        max_size=60) | st.text(max_size=60)


def signed_query(nonce: str = "fuzz") -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"timestamp": stamp, "nonce": nonce, "signature": sign(TOKEN, stamp, nonce)}


@FUZZ
@given(body=st.binary(max_size=2048), safe=st.booleans(), encrypted=st.booleans())
def test_the_push_parser_only_ever_refuses(body: bytes, safe: bool, encrypted: bool):
    query = signed_query()
    if encrypted:
        query.update(encrypt_type="aes", msg_signature="0" * 40)
    try:
        read_push(body, query, CREDS["safe" if safe else "plain"])
    except ProtocolError as error:
        assert 400 <= error.status < 500


xml_fragments = st.sampled_from(["<xml>", "</xml>", "<ToUserName>gh</ToUserName>", "<FromUserName>oF</FromUserName>",
                                 "<CreateTime>1</CreateTime>", "<MsgType>text</MsgType>", "<MsgType>event</MsgType>",
                                 "<Event>subscribe</Event>", "<Content>报修</Content>", "<MsgId>x</MsgId>",
                                 "<![CDATA[", "]]>", "&amp;", "&#0;", "<!--", "<?xml version='1.0'?>", "<a b='1'>"])


@FUZZ
@given(parts=st.lists(xml_fragments | st.text(max_size=8), max_size=30))
def test_xml_shaped_garbage_is_refused_or_read(parts: list[str]):
    try:
        read_push("".join(parts).encode("utf-8"), signed_query(), CREDS["plain"])
    except ProtocolError as error:
        assert 400 <= error.status < 500


@FUZZ
@given(text=resident_text, previous=st.none() | st.sampled_from(["3栋2单元501", "7栋1202"]))
def test_the_text_readers_never_raise(text: str, previous: str | None):
    room = normalise_room(text)
    assert room is None or isinstance(room, str)
    normalise_phone(text)
    mentions_binding(text)
    corrected_room(text, previous)
    assert isinstance(redact_text(text), str)
    answer = parse_answer(text, ["response", "attitude", "quality"], 2)
    assert all(1 <= score <= 5 for score in answer.scores.values())


async def test_the_gateway_never_answers_5xx_to_mutated_pushes(gateway: Gateway):
    # Real pushes, then mutated: bytes flipped, cut, duplicated; each signed afresh.
    rng = random.Random(20261201)
    seeds = [text_xml(f"oFuzz{i}", text).encode("utf-8") for i, text in enumerate(["我要报修", "3栋2单元501", "你好"])]
    statuses = []
    for attempt in range(300):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(body))
            action = rng.random()
            if action < 0.4:
                body[at] = rng.randrange(256)
            elif action < 0.7:
                del body[at:at + rng.randint(1, 20)]
            else:
                body[at:at] = body[at:at + rng.randint(1, 40)]
        query = signed_query(f"fuzz{attempt}")
        async with gateway.http.post(f"{gateway.url}/wechat", params=query, data=bytes(body),
                                     headers={"Content-Type": "text/xml"}) as response:
            statuses.append(response.status)
    assert all(status < 500 for status in statuses), sorted(set(statuses))
    assert any(status == 200 for status in statuses) and any(status == 400 for status in statuses)
