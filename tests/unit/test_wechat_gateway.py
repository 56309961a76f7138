"""The WeChat endpoint of the real gateway on loopback, with WeChat's side played by
tests/wechat_fakes.py. Rasa is not needed here: these cases never reach it (or find it
down on purpose)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.app import migrate
from bot.app.access_log import PathOnlyAccessLogger
from bot.app.gateway import create_app
from bot.cases.tickets import open_repair_ticket
from bot.channels.wechat.models import InboundMessage
from bot.channels.wechat.protocol import sign
from bot.db.models import Resident, Ticket
from bot.db.store import TicketStore
from bot.settings import Settings
from tests.live import free_port
from tests.wechat_fakes import (
    AES_KEY,
    APP_ID,
    APP_SECRET,
    TOKEN,
    FakeWeChatApi,
    WeChatServers,
    event_xml,
    image_xml,
    location_xml,
    text_xml,
    video_xml,
    voice_xml,
)


@dataclass
class Gateway:
    url: str
    store: TicketStore
    api: FakeWeChatApi
    http: aiohttp.ClientSession

    def servers(self, safe_mode: bool = False) -> WeChatServers:
        return WeChatServers(self.url, safe_mode=safe_mode)

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until every stored message has been processed (answers go out first)."""
        for _ in range(int(timeout / 0.05)):
            with self.store.transaction() as s:
                if not s.execute(select(func.count()).select_from(InboundMessage)
                                 .where(InboundMessage.status == "received")).scalar_one():
                    return
            await asyncio.sleep(0.05)
        raise TimeoutError("messages still unprocessed")

    def count(self, model) -> int:  # type: ignore[no-untyped-def]
        with self.store.transaction() as s:
            return s.execute(select(func.count()).select_from(model)).scalar_one()


def gateway_settings(database_url: str, api_url: str, rasa_url: str, **overrides) -> Settings:
    values = dict(database_url=database_url, wechat_token=TOKEN, wechat_app_id=APP_ID,
                  wechat_app_secret=APP_SECRET, wechat_encoding_aes_key=AES_KEY, wechat_api_base_url=api_url,
                  rasa_url=rasa_url, action_server_url=rasa_url, passive_reply_budget=1.0, retry_interval=0.2,
                  # One gateway for tests of both modes: compatible mode. The strict default (safe
                  # mode refuses plaintext) has its own tests below.
                  wechat_allow_plaintext=True)
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_gateway(sqlite_url: str, company, **overrides) -> AsyncIterator[Gateway]:  # type: ignore[no-untyped-def]
    """The gateway app of this project registry on loopback with a fake WeChat API; Rasa is down
    unless `rasa_url` is given."""
    migrate.upgrade(sqlite_url)
    api = FakeWeChatApi()
    api_url = await api.start()
    rasa_url = overrides.pop("rasa_url", f"http://127.0.0.1:{free_port()}")  # default: nobody listens
    server = TestServer(create_app(gateway_settings(sqlite_url, api_url, rasa_url, **overrides), company),
                        host="127.0.0.1")
    # The access logger `python -m bot serve` runs with (WeChat's push URLs carry the openid).
    await server.start_server(access_log_class=PathOnlyAccessLogger)
    store = TicketStore(sqlite_url)
    try:
        async with aiohttp.ClientSession() as http:
            yield Gateway(str(server.make_url("")).rstrip("/"), store, api, http)
    finally:
        await server.close()
        await api.close()
        store.dispose()


@pytest.fixture
async def gateway(sqlite_url, company) -> AsyncIterator[Gateway]:
    async with running_gateway(sqlite_url, company) as running:
        yield running


async def test_url_verification_echoes_only_for_a_good_signature(gateway):
    query = {"timestamp": "1700000000", "nonce": "abc", "echostr": "echo-123"}
    good = dict(query, signature=sign(TOKEN, "1700000000", "abc"))
    async with gateway.http.get(f"{gateway.url}/wechat", params=good) as response:
        assert response.status == 200 and await response.text() == "echo-123"
    async with gateway.http.get(f"{gateway.url}/wechat", params=dict(query, signature="f" * 40)) as response:
        assert response.status == 403


@pytest.mark.parametrize("safe_mode", [False, True])
async def test_forged_signatures_are_refused_and_nothing_is_stored(gateway, safe_mode):
    push = await gateway.servers(safe_mode).push(gateway.http, text_xml("oForger", "我要报修"), forge=True)
    assert push.status == 403
    assert gateway.count(InboundMessage) == 0 and gateway.count(Resident) == 0


