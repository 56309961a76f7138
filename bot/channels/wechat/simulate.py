"""Build pushes exactly as WeChat's servers do: XML, signature, AES envelope.

Used by the development simulator (a browser chat against the real pipeline) and by
the tests that play WeChat's servers.
"""
from __future__ import annotations

import itertools
import re
import time
from typing import Mapping

from wechatpy.crypto import WeChatCrypto

from bot.channels.wechat.protocol import sign

ACCOUNT = "gh_property_account"
_ids = itertools.count(int(time.time() * 1000))
_FROM_USER = re.compile(r"<FromUserName><!\[CDATA\[([^\]<]*)\]\]></FromUserName>")


def new_msg_id() -> int:
    return next(_ids)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _envelope(openid: str, msg_type: str, fields: str, create_time: int | None, msg_id: int | None,
              with_id: bool = True) -> str:
    ident = f"<MsgId>{msg_id or new_msg_id()}</MsgId>" if with_id else ""
    return (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType>{_cdata(msg_type)}</MsgType>"
            f"{fields}{ident}</xml>")


def text_xml(openid: str, content: str, msg_id: int | None = None, create_time: int | None = None) -> str:
    return _envelope(openid, "text", f"<Content>{_cdata(content)}</Content>", create_time, msg_id)


def voice_xml(openid: str, recognition: str, msg_id: int | None = None) -> str:
    fields = (f"<MediaId>{_cdata('media-voice')}</MediaId><Format>{_cdata('amr')}</Format>"
              f"<Recognition>{_cdata(recognition)}</Recognition>")
    return _envelope(openid, "voice", fields, None, msg_id)


def image_xml(openid: str, pic_url: str = "http://mmbiz.example/pic.jpg") -> str:
    fields = f"<PicUrl>{_cdata(pic_url)}</PicUrl><MediaId>{_cdata('media-image')}</MediaId>"
    return _envelope(openid, "image", fields, None, None)


def location_xml(openid: str, label: str) -> str:
    fields = (f"<Location_X>31.23</Location_X><Location_Y>121.47</Location_Y><Scale>15</Scale>"
              f"<Label>{_cdata(label)}</Label>")
    return _envelope(openid, "location", fields, None, None)


def video_xml(openid: str) -> str:
    fields = f"<MediaId>{_cdata('m')}</MediaId><ThumbMediaId>{_cdata('t')}</ThumbMediaId>"
    return _envelope(openid, "video", fields, None, None)


def event_xml(openid: str, event: str, key: str = "", create_time: int | None = None) -> str:
    fields = f"<Event>{_cdata(event)}</Event><EventKey>{_cdata(key)}</EventKey>"
    return _envelope(openid, "event", fields, create_time, None, with_id=False)


def signed_push(xml: str, *, token: str, app_id: str, aes_key: str, safe_mode: bool,
                forge: bool = False, timestamp: int | None = None,
                nonce: str | None = None) -> tuple[dict[str, str], bytes]:
    """Query string and body of a push, signed (and encrypted in safe mode) like WeChat's, which
    also names the sender in the query (`openid`, outside the signature): HAProxy routes on it."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or f"n{new_msg_id()}"
    query = {"timestamp": stamp, "nonce": nonce, "signature": sign(token, stamp, nonce)}
    sender = _FROM_USER.search(xml)
    if sender:
        query["openid"] = sender.group(1)
    body = xml.encode("utf-8")
    if safe_mode:
        envelope = WeChatCrypto(token, aes_key, app_id).encrypt_message(xml, nonce, stamp)
        encrypt = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        query.update(encrypt_type="aes", msg_signature=sign(token, stamp, nonce, encrypt))
        body = f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><Encrypt>{_cdata(encrypt)}</Encrypt></xml>".encode()
    if forge:
        query["msg_signature" if safe_mode else "signature"] = "0" * 40
    return query, body


def read_reply(body: str, query: Mapping[str, str], *, token: str, app_id: str, aes_key: str,
               safe_mode: bool) -> str | None:
    """The text of a passive reply (decrypted in safe mode); None for `success`."""
    if body == "success" or not body:
        return None
    if safe_mode:
        signature = body.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
        timestamp = body.split("<TimeStamp>")[1].split("</TimeStamp>")[0]
        body = WeChatCrypto(token, aes_key, app_id).decrypt_message(body, signature, timestamp, query["nonce"])
    return body.split("<Content><![CDATA[")[1].split("]]></Content>")[0]


__all__ = ["event_xml", "image_xml", "location_xml", "new_msg_id", "read_reply", "signed_push",
           "text_xml", "video_xml", "voice_xml"]
