"""From a verified WeChat push to an answer, within WeChat's 5-second window.

Every push is stored first (inbound log). The answer is produced by a task that runs
to completion regardless of the HTTP request: if it is ready within the passive-reply
budget it goes back in the HTTP response, otherwise it is pushed as a customer-service
message. Redeliveries of a message in flight wait for the same answer; exactly one of
them (or the push) delivers it.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from wechatpy.messages import BaseMessage

from bot.cases.routing import Disposition, MessageKind, MessageRouter, ResidentMessage, menu_utterance
from bot.channels.wechat import inbound
from bot.channels.wechat.api import CUSTOMER_SERVICE_WINDOW, OUT_OF_WINDOW, WeChatApi, WeChatApiError
from bot.channels.wechat.models import InboundStatus
from bot.channels.wechat.protocol import split_for_wechat
from bot.core import metrics as deliveries
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.metrics import NO_METRICS, Metrics
from bot.core.privacy import mask_openid
from bot.db.store import TicketStore

log = logging.getLogger(__name__)

CHANNEL = "wechat"
# Menu CLICK keys (configured in the official account's menu) and the menu commands they stand for.
MENU_COMMANDS = {"MENU_REPAIR": "repair", "MENU_COMPLAINT": "complaint", "MENU_MY_TICKETS": "my_tickets",
                 "MENU_ENQUIRY": "enquiry"}
KINDS = {"text": MessageKind.TEXT, "voice": MessageKind.VOICE, "image": MessageKind.IMAGE,
         "location": MessageKind.LOCATION}
STATUS_OF = {Disposition.ANSWERED: InboundStatus.ANSWERED, Disposition.WAITING: InboundStatus.WAITING,
             Disposition.IGNORED: InboundStatus.IGNORED, Disposition.THROTTLED: InboundStatus.THROTTLED}


@dataclass
class Pending:
    inbound_id: int
    openid: str
    arrived: float  # the event loop's clock when the push reached the endpoint
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    answer: str | None = None
    waiters: int = 0
    claimed: bool = False


@dataclass(frozen=True)
class Turn:
    """What one push says, reduced to what we act on."""

    dedupe_key: str
    openid: str
    msg_type: str
    event: str | None
    content: str
    media: dict[str, Any] | None


def describe(message: BaseMessage) -> Turn:
    openid = message.source
    msg_type = message.type
    event = getattr(message, "event", None) if msg_type == "event" else None
    media = None
    content = ""
    if msg_type == "text":
        content = message.content or ""
    elif msg_type == "voice":
        content = (message.recognition or "").strip()
        media = {"media_id": message.media_id, "format": message.format}
    elif msg_type == "image":
        media = {"pic_url": message.image, "media_id": message.media_id}
    elif msg_type == "location":
        content = message.label or ""
        media = {"x": message.location_x, "y": message.location_y, "scale": message.scale}
    elif msg_type == "event":
        # A menu click's key, or a QR code's scene (wechatpy strips subscribe's "qrscene_" prefix).
        content = str(getattr(message, "key", "") or getattr(message, "scene_id", "") or "")
    if msg_type == "event" or not message.id:
        # Events carry no MsgId: sender, time and what happened (two codes scanned within one
        # second are two events; one event delivered twice is one).
        key = f"{openid}:{message._data.get('CreateTime', '')}:{event or msg_type}" + (f":{content}" if content else "")
    else:
        key = f"msgid:{message.id}"
    return Turn(key[:160], openid, msg_type, event, content, media)


def loggable_key(turn: Turn) -> str:
    """The dedupe key with the openid in it masked (event keys start with the sender's openid)."""
    return turn.dedupe_key.replace(turn.openid, mask_openid(turn.openid)) if turn.openid else turn.dedupe_key


def resident_message(turn: Turn) -> ResidentMessage | None:
    """The channel-neutral message for the router; None for pushes nobody answers (other events)."""
    if turn.msg_type == "event":
        # subscribe_scan / scan: a project's parametric QR code, followed or scanned again.
        kinds = {"subscribe": MessageKind.SUBSCRIBE, "subscribe_scan": MessageKind.SUBSCRIBE,
                 "scan": MessageKind.SCAN, "unsubscribe": MessageKind.UNSUBSCRIBE, "click": MessageKind.MENU}
        kind = kinds.get(turn.event or "")
        if kind is None:
            return None
        text = MENU_COMMANDS.get(turn.content, turn.content) if kind is MessageKind.MENU else ""
        scene = turn.content if turn.event in ("subscribe_scan", "scan") else ""
        return ResidentMessage(turn.openid, kind, CHANNEL, text=text, dedupe_key=turn.dedupe_key, scene=scene)
    media = turn.media or {}
    return ResidentMessage(turn.openid, KINDS.get(turn.msg_type, MessageKind.OTHER), CHANNEL, text=turn.content,
                           picture_url=str(media.get("pic_url") or ""), media_id=str(media.get("media_id") or ""),
                           dedupe_key=turn.dedupe_key)


class ConversationService:
    def __init__(self, store: TicketStore, router: MessageRouter, api: WeChatApi, passive_budget: float,
                 metrics: Metrics = NO_METRICS) -> None:
        self.store = store
        self.metrics = metrics
        self.router = router
        self.api = api
        self.passive_budget = passive_budget
        self.inflight: dict[str, Pending] = {}
        self._tasks: set[asyncio.Task] = set()

    # --- request side -------------------------------------------------------

    async def handle(self, message: BaseMessage, arrived: float | None = None) -> str | None:
        """The passive reply for this push, or None to answer `success`. `arrived`: the event
        loop's time when the push reached the endpoint (now, if not given)."""
        arrived = asyncio.get_running_loop().time() if arrived is None else arrived
        turn = describe(message)
        pending = self.inflight.get(turn.dedupe_key)
        if pending is not None:
            log.info("redelivery of %s from %s (in flight, waiting for its answer)", loggable_key(turn),
                     mask_openid(turn.openid))
            return await self._await_answer(pending)
        routed_message = resident_message(turn)
        # Over the resident's limit: stored as throttled in one write, nothing else done.
        throttled = await self.router.admit(routed_message) if routed_message else None
        stored = await asyncio.to_thread(
            inbound.record_inbound, self.store, dedupe_key=turn.dedupe_key, openid=turn.openid,
            msg_type=turn.msg_type, event=turn.event, content=turn.content, media=turn.media,
            status=InboundStatus.THROTTLED if throttled else InboundStatus.RECEIVED,
            reply=throttled.answer if throttled else None)
        if not stored.created:
            pending = self.inflight.get(turn.dedupe_key)
            log.info("redelivery of %s from %s (%s)", loggable_key(turn), mask_openid(turn.openid),
                     "in flight, waiting for its answer" if pending else "already handled")
            return await self._await_answer(pending) if pending else None
        if throttled:
            if not throttled.answer:
                return None
            self._answered(deliveries.PASSIVE, arrived)
            return split_for_wechat(throttled.answer)[0]
        pending = Pending(stored.id, turn.openid, arrived)
        self.inflight[turn.dedupe_key] = pending
        task = asyncio.create_task(self._process(turn, pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await self._await_answer(pending)

    async def _await_answer(self, pending: Pending) -> str | None:
        pending.waiters += 1
        try:
            await asyncio.wait_for(pending.ready.wait(), self.passive_budget)
        except asyncio.TimeoutError:
            pass
        finally:
            pending.waiters -= 1
        try:
            if pending.answer is not None and not pending.claimed:
                pending.claimed = True
                self._answered(deliveries.PASSIVE, pending.arrived)
                return split_for_wechat(pending.answer)[0]
            return None
        finally:
            pending.released.set()

    # --- processing side ----------------------------------------------------

    async def _process(self, turn: Turn, pending: Pending) -> None:
        status = InboundStatus.ANSWERED
        error = None
        # One message of a resident at a time, from the assistant's answer until it has gone
        # out: the next waits its turn, so answers arrive in the order the messages were sent.
        async with self.router.guard.turn(turn.openid):
            try:
                answer, status = await self._answer(turn, pending.inbound_id)
            except Exception as exc:  # noqa: BLE001 - a resident always gets an answer
                log.exception("processing %s failed", loggable_key(turn))
                answer, status, error = replies.received_will_answer_later(), InboundStatus.WAITING, repr(exc)
            delivery = await self._deliver(pending, answer)
        await asyncio.to_thread(inbound.finish_inbound, self.store, pending.inbound_id, status=status,
                                reply=answer, delivery=delivery, error=error)
        # Keep the entry a little so a late redelivery still finds the shared answer.
        asyncio.get_running_loop().call_later(30, self.inflight.pop, turn.dedupe_key, None)

    async def _deliver(self, pending: Pending, answer: str | None) -> str:
        pending.answer = answer
        if answer is None:
            pending.claimed = True
        pending.ready.set()
        await asyncio.sleep(0)  # let waiting requests take it
        while not pending.claimed and pending.waiters > 0:
            pending.released.clear()
            await pending.released.wait()
        if answer is None:
            return "none"
        parts = split_for_wechat(answer)
        if pending.claimed:
            await self._push(pending.openid, parts[1:], pending.inbound_id)
            return "passive"
        pending.claimed = True
        self.metrics.reply_deferred()
        if await self._push(pending.openid, parts, pending.inbound_id):
            self._answered(deliveries.CUSTOM, pending.arrived)
        return "custom"

    def _answered(self, delivery: str, arrived: float) -> None:
        self.metrics.reply_sent(delivery, asyncio.get_running_loop().time() - arrived)

    async def _push(self, openid: str, parts: list[str], inbound_id: int | None) -> int:
        """Send the parts as customer-service messages; returns how many went out."""
        sent = 0
        for part in parts:
            try:
                await self.api.send_text(openid, part)
                status, error = "sent", None
                sent += 1
            except Exception as exc:  # noqa: BLE001 - recorded as a failed push, never raised
                status, error = "failed", repr(exc)
                level = logging.WARNING if isinstance(exc, WeChatApiError) and exc.errcode == OUT_OF_WINDOW \
                    else logging.ERROR
                log.log(level, "customer-service message to %s failed: %s", mask_openid(openid), exc)
            await asyncio.to_thread(inbound.record_outbound, self.store, openid=openid, inbound_id=inbound_id,
                                    content=part, status=status, error=error)
        return sent

    async def _answer(self, turn: Turn, inbound_id: int) -> tuple[str | None, InboundStatus]:
        message = resident_message(turn)
        if message is None:
            return None, InboundStatus.IGNORED
        routed = await self.router.answer(message)  # admitted in `handle`
        return routed.answer, STATUS_OF[routed.disposition]

    # --- background retries -------------------------------------------------

    async def retry_waiting(self) -> int:
        """Answer messages that arrived while the assistant was down. Returns how many."""
        done = 0
        for message in await asyncio.to_thread(inbound.waiting_messages, self.store):
            if utcnow() - message.received_at > CUSTOMER_SERVICE_WINDOW:
                await asyncio.to_thread(inbound.finish_inbound, self.store, message.id, status=InboundStatus.FAILED,
                                        reply=None, delivery="none", error="too old to answer")
                continue
            text = message.content
            if message.event == "click":
                text = menu_utterance(MENU_COMMANDS.get(message.content, message.content)) or message.content
            kind = MessageKind.VOICE if message.msg_type == "voice" else MessageKind.TEXT
            async with self.router.guard.turn(message.openid):  # after what is in flight, in order
                routed = await self.router.ask_assistant(
                    ResidentMessage(message.openid, kind, CHANNEL, text=text, dedupe_key=message.dedupe_key), text,
                    retried=True)
                if routed.disposition is Disposition.WAITING:
                    break  # still down: keep the order, try again next round
                answer = routed.answer or replies.assistant_did_not_answer()
                if await self._push(message.openid, split_for_wechat(answer), message.id):
                    waited = (utcnow() - message.received_at).total_seconds()
                    self.metrics.reply_sent(deliveries.RETRIED, waited)
            await asyncio.to_thread(inbound.finish_inbound, self.store, message.id, status=InboundStatus.ANSWERED,
                                    reply=answer, delivery="custom")
            done += 1
        return done

    async def drain(self) -> None:
        """Wait for in-flight processing (used on shutdown and by tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

