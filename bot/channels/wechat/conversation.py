"""From a verified WeChat push to an answer, within WeChat's 5-second window, exactly once
across gateway replicas.

Every push is stored first (inbound log), with the lease of the replica that answers it.
The answer is produced by a task that runs to completion regardless of the HTTP request: if
it is ready within the passive-reply budget it goes back in the HTTP response, otherwise it
is pushed as a customer-service message. Redeliveries of a message in flight in this replica
wait for the same answer; exactly one of them (or the push) delivers it.

Several replicas share the database, so what a message needs lives there, not in a process:

* Lease. A replica holds a message (`owner`, `lease_until`) from the INSERT on, renews it
  every RENEW_EVERY seconds while it works, and releases it when done. A redelivery reaching
  another replica while the lease is live is answered `success`: the owner delivers.
* Takeover. A lease that ran out means its replica stopped (killed, frozen). The message is
  taken over by one conditional UPDATE that only one replica wins (`takeovers` + 1): by a
  redelivery (answered passively if in time), or by the sweep every replica runs in its retry
  loop (`take_over_stalled`: by customer-service message; past WeChat's 48-hour window the
  message is marked failed). Waiting messages are claimed the same way before they are
  retried (`retry_waiting`), so exactly one replica retries each.
* No second turn. LEASE (75 s) exceeds the assistant client's timeout (60 s) plus the renewal
  interval, so a stopped replica's last request has ended by the time its message is taken
  over. A message taken over (`takeovers` > 0, kept through an outage) is first looked up in
  the assistant's memory (the Rasa tracker, by the dedupe key sent in the metadata): if it
  had its turn there, that turn's answer is reused, not asked for again. (A turn Rasa itself
  abandoned when the dead replica's connection dropped is not in the tracker; what its actions
  did before that is not undone, and such a message is asked again.)
* The answer, decided, is recorded before any of it goes out (`record_answer`; for a passive
  reply, before the HTTP response is returned): a takeover of such a message delivers what is
  left of it and asks nobody. (A retried message's answer is not recorded: its takeover asks
  again, resumed, and finds that very answer in the tracker.)
* Each customer-service part is recorded as `sending` under a unique key (message, attempt,
  part), with the lease renewed, in one transaction before the API call; then `sent` or
  `failed`. A part with a row is never sent again, by any replica (a `failed` one may be
  retried by a takeover).

The irreducible window: a replica killed after WeChat accepted a part, or after recording a
passive reply and before WeChat read the HTTP response, and before it wrote what came of it.
Nobody can know whether the resident got that part. We choose AT MOST ONCE: a part left
`sending`, or a recorded passive reply, counts as delivered and is not sent again. A resident
may, in those milliseconds around a crash, miss one part; no resident ever gets one twice.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from wechatpy.messages import BaseMessage

from bot.cases.routing import Disposition, MessageKind, MessageRouter, ResidentMessage, menu_utterance
from bot.channels.wechat import inbound
from bot.channels.wechat.api import CUSTOMER_SERVICE_WINDOW, OUT_OF_WINDOW, WeChatApi, WeChatApiError
from bot.channels.wechat.inbound import Claimed, PartStep
from bot.channels.wechat.models import InboundStatus
from bot.channels.wechat.protocol import split_for_wechat
from bot.core import metrics as deliveries
from bot.core import replies
from bot.core.clock import utcnow
from bot.core.metrics import NO_METRICS, Metrics
from bot.core.privacy import mask_openid
from bot.db.store import TicketStore

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "wechat"
# Menu CLICK keys (configured in the official account's menu) and the menu commands they stand for.
MENU_COMMANDS = {"MENU_REPAIR": "repair", "MENU_COMPLAINT": "complaint", "MENU_MY_TICKETS": "my_tickets",
                 "MENU_ENQUIRY": "enquiry"}
KINDS = {"text": MessageKind.TEXT, "voice": MessageKind.VOICE, "image": MessageKind.IMAGE,
         "location": MessageKind.LOCATION}
STATUS_OF = {Disposition.ANSWERED: InboundStatus.ANSWERED, Disposition.WAITING: InboundStatus.WAITING,
             Disposition.IGNORED: InboundStatus.IGNORED, Disposition.THROTTLED: InboundStatus.THROTTLED}
# A replica's hold on a message it works on: longer than the assistant client's timeout (60 s)
# plus RENEW_EVERY, so that a stopped replica's last request to the assistant has ended when
# its lease runs out (renewed every RENEW_EVERY seconds while it works).
LEASE = timedelta(seconds=75)
RENEW_EVERY = 10.0
# How long a finished message stays in `inflight`, for late redeliveries to this replica.
KEEP_ANSWERED = 30.0


def _while_delivered(status: InboundStatus) -> InboundStatus:
    """A message's status while its answer goes out: received (done when all of it is out),
    or waiting for a holding answer (the retry answers it properly)."""
    return InboundStatus.WAITING if status is InboundStatus.WAITING else InboundStatus.RECEIVED


def replica_id() -> str:
    """This gateway process, as a lease owner: host, pid and a random part (a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"[-128:]


@dataclass
class Pending:
    inbound_id: int
    openid: str
    arrived: float  # the event loop's clock when the push reached the endpoint
    attempts: int = 0  # the message's `attempts` while this answer is delivered (keys its parts)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    answer: str | None = None
    status: InboundStatus = InboundStatus.ANSWERED
    waiters: int = 0
    claimed: bool = False
    # Set by the request that claimed the passive reply: whether it recorded it (and returns it).
    passive: asyncio.Future[bool] | None = None
    lost: bool = False  # the lease went to another replica: this one delivers nothing more
    # Recorded as done with its passive reply, in the write that recorded the reply (a one-part
    # answer: nothing is left to deliver after the HTTP response).
    finished: bool = False
    # The event loop's time when this replica last wrote the lease (taken or renewed).
    renewed_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())


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


