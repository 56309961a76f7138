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

from bot import inbound, replies
from bot.assistant import AssistantClient, AssistantUnavailable
from bot.handoff import route_resident_message, route_resident_picture
from bot.clock import utcnow
from bot.models import InboundStatus
from bot.privacy import mask_openid
from bot.residents import BindOutcome, bind_resident, mentions_binding, note_contact
from bot.rules import ProjectRules
from bot.store import TicketStore
from bot.tickets import attach_evidence
from bot.wechat.api import CUSTOMER_SERVICE_WINDOW, OUT_OF_WINDOW, WeChatApi, WeChatApiError
from bot.wechat.protocol import split_for_wechat

log = logging.getLogger(__name__)

CHANNEL = "wechat"
# Menu CLICK keys (configured in the official account's menu) and what they mean.
MENU_UTTERANCES = {"MENU_REPAIR": "我要报修", "MENU_COMPLAINT": "我要投诉", "MENU_MY_TICKETS": "查询进度"}
MENU_ENQUIRY = "MENU_ENQUIRY"


@dataclass
class Pending:
    inbound_id: int
    openid: str
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
    if msg_type == "event" or not message.id:
        key = f"{openid}:{message._data.get('CreateTime', '')}:{event or msg_type}"
    else:
        key = f"msgid:{message.id}"
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
        content = str(getattr(message, "key", "") or "")
    return Turn(key[:160], openid, msg_type, event, content, media)