XXE = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       '<xml><ToUserName>a</ToUserName><FromUserName>oX</FromUserName><CreateTime>1</CreateTime>'
       '<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>')
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
          '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><xml><Content>&lol3;</Content></xml>')


@pytest.mark.parametrize("body", [XXE, LAUGHS, "<xml><Content>unclosed", "not xml at all", "<xml></xml>"])
@pytest.mark.parametrize("safe_mode", [False, True])
async def test_hostile_or_malformed_xml_is_rejected_with_400(gateway, body, safe_mode):
    push = await gateway.servers(safe_mode).push(gateway.http, body)
    assert push.status == 400
    assert gateway.count(InboundMessage) == 0


async def test_oversized_body_is_413(gateway):
    huge = text_xml("oBig", "漏" * 30_000)  # about 90 KB of UTF-8
    push = await gateway.servers().push(gateway.http, huge)
    assert push.status == 413 and gateway.count(InboundMessage) == 0


async def test_non_utf8_body_is_400(gateway):
    xml = text_xml("oGbk", "我要报修")
    push = await gateway.servers().push(gateway.http, xml, raw_body=xml.encode("gbk"))
    assert push.status == 400 and gateway.count(InboundMessage) == 0


@pytest.mark.parametrize("safe_mode", [False, True])
async def test_unknown_message_type_gets_a_friendly_answer(gateway, safe_mode):
    push = await gateway.servers(safe_mode).push(gateway.http, video_xml("oVideo"))
    assert push.status == 200 and "只能看懂文字和图片" in push.reply
    await gateway.settled()
    with gateway.store.transaction() as s:
        row = s.execute(select(InboundMessage)).scalar_one()
        assert (row.msg_type, row.status, row.delivery) == ("video", "answered", "passive")


async def test_subscribe_welcomes_and_asks_to_bind_and_unsubscribe_is_recorded(gateway):
    push = await gateway.servers().push(gateway.http, event_xml("oFollower", "subscribe"))
    assert "欢迎关注" in push.reply and "房号+手机号" in push.reply
    push = await gateway.servers().push(gateway.http, event_xml("oFollower", "unsubscribe"))
    assert push.reply is None and push.body == "success"
    await gateway.settled()
    with gateway.store.transaction() as s:
        resident = s.execute(select(Resident).where(Resident.openid == "oFollower")).scalar_one()
        assert resident.subscribed is False and resident.unsubscribed_at is not None


async def test_duplicate_events_are_stored_once(gateway):
    xml = event_xml("oTwice", "subscribe", create_time=1764000000)
    first = await gateway.servers().push(gateway.http, xml)
    second = await gateway.servers().push(gateway.http, xml)
    assert first.reply and second.reply is None
    assert gateway.count(InboundMessage) == 1


async def test_voice_without_recognition_asks_to_type(gateway):
    push = await gateway.servers().push(gateway.http, voice_xml("oVoice", ""))
    assert "打字" in push.reply


async def test_image_is_attached_to_the_open_ticket_as_evidence(gateway, rules):
    push = await gateway.servers().push(gateway.http, image_xml("oPhoto"))
    assert "照片里是什么情况" in push.reply
    with gateway.store.transaction() as s:
        ticket = open_repair_ticket(s, rules, openid="oPhoto", description="天花板渗水", room="3栋2单元501",
                                    visit_time=None, channel="wechat")
        number = ticket.number
    push = await gateway.servers(safe_mode=True).push(gateway.http, image_xml("oPhoto", "http://pic/2.jpg"))
    assert number in push.reply
    await gateway.settled()
    with gateway.store.transaction() as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert [(e.action, e.content) for e in ticket.events][-1] == ("evidence", "http://pic/2.jpg")


async def test_location_is_acknowledged(gateway):
    push = await gateway.servers().push(gateway.http, location_xml("oWhere", "示例小区东门"))
    assert "示例小区东门" in push.reply


async def test_assistant_down_gets_a_polite_receipt_and_the_message_waits(gateway):
    push = await gateway.servers().push(gateway.http, text_xml("oPatient", "我家厨房漏水了"))
    assert "已经收到" in push.reply
    await gateway.settled()
    with gateway.store.transaction() as s:
        row = s.execute(select(InboundMessage)).scalar_one()
        assert (row.status, row.content) == ("waiting", "我家厨房漏水了")


async def test_menu_enquiry_click_lists_topics(gateway):
    push = await gateway.servers().push(gateway.http, event_xml("oMenu", "CLICK", "MENU_ENQUIRY"))
    assert "物业费怎么交" in push.reply