def stored_turn(message: Claimed) -> Turn:
    """The turn of a stored message (one taken over from another replica)."""
    return Turn(message.dedupe_key, message.openid, message.msg_type, message.event, message.content, message.media)


class ConversationService:
    """One gateway replica's side of the conversation (see the module's docstring).

    `replica`: this replica's id as a lease owner; `clock`: the wall clock leases are read
    against (naive UTC; replicas' clocks are assumed synchronised well within LEASE).
    """

    def __init__(self, store: TicketStore, router: MessageRouter, api: WeChatApi, passive_budget: float,
                 metrics: Metrics = NO_METRICS, *, replica: str | None = None,
                 clock: Callable[[], datetime] = utcnow, lease: timedelta = LEASE,
                 renew_every: float = RENEW_EVERY) -> None:
        self.store = store
        self.metrics = metrics
        self.router = router
        self.api = api
        self.passive_budget = passive_budget
        self.replica = replica or replica_id()
        self.clock = clock
        self.lease = lease
        self.renew_every = renew_every
        self.inflight: dict[str, Pending] = {}
        self._tasks: set[asyncio.Task] = set()
        self._working: set[int] = set()  # messages this replica is answering now (never its own takeover)

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
        now = self.clock()
        stored = await asyncio.to_thread(
            inbound.record_inbound, self.store, dedupe_key=turn.dedupe_key, openid=turn.openid,
            msg_type=turn.msg_type, event=turn.event, content=turn.content, media=turn.media, now=now,
            status=InboundStatus.THROTTLED if throttled else InboundStatus.RECEIVED,
            reply=throttled.answer if throttled else None, owner=self.replica, lease_until=now + self.lease)
        if not stored.created:
            return await self._redelivered(turn, stored.id, arrived)
        if throttled:
            if not throttled.answer:
                return None
            self._answered(deliveries.PASSIVE, arrived)
            return split_for_wechat(throttled.answer)[0]
        pending = Pending(stored.id, turn.openid, arrived)
        self._start(turn, pending)
        return await self._await_answer(pending)

    async def _redelivered(self, turn: Turn, inbound_id: int, arrived: float) -> str | None:
        """A push stored before: this replica's answer in flight, or one a stopped replica left."""
        pending = self.inflight.get(turn.dedupe_key)
        if pending is None:
            taken = await asyncio.to_thread(inbound.take_over, self.store, inbound_id, owner=self.replica,
                                            now=self.clock(), lease=self.lease)
            if taken is not None:
                log.warning("redelivery of %s from %s: its replica stopped; taken over", loggable_key(turn),
                            mask_openid(turn.openid))
                pending = Pending(taken.id, turn.openid, arrived, attempts=taken.attempts)
                self._start(turn, pending, taken)
                return await self._await_answer(pending)
        log.info("redelivery of %s from %s (%s)", loggable_key(turn), mask_openid(turn.openid),
                 "in flight, waiting for its answer" if pending else "already handled, or in hand elsewhere")
        return await self._await_answer(pending) if pending else None

    def _start(self, turn: Turn, pending: Pending, taken: Claimed | None = None) -> None:
        self.inflight[turn.dedupe_key] = pending
        task = asyncio.create_task(self._process(turn, pending, taken))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
                if await self._record_passive(pending, pending.answer):
                    self._answered(deliveries.PASSIVE, pending.arrived)
                    return split_for_wechat(pending.answer)[0]
            return None
        finally:
            pending.released.set()

    async def _record_passive(self, pending: Pending, answer: str) -> bool:
        """Record the answer as passive before the HTTP response carries it (a replica taking
        the message over must not send it again). False: not recorded, not answered passively."""
        passive = pending.passive = asyncio.get_running_loop().create_future()
        recorded = False
        try:
            if pending.status is InboundStatus.ANSWERED and len(split_for_wechat(answer)) == 1:
                # The whole answer rides in this response: the message is done in the same write,
                # as `_process` would record it after delivering (one write a message fewer).
                recorded = pending.finished = await asyncio.to_thread(
                    inbound.finish_inbound, self.store, pending.inbound_id, status=InboundStatus.ANSWERED,
                    reply=answer, delivery="passive", owner=self.replica)
            else:
                recorded = await asyncio.to_thread(inbound.record_answer, self.store, pending.inbound_id,
                                                   owner=self.replica, status=_while_delivered(pending.status),
                                                   reply=answer, delivery="passive")
            pending.lost = not recorded
        except Exception:  # noqa: BLE001 - the answer then goes as customer-service messages
            log.exception("recording a passive reply failed; it goes as customer-service messages")
        finally:
            passive.set_result(recorded)
        return recorded

    # --- processing side ----------------------------------------------------

    async def _process(self, turn: Turn, pending: Pending, taken: Claimed | None = None) -> None:
        """Answer the message and deliver the answer, holding its lease; `taken`: the stored
        message, taken over from a replica that stopped."""
        status = InboundStatus.ANSWERED
        answer: str | None = None
        error = None
        self._working.add(pending.inbound_id)
        try:
            async with self._lease_kept(pending):
                # One message of a resident at a time, from the assistant's answer until it has gone
                # out: the next waits its turn, so answers arrive in the order the messages were sent.
                async with self.router.guard.turn(turn.openid):
                    if taken is not None and taken.reply is not None:
                        # Answered already (the replica stopped while delivering): what is left of it.
                        answer = taken.reply
                        delivery = await self._deliver_rest(pending, taken)
                    else:
                        if not await self._still_held(pending):  # taken over while it waited for its turn
                            delivery = None
                        else:
                            try:
                                answer, status = await self._answer(turn, resumed=taken is not None)
                            except Exception as exc:  # noqa: BLE001 - a resident always gets an answer
                                log.exception("processing %s failed", loggable_key(turn))
                                answer, status = replies.received_will_answer_later(), InboundStatus.WAITING
                                error = repr(exc)
                            delivery = await self._deliver(pending, answer, status)
            if delivery is None or pending.lost:
                log.warning("%s was taken over by another replica; it delivers the rest", loggable_key(turn))
                return
            if pending.finished:
                return
            await asyncio.to_thread(inbound.finish_inbound, self.store, pending.inbound_id, status=status,
                                    reply=answer, delivery=delivery, error=error, owner=self.replica)
        finally:
            self._working.discard(pending.inbound_id)
            pending.claimed = True  # a redelivery arriving after this gets `success`
            pending.ready.set()
            # Keep the entry a little so a late redelivery still finds the shared answer.
            asyncio.get_running_loop().call_later(KEEP_ANSWERED, self._forget, turn.dedupe_key, pending)

    def _forget(self, dedupe_key: str, pending: Pending) -> None:
        if self.inflight.get(dedupe_key) is pending:
            del self.inflight[dedupe_key]

    @contextlib.asynccontextmanager
    async def _lease_kept(self, pending: Pending) -> AsyncIterator[None]:
        """Renew the message's lease every `renew_every` seconds while the block runs."""
        keeper = asyncio.create_task(self._keep_lease(pending))
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_lease(self, pending: Pending) -> None:
        while not pending.lost:
            await asyncio.sleep(self.renew_every)
            if pending.finished:  # released when it was recorded as done
                return
            try:
                await self._renew(pending)
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("renewing the lease of message %d failed: %s", pending.inbound_id, exc)

    async def _renew(self, pending: Pending) -> bool:
        if await asyncio.to_thread(inbound.renew_lease, self.store, pending.inbound_id, owner=self.replica,
                                   until=self.clock() + self.lease):
            pending.renewed_at = asyncio.get_running_loop().time()
        else:
            pending.lost = True
        return not pending.lost

    async def _still_held(self, pending: Pending) -> bool:
        """Whether the lease is still this replica's, before the assistant is asked: read again
        when it was last renewed longer ago than the renewal interval (a long wait for the
        resident's turn, or a frozen process)."""
        if pending.lost:
            return False
        if asyncio.get_running_loop().time() - pending.renewed_at < self.renew_every:
            return True
        return await self._renew(pending)

    async def _deliver(self, pending: Pending, answer: str | None, status: InboundStatus) -> str | None:
        """Deliver the answer (passively if a request takes it in time); how it went out, or
        None when the message went to another replica meanwhile."""
        pending.answer = answer
        pending.status = status
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
        if pending.passive is not None and await pending.passive:
            return "passive" if await self._push(pending, parts, 1) is not None else None
        if pending.lost:
            return None
        pending.claimed = True
        if not await asyncio.to_thread(inbound.record_answer, self.store, pending.inbound_id, owner=self.replica,
                                       status=_while_delivered(status), reply=answer, delivery="custom"):
            pending.lost = True
            return None
        self.metrics.reply_deferred()
        sent = await self._push(pending, parts, 0)
        if sent is None:
            return None
        if sent:
            self._answered(deliveries.CUSTOM, pending.arrived)
        return "custom"

    async def _deliver_rest(self, pending: Pending, taken: Claimed) -> str | None:
        """Deliver what a stopped replica left of an answer it had recorded (never passively:
        part of it may have gone out already)."""
        pending.claimed = True
        pending.ready.set()
        assert taken.reply is not None
        first = 1 if taken.delivery == "passive" else 0
        sent = await self._push(pending, split_for_wechat(taken.reply), first)
        if sent is None:
            return None
        if sent:
            self._answered(deliveries.CUSTOM, pending.arrived)
        return taken.delivery or "custom"

    def _answered(self, delivery: str, arrived: float) -> None:
        self.metrics.reply_sent(delivery, asyncio.get_running_loop().time() - arrived)

    async def _push(self, pending: Pending, parts: list[str], first: int = 0) -> int | None:
        """Send `parts[first:]` as customer-service messages, each at most once (see the module's
        docstring); how many went out now, or None when the lease went to another replica."""
        sent = 0
        openid = pending.openid
        for index in range(first, len(parts)):
            generation = f"{pending.attempts}{'w' if pending.status is InboundStatus.WAITING else ''}"
            key = inbound.part_key(pending.inbound_id, generation, index)
            step = await asyncio.to_thread(inbound.begin_part, self.store, inbound_id=pending.inbound_id, key=key,
                                           openid=openid, content=parts[index], owner=self.replica,
                                           until=self.clock() + self.lease)
            if step is PartStep.LOST:
                pending.lost = True
                return None
            if step is PartStep.DONE:
                # Sent by a replica that stopped, or begun and never confirmed: at most once.
                log.info("part %d of the answer to message %d went out before; not sent again", index,
                         pending.inbound_id)
                continue
            # The irreducible window: killed after WeChat accepts this part and before the line
            # below records it, the part stays `sending` and nobody sends it again (at most once).
            try:
                await self.api.send_text(openid, parts[index])
                status, error = "sent", None
                sent += 1
            except Exception as exc:  # noqa: BLE001 - recorded as a failed push, never raised
                status, error = "failed", repr(exc)
                level = logging.WARNING if isinstance(exc, WeChatApiError) and exc.errcode == OUT_OF_WINDOW \
                    else logging.ERROR
                log.log(level, "customer-service message to %s failed: %s", mask_openid(openid), exc)
            await asyncio.to_thread(inbound.end_part, self.store, key, status=status, error=error)
        return sent

    async def _answer(self, turn: Turn, resumed: bool = False) -> tuple[str | None, InboundStatus]:
        message = resident_message(turn)
        if message is None:
            return None, InboundStatus.IGNORED
        if resumed:
            message = dataclasses.replace(message, resumed=True)
        routed = await self.router.answer(message)  # admitted in `handle` (or when first stored)
        return routed.answer, STATUS_OF[routed.disposition]

    def _since_received(self, received_at: datetime) -> float:
        """The event loop's time when a stored message arrived (for latency metrics)."""
        waited = (self.clock() - received_at).total_seconds()
        return asyncio.get_running_loop().time() - max(waited, 0.0)

    def _too_old(self, received_at: datetime) -> bool:
        return self.clock() - received_at > CUSTOMER_SERVICE_WINDOW

    async def _give_up(self, message: Claimed) -> None:
        await asyncio.to_thread(inbound.finish_inbound, self.store, message.id, status=InboundStatus.FAILED,
                                reply=None, delivery="none", error="too old to answer", owner=self.replica)

    # --- background: takeovers and retries ------------------------------------

    async def take_over_stalled(self) -> int:
        """Answer, by customer-service message, the messages of replicas that stopped (their
        lease ran out); those past WeChat's 48-hour window are marked failed. Every replica
        runs this; one UPDATE per message decides which one takes it. Returns how many."""
        done = 0
        for inbound_id in await asyncio.to_thread(inbound.stalled_messages, self.store, self.clock(), self.lease):
            if inbound_id in self._working:
                continue  # this replica's own, its lease late (a slow store): it is still being answered
            taken = await asyncio.to_thread(inbound.take_over, self.store, inbound_id, owner=self.replica,
                                            now=self.clock(), lease=self.lease)
            if taken is None:
                continue  # another replica was quicker
            if self._too_old(taken.received_at):
                await self._give_up(taken)
                continue
            log.warning("message %d of %s: its replica stopped; taken over", taken.id, mask_openid(taken.openid))
            turn = stored_turn(taken)
            pending = Pending(taken.id, taken.openid, self._since_received(taken.received_at),
                              attempts=taken.attempts)
            self.inflight[turn.dedupe_key] = pending  # a redelivery to this replica waits for it
            await self._tracked(self._process(turn, pending, taken))
            done += 1
        return done

    async def retry_waiting(self) -> int:
        """Answer messages that arrived while the assistant was down. Returns how many.

        Each is claimed under a lease first, so that of several replicas exactly one retries it;
        a replica skips a resident whose earlier message another one holds (answers in order)."""
        done = 0
        held_elsewhere: set[str] = set()
        for message in await asyncio.to_thread(inbound.waiting_messages, self.store):
            if message.openid in held_elsewhere or message.id in self._working:
                continue
            claimed = await asyncio.to_thread(inbound.claim_waiting, self.store, message.id, owner=self.replica,
                                              now=self.clock(), lease=self.lease)
            if claimed is None:
                held_elsewhere.add(message.openid)
                continue
            if self._too_old(claimed.received_at):
                await self._give_up(claimed)
                continue
            outcome = await self._tracked(self._retry(claimed))
            if outcome is None:
                break  # still down: keep the order, try again next round
            done += outcome
        return done

    async def _retry(self, message: Claimed) -> int | None:
        """Ask the assistant again for one claimed waiting message: 1 when answered, 0 when the
        message went to another replica meanwhile, None when the assistant is still down."""
        text = message.content
        if message.event == "click":
            text = menu_utterance(MENU_COMMANDS.get(message.content, message.content)) or message.content
        kind = MessageKind.VOICE if message.msg_type == "voice" else MessageKind.TEXT
        pending = Pending(message.id, message.openid, self._since_received(message.received_at),
                          attempts=message.attempts, claimed=True)
        self._working.add(message.id)
        try:
            return await self._retry_claimed(message, pending, text, kind)
        finally:
            self._working.discard(message.id)

    async def _retry_claimed(self, message: Claimed, pending: Pending, text: str, kind: MessageKind) -> int | None:
        async with self._lease_kept(pending):
            async with self.router.guard.turn(message.openid):  # after what is in flight, in order
                if not await self._still_held(pending):
                    return 0
                try:
                    routed = await self.router.ask_assistant(
                        ResidentMessage(message.openid, kind, CHANNEL, text=text, dedupe_key=message.dedupe_key,
                                        resumed=message.takeovers > 0), text, retried=True)
                except Exception:
                    # Not answered: free for the next round at once (not a lease later).
                    await asyncio.to_thread(inbound.release, self.store, message.id, owner=self.replica)
                    raise
                if routed.disposition is Disposition.WAITING:
                    await asyncio.to_thread(inbound.release, self.store, message.id, owner=self.replica)
                    return None
                # Not recorded before it goes out: a replica taking this over asks again, resumed, and
                # so finds this very answer in the assistant's memory; its parts' keys skip what went.
                answer = routed.answer or replies.assistant_did_not_answer()
                sent = await self._push(pending, split_for_wechat(answer))
                if sent is None:
                    return 0
                if sent:
                    waited = (self.clock() - message.received_at).total_seconds()
                    self.metrics.reply_sent(deliveries.RETRIED, waited)
        finished = await asyncio.to_thread(inbound.finish_inbound, self.store, message.id,
                                           status=InboundStatus.ANSWERED, reply=answer, delivery="custom",
                                           owner=self.replica)
        return 1 if finished else 0

    async def _tracked(self, work: Awaitable[T]) -> T:
        """Run background work to its end even when the loop that started it is cancelled (at
        shutdown, `drain` waits for it): a message is not left half-delivered."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for in-flight processing (used on shutdown and by tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