class ConversationService:
    def __init__(self, store: TicketStore, rules: ProjectRules, assistant: AssistantClient, api: WeChatApi,
                 passive_budget: float) -> None:
        self.store = store
        self.rules = rules
        self.assistant = assistant
        self.api = api
        self.passive_budget = passive_budget
        self.inflight: dict[str, Pending] = {}
        self._tasks: set[asyncio.Task] = set()

    # --- request side -------------------------------------------------------

    async def handle(self, message: BaseMessage) -> str | None:
        """The passive reply for this push, or None to answer `success`."""
        turn = describe(message)
        stored = await asyncio.to_thread(
            inbound.record_inbound, self.store, dedupe_key=turn.dedupe_key, openid=turn.openid,
            msg_type=turn.msg_type, event=turn.event, content=turn.content, media=turn.media)
        if not stored.created:
            pending = self.inflight.get(turn.dedupe_key)
            log.info("redelivery of %s from %s (%s)", turn.dedupe_key, mask_openid(turn.openid),
                     "in flight, waiting for its answer" if pending else "already handled")
            return await self._await_answer(pending) if pending else None
        pending = Pending(stored.id, turn.openid)
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
                return split_for_wechat(pending.answer)[0]
            return None
        finally:
            pending.released.set()

    # --- processing side ----------------------------------------------------

    async def _process(self, turn: Turn, pending: Pending) -> None:
        status = InboundStatus.ANSWERED
        error = None
        try:
            answer, status = await self._answer(turn, pending.inbound_id)
        except Exception as exc:  # noqa: BLE001 - a resident always gets an answer
            log.exception("processing %s failed", turn.dedupe_key)
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
        await self._push(pending.openid, parts, pending.inbound_id)
        return "custom"

    async def _push(self, openid: str, parts: list[str], inbound_id: int | None) -> None:
        for part in parts:
            try:
                await self.api.send_text(openid, part)
                status, error = "sent", None
            except Exception as exc:  # noqa: BLE001 - recorded as a failed push, never raised
                status, error = "failed", repr(exc)
                level = logging.WARNING if isinstance(exc, WeChatApiError) and exc.errcode == OUT_OF_WINDOW \
                    else logging.ERROR
                log.log(level, "customer-service message to %s failed: %s", mask_openid(openid), exc)
            await asyncio.to_thread(inbound.record_outbound, self.store, openid=openid, inbound_id=inbound_id,
                                    content=part, status=status, error=error)

    async def _answer(self, turn: Turn, inbound_id: int) -> tuple[str | None, InboundStatus]:
        def contact(subscribed: bool | None) -> tuple[bool, bool]:
            with self.store.transaction() as session:
                resident, first = note_contact(session, turn.openid, subscribed=subscribed)
                return first, resident.bound_at is not None

        if turn.msg_type == "event":
            if turn.event == "subscribe":
                await asyncio.to_thread(contact, True)
                return replies.welcome(), InboundStatus.ANSWERED
            if turn.event == "unsubscribe":
                await asyncio.to_thread(contact, False)
                return None, InboundStatus.IGNORED
            if turn.event == "click":
                if turn.content == MENU_ENQUIRY:
                    return replies.enquiry_menu(), InboundStatus.ANSWERED
                utterance = MENU_UTTERANCES.get(turn.content)
                if utterance:
                    return await self._ask_assistant(turn.openid, utterance, turn, first=False, bound=True)
            return None, InboundStatus.IGNORED

        first, bound = await asyncio.to_thread(contact, None)
        if turn.msg_type in ("text", "voice") and turn.content.strip():
            # A staff member holds this resident's case: the message is theirs, not the assistant's.
            routed = await asyncio.to_thread(self._route_to_staff, turn)
            if routed is not False:
                return routed, InboundStatus.ANSWERED  # type: ignore[return-value]
        if turn.msg_type == "text":
            binding = mentions_binding(turn.content) if not bound else None
            if binding:
                return await asyncio.to_thread(self._bind, turn.openid, *binding), InboundStatus.ANSWERED
            if not turn.content.strip():
                return replies.assistant_did_not_answer(), InboundStatus.ANSWERED
            return await self._ask_assistant(turn.openid, turn.content, turn, first=first, bound=bound)
        if turn.msg_type == "voice":
            if not turn.content:
                return replies.voice_not_recognised(), InboundStatus.ANSWERED
            return await self._ask_assistant(turn.openid, turn.content, turn, first=first, bound=bound)
        if turn.msg_type == "image":
            return await asyncio.to_thread(self._attach_image, turn), InboundStatus.ANSWERED
        if turn.msg_type == "location":
            return replies.location_received(turn.content), InboundStatus.ANSWERED
        return replies.only_text_and_pictures(), InboundStatus.ANSWERED

    async def _ask_assistant(self, openid: str, text: str, turn: Turn, *, first: bool,
                             bound: bool) -> tuple[str, InboundStatus]:
        try:
            answers = await self.assistant.ask(openid, text, {"channel": CHANNEL, "msg_type": turn.msg_type,
                                                              "dedupe_key": turn.dedupe_key})
        except AssistantUnavailable as exc:
            log.warning("assistant unavailable for %s: %s; will retry", mask_openid(openid), exc)
            return replies.received_will_answer_later(), InboundStatus.WAITING
        answer = "\n\n".join(answers) or replies.assistant_did_not_answer()
        if first and not bound:
            answer = f"{answer}\n\n{replies.BINDING_PROMPT}"
        return answer, InboundStatus.ANSWERED

    def _route_to_staff(self, turn: Turn) -> str | None | bool:
        with self.store.transaction() as session:
            return route_resident_message(session, turn.openid, turn.content, channel=CHANNEL)

    def _bind(self, openid: str, room: str, phone: str) -> str:
        with self.store.transaction() as session:
            result = bind_resident(session, self.rules, openid=openid, room=room, phone=phone, channel=CHANNEL)
        log.info("binding for %s: %s", mask_openid(openid), result.outcome.value)
        if result.outcome is BindOutcome.BOUND:
            return replies.binding_done(result.room)
        if result.outcome is BindOutcome.ALREADY_BOUND:
            return replies.binding_already(result.room)
        if result.outcome is BindOutcome.MISMATCH:
            return replies.binding_mismatch(result.follow_up_number or "")
        return replies.binding_unknown_room(result.follow_up_number or "")

    def _attach_image(self, turn: Turn) -> str | None:
        media = turn.media or {}
        with self.store.transaction() as session:
            if route_resident_picture(session, turn.openid, str(media.get("pic_url") or ""), channel=CHANNEL):
                return None  # the staff member holding the case sees it; no automatic answer
            ticket = attach_evidence(session, turn.openid, picture_url=str(media.get("pic_url") or ""),
                                     media_id=str(media.get("media_id") or ""), channel=CHANNEL)
            number = ticket.number if ticket else None
        return replies.evidence_attached(number) if number else replies.what_does_the_picture_show()

    # --- background retries -------------------------------------------------

    async def retry_waiting(self) -> int:
        """Answer messages that arrived while the assistant was down. Returns how many."""
        done = 0
        for message in await asyncio.to_thread(inbound.waiting_messages, self.store):
            if utcnow() - message.received_at > CUSTOMER_SERVICE_WINDOW:
                await asyncio.to_thread(inbound.finish_inbound, self.store, message.id, status=InboundStatus.FAILED,
                                        reply=None, delivery="none", error="too old to answer")
                continue
            text = MENU_UTTERANCES.get(message.content, message.content) if message.event == "click" \
                else message.content
            try:
                answers = await self.assistant.ask(message.openid, text,
                                                   {"channel": CHANNEL, "msg_type": message.msg_type,
                                                    "dedupe_key": message.dedupe_key, "retried": True})
            except AssistantUnavailable:
                break  # still down: keep the order, try again next round
            answer = "\n\n".join(answers) or replies.assistant_did_not_answer()
            await self._push(message.openid, split_for_wechat(answer), message.id)
            await asyncio.to_thread(inbound.finish_inbound, self.store, message.id, status=InboundStatus.ANSWERED,
                                    reply=answer, delivery="custom")
            done += 1
        return done

    async def drain(self) -> None:
        """Wait for in-flight processing (used on shutdown and by tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

