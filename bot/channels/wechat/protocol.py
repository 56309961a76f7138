"""WeChat's message push protocol: signatures, safe XML, AES (safe/compatible mode), replies.

Hostile XML never reaches wechatpy's parser: every document is first read with
defusedxml, which refuses DTDs and entities (XXE, billion laughs).
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Mapping

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.messages import BaseMessage
from wechatpy.replies import TextReply

MAX_BODY_BYTES = 64 * 1024
# WeChat rejects passive replies over 2,048 bytes of content.
PASSIVE_REPLY_LIMIT = 2048


class ProtocolError(Exception):
    """A request that must be refused; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_plain_signature(token: str, query: Mapping[str, str]) -> None:
    signature = query.get("signature", "")
    expected = sign(token, query.get("timestamp", ""), query.get("nonce", ""))
    if not token or not hmac.compare_digest(signature.encode(), expected.encode()):
        raise ProtocolError(403, "bad signature")


def check_msg_signature(token: str, query: Mapping[str, str], body: bytes) -> None:
    """Safe mode: the signature over token, timestamp, nonce and the encrypted body, compared in
    constant time before anything is decrypted (wechatpy's own check uses `!=`)."""
    try:
        encrypt = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True).findtext("Encrypt")
    except (DefusedXmlException, ParseError, ValueError) as exc:
        raise ProtocolError(400, "malformed XML") from exc
    if not encrypt:
        raise ProtocolError(400, "encrypted push without <Encrypt>")
    expected = sign(token, query.get("timestamp", ""), query.get("nonce", ""), encrypt)
    if not hmac.compare_digest(query.get("msg_signature", "").encode(), expected.encode()):
        raise ProtocolError(403, "bad msg_signature")


def check_safe_xml(body: bytes) -> None:
    try:
        fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ProtocolError(400, f"forbidden XML construct: {exc.__class__.__name__}") from exc
    except (ParseError, ValueError) as exc:
        raise ProtocolError(400, "malformed XML") from exc


def decode_utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(400, "body is not UTF-8") from exc


@dataclass(frozen=True)
class WeChatCredentials:
    token: str
    app_id: str
    encoding_aes_key: str
    # With an EncodingAESKey the account is in safe mode and plaintext pushes are refused;
    # WeChat's compatible mode (both at once) is allowed only during a migration.
    allow_plaintext: bool = False
    # Pushes whose timestamp is further than this from now are refused (replays, forged clocks).
    max_skew_seconds: int = 300

    def crypto(self) -> WeChatCrypto:
        return WeChatCrypto(self.token, self.encoding_aes_key, self.app_id)


@dataclass(frozen=True)
class InboundRequest:
    message: BaseMessage
    encrypted: bool
    raw: dict


def check_timestamp(query: Mapping[str, str], creds: WeChatCredentials, now: float) -> None:
    try:
        timestamp = int(query.get("timestamp", ""))
    except ValueError as exc:
        raise ProtocolError(400, "bad timestamp") from exc
    if abs(now - timestamp) > creds.max_skew_seconds:
        raise ProtocolError(403, "timestamp outside the allowed window")


def read_push(body: bytes, query: Mapping[str, str], creds: WeChatCredentials,
              now: float | None = None) -> InboundRequest:
    """Verify, decrypt if needed and parse one push from WeChat's servers.

    The mode is the account's, not the request's: with an EncodingAESKey configured only
    safe-mode pushes (encrypt_type=aes and a valid msg_signature) are taken.
    """
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(413, "body too large")
    check_plain_signature(creds.token, query)
    check_timestamp(query, creds, time.time() if now is None else now)
    decode_utf8(body)
    check_safe_xml(body)
    encrypted = query.get("encrypt_type", "raw").lower() == "aes"
    if creds.encoding_aes_key and not encrypted and not creds.allow_plaintext:
        raise ProtocolError(403, "plaintext push refused: this account is in safe mode")
    xml = body
    if encrypted:
        if not creds.encoding_aes_key:
            raise ProtocolError(400, "encrypted push but no EncodingAESKey configured")
        check_msg_signature(creds.token, query, body)
        try:
            decrypted = creds.crypto().decrypt_message(
                body.decode("utf-8"), query.get("msg_signature", ""), query.get("timestamp", ""),
                query.get("nonce", ""))
        except InvalidSignatureException as exc:
            raise ProtocolError(403, "bad msg_signature") from exc
        except Exception as exc:  # noqa: BLE001 - any decryption failure is a refusal
            raise ProtocolError(400, f"cannot decrypt: {exc.__class__.__name__}") from exc
        xml = decrypted.encode("utf-8") if isinstance(decrypted, str) else decrypted
        check_safe_xml(xml)
    try:
        message = parse_message(xml.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - wechatpy raises KeyError & co on odd documents
        raise ProtocolError(400, f"not a WeChat message: {exc.__class__.__name__}") from exc
    if message is None or not getattr(message, "source", None):
        raise ProtocolError(400, "message without sender")
    # wechatpy converts fields (MsgId, CreateTime, coordinates) only when read: read them all
    # now, so that a malformed value is a refusal here rather than a crash later.
    for name in getattr(type(message), "_fields", {}):
        try:
            getattr(message, name)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ProtocolError(400, f"malformed field {name}") from exc
    return InboundRequest(message=message, encrypted=encrypted, raw=dict(message._data))


def verify_url(query: Mapping[str, str], creds: WeChatCredentials) -> str:
    """GET URL verification: echo `echostr` when the signature is right."""
    check_plain_signature(creds.token, query)
    return query.get("echostr", "")


def render_text_reply(message: BaseMessage, text: str, creds: WeChatCredentials, encrypted: bool,
                      nonce: str) -> str:
    reply = TextReply(content=text, message=message).render()
    if not encrypted:
        return reply
    return creds.crypto().encrypt_message(reply, nonce, str(int(time.time())))


def split_for_wechat(text: str, limit: int = PASSIVE_REPLY_LIMIT) -> list[str]:
    """Split on line breaks where possible so every part fits `limit` UTF-8 bytes."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode("utf-8")) > limit:  # one enormous line: cut by characters
            cut = len(line)
            while len(line[:cut].encode("utf-8")) > limit:
                cut = cut * limit // len(line[:cut].encode("utf-8")) or cut - 1
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:cut])
            line = line[cut:]
        if len((current + line).encode("utf-8")) > limit:
            parts.append(current)
            current = line
        else:
            current += line
    if current:
        parts.append(current)
    return [part.rstrip("\n") for part in parts if part.strip()]