@pytest.mark.parametrize("room_phone,expected", [
    ("3栋2单元501 13812345678", "绑定成功"),
    ("3栋2单元501 13900000000", "对不上"),  # a wrong phone and an unknown room get the same words
    ("9栋9单元909 13812345678", "对不上"),
])
async def test_binding_against_the_roster(gateway, rules, tmp_path, room_phone, expected):
    from bot.cases.residents import import_roster
    roster = tmp_path / "roster.csv"
    roster.write_text("room,name,phone,tags\n3-2-501,王小明,13812345678,独居老人\n", encoding="utf-8")
    with gateway.store.transaction() as s:
        assert import_roster(s, roster, projects={rules.code}, default_project=rules.code) == (1, 0)
    push = await gateway.servers().push(gateway.http, text_xml("oBinder", room_phone))
    assert expected in push.reply
    await gateway.settled()
    with gateway.store.transaction() as s:
        resident = s.execute(select(Resident).where(Resident.openid == "oBinder")).scalar_one()
        if expected == "绑定成功":
            assert resident.room == "3栋2单元501" and resident.bound_at is not None
            assert resident.tags == ["living_alone_elderly"]
        else:
            assert resident.bound_at is None and resident.room is None
            follow_up = s.execute(select(Ticket).where(Ticket.kind == "enquiry")).scalar_one()
            assert follow_up.number in push.reply and "13812345678" not in follow_up.description


async def test_messages_and_photos_of_a_held_case_go_to_the_staff_member(gateway, rules):
    """Live relay at the gateway: no call to the (here unreachable) assistant, no automatic answer."""
    from bot.cases import handoff
    from bot.cases.tickets import request_human
    from bot.db.models import StaffOutbox
    with gateway.store.transaction() as s:
        number = request_human(s, rules, openid="oHeld1", context="转人工", channel="wechat").number
        handoff.claim(s, rules, number, handoff.Staff("tg:1001", "王磊"), channel="telegram")
    assert (await gateway.servers().push(gateway.http, text_xml("oHeld1", "我家电话13812345678"))).reply is None
    assert (await gateway.servers().push(gateway.http, image_xml("oHeld1", "http://pic/leak.jpg"))).reply is None
    with gateway.store.transaction() as s:
        relayed = [r.text for r in s.execute(select(StaffOutbox).order_by(StaffOutbox.id)).scalars()]
    assert relayed == [f"【{number}】居民：我家电话138****5678", f"【{number}】居民发来一张图片：http://pic/leak.jpg"]
    # 结束人工 hands the resident back to the assistant, with an answer.
    assert "智能助手" in (await gateway.servers().push(gateway.http, text_xml("oHeld1", "结束人工"))).reply


async def test_msg_signature_is_checked_in_constant_time_before_anything_is_decrypted(gateway, monkeypatch):
    from wechatpy.crypto import WeChatCrypto

    def must_not_run(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("decrypted a push whose msg_signature was not verified")

    monkeypatch.setattr(WeChatCrypto, "decrypt_message", must_not_run)
    push = await gateway.servers(safe_mode=True).push(gateway.http, text_xml("oForger2", "我要报修"), forge=True)
    assert (push.status, push.body) == (403, "bad msg_signature")
    assert gateway.count(InboundMessage) == 0


async def test_logs_carry_no_openid_even_inside_dedupe_keys(gateway, caplog):
    xml = event_xml("oSecretOpenid123456", "subscribe", create_time=1764000001)
    with caplog.at_level(logging.INFO):
        await gateway.servers().push(gateway.http, xml)
        await gateway.servers().push(gateway.http, xml)  # a redelivery: logged with its key
    assert any("redelivery of" in r.getMessage() for r in caplog.records)
    assert all("oSecretOpenid123456" not in r.getMessage() for r in caplog.records)


@pytest.fixture
async def strict_gateway(sqlite_url, company) -> AsyncIterator[Gateway]:
    """A safe-mode account as production runs it: EncodingAESKey set, compatible mode off."""
    async with running_gateway(sqlite_url, company, wechat_allow_plaintext=False) as running:
        yield running


async def test_a_safe_mode_account_refuses_plaintext_pushes(strict_gateway):
    # A plaintext signature covers token, timestamp and nonce only: it would let anyone post any body.
    push = await strict_gateway.servers(safe_mode=False).push(strict_gateway.http, text_xml("oSpoof", "查询进度"))
    assert (push.status, push.body) == (403, "plaintext push refused: this account is in safe mode")
    assert strict_gateway.count(InboundMessage) == 0
    safe = await strict_gateway.servers(safe_mode=True).push(strict_gateway.http, event_xml("oReal", "subscribe"))
    assert safe.status == 200 and safe.reply  # and the answer goes back encrypted (read_reply decrypted it)


async def test_a_plaintext_account_without_a_key_takes_plaintext(sqlite_url, company):
    migrate.upgrade(sqlite_url)
    settings = gateway_settings(sqlite_url, "http://127.0.0.1:9", "http://127.0.0.1:9", wechat_encoding_aes_key="",
                                wechat_allow_plaintext=False)
    server = TestServer(create_app(settings, company), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        push = await WeChatServers(str(server.make_url(""))).push(http, event_xml("oPlain", "subscribe"))
    await server.close()
    assert push.status == 200 and push.reply


@pytest.mark.parametrize("safe_mode", [False, True])
@pytest.mark.parametrize("offset", [-301, 301])
async def test_a_timestamp_outside_five_minutes_is_refused(gateway, safe_mode, offset):
    servers = gateway.servers(safe_mode)
    query, body = servers.signed(text_xml("oLate", "我要报修"), timestamp=int(time.time()) + offset)
    push = await servers.post(gateway.http, query, body)
    assert (push.status, push.body) == (403, "timestamp outside the allowed window")
    assert gateway.count(InboundMessage) == 0


async def test_a_signed_query_carries_one_body_only(gateway):
    servers = gateway.servers(safe_mode=False)
    query, body = servers.signed(text_xml("oVictim", "你好"))
    assert (await servers.post(gateway.http, query, body)).status == 200
    # The same signed query string with another body (another sender): refused, nothing stored.
    _, forged = servers.signed(text_xml("oAttacker", "查询进度"))
    replayed = await servers.post(gateway.http, query, forged)
    assert (replayed.status, replayed.body) == (403, "nonce already used with another body")
    # WeChat's own redelivery (the very same request) is let through and answered once.
    again = await servers.post(gateway.http, query, body)
    assert again.status == 200 and again.reply is None
    await gateway.settled()
    with gateway.store.transaction() as s:
        assert [m.openid for m in s.execute(select(InboundMessage)).scalars()] == ["oVictim"]


async def test_every_gateway_replica_remembers_the_nonces(gateway, company, sqlite_url):
    # A second gateway on the same store: what one has seen, the other refuses.
    second = TestServer(create_app(gateway_settings(sqlite_url, "http://127.0.0.1:9", "http://127.0.0.1:9"), company),
                        host="127.0.0.1")
    await second.start_server()
    try:
        first_servers = gateway.servers()
        query, body = first_servers.signed(event_xml("oReplica", "subscribe"))
        assert (await first_servers.post(gateway.http, query, body)).status == 200
        _, other = first_servers.signed(event_xml("oIntruder", "subscribe"))
        push = await WeChatServers(str(second.make_url(""))).post(gateway.http, query, other)
        assert push.status == 403
    finally:
        await second.close()


async def test_a_compressed_body_that_inflates_past_the_limit_is_refused(gateway):
    import gzip

    bomb = gzip.compress(b"<xml><Content>" + b"A" * (20 * 1024 * 1024) + b"</Content></xml>")
    assert len(bomb) < 64 * 1024  # small on the wire, 20 MiB inflated
    query, _ = gateway.servers().signed(text_xml("oBomb", "x"))
    async with gateway.http.post(f"{gateway.url}/wechat", params=query, data=bomb,
                                 headers={"Content-Type": "text/xml", "Content-Encoding": "gzip"}) as response:
        assert response.status == 413
    assert gateway.count(InboundMessage) == 0


async def test_a_body_that_never_arrives_is_cut_off(gateway, monkeypatch):
    from bot.channels.wechat import routes

    monkeypatch.setattr(routes, "BODY_READ_TIMEOUT", 0.5)
    query, body = gateway.servers().signed(text_xml("oSlow", "我要报修"))
    host, port = gateway.url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path = "/wechat?" + "&".join(f"{k}={v}" for k, v in query.items())
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])  # then nothing more
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert b" 408 " in status_line
    assert gateway.count(InboundMessage) == 0


async def test_a_malformed_field_is_refused_not_a_crash(gateway):
    # Found by tests/unit/test_fuzz.py: wechatpy converts MsgId only when it is read.
    xml = text_xml("oOdd", "我要报修").replace("<MsgId>", "<MsgId>12z")
    push = await gateway.servers().push(gateway.http, xml)
    assert (push.status, push.body) == (400, "malformed field id")
    assert gateway.count(InboundMessage) == 0
