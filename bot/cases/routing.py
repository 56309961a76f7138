"""Where a resident's message goes: the staff member holding their case, household binding,
the case they sent a photo for, or the assistant.

Channel-neutral: a resident channel turns its protocol's message into a `ResidentMessage`
and sends back whatever `Routed.answer` says, so a second resident channel reuses this
policy unchanged.
"""
from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bot.cases.flood import Admission, FloodGuard
from bot.cases.handoff import route_resident_message, route_resident_picture
from bot.cases.ports import Assistant, AssistantUnavailable
from bot.cases.residents import BindOutcome, bind_resident, enter_project, mentions_binding, note_contact
from bot.cases.tickets import attach_evidence
from bot.core import replies
from bot.core.company import Company
from bot.core.privacy import mask_openid
from bot.db.counters import MemoryCounters
from bot.db.records import current_contact
from bot.db.store import TicketStore

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class MessageKind(str, enum.Enum):
    TEXT = "text"
    VOICE = "voice"  # `text` is the channel's speech recognition, empty when it had none
    IMAGE = "image"
    LOCATION = "location"  # `text` is the place's label
    SUBSCRIBE = "subscribe"  # `scene`: the project code of the QR code followed through, if any
    SCAN = "scan"  # a follower scanned a project's QR code (`scene`)
    UNSUBSCRIBE = "unsubscribe"
    MENU = "menu"  # `text` is one of MENU_COMMANDS
    OTHER = "other"  # video, files, links…: not understood


# Menu buttons a channel may offer, and what each one says to the assistant (None: answered here).
MENU_COMMANDS: dict[str, str | None] = {"repair": "我要报修", "complaint": "我要投诉", "my_tickets": "查询进度",
                                        "enquiry": None}


class Disposition(str, enum.Enum):
    ANSWERED = "answered"
    WAITING = "waiting"  # the assistant is down: answer later, in order
    IGNORED = "ignored"
    THROTTLED = "throttled"  # over the resident's rate limit: stored, the assistant not asked


@dataclass(frozen=True)
class ResidentMessage:
    openid: str
    kind: MessageKind
    channel: str
    text: str = ""
    picture_url: str = ""
    media_id: str = ""
    dedupe_key: str = ""
    scene: str = ""
    # Taken over from a gateway replica that stopped while answering it: the assistant may
    # already have had its turn, so its memory is read before it is asked (never twice).
    resumed: bool = False


@dataclass(frozen=True)
class Routed:
    answer: str | None  # None: nothing to say (e.g. the message went to a staff member)
    disposition: Disposition


def menu_utterance(command: str) -> str | None:
    return MENU_COMMANDS.get(command)


class MessageRouter:
    """Decides, per message, who answers; stores and store calls run off the event loop."""

    def __init__(self, store: TicketStore, company: Company, assistant: Assistant,
                 guard: FloodGuard | None = None) -> None:
        self.store = store
        self.company = company
        self.assistant = assistant
        self.guard = guard or FloodGuard(MemoryCounters(), company.default.flood)

    async def route(self, message: ResidentMessage) -> Routed:
        """Admit the message (the resident's rate limit), then answer it in the resident's turn."""
        throttled = await self.admit(message)
        if throttled is not None:
            return throttled
        async with self.guard.turn(message.openid):
            return await self.answer(message)

    async def admit(self, message: ResidentMessage) -> Routed | None:
        """None when the message may go on; the throttled outcome when the resident is over
        their limit. A channel that stores messages calls this first, so that a throttled
        message costs one write and nothing else."""
        if message.kind is MessageKind.UNSUBSCRIBE:
            return None  # always recorded: the resident leaves
        admission = await self.guard.admit(message.openid)
        if admission is Admission.ADMITTED:
            return None
        return Routed(replies.sending_too_fast() if admission is Admission.TOLD_TO_WAIT else None,
                      Disposition.THROTTLED)

    async def answer(self, message: ResidentMessage) -> Routed:
        """Answer an admitted message. The caller holds the resident's turn (`guard.turn`) until
        the answer has gone out, so a resident's answers leave in the order of their messages."""
        if message.kind is MessageKind.UNSUBSCRIBE:
            await asyncio.to_thread(self._note_contact, message.openid, False)
            return Routed(None, Disposition.IGNORED)
        return await self._route(message)

    async def _route(self, message: ResidentMessage) -> Routed:
        kind = message.kind
        if kind is MessageKind.SUBSCRIBE:
            await asyncio.to_thread(self._note_contact, message.openid, True)
            entered = await asyncio.to_thread(self._enter_project, message) if message.scene else None
            return Routed(replies.welcome(entered or ""), Disposition.ANSWERED)
        if kind is MessageKind.SCAN:
            entered = await asyncio.to_thread(self._enter_project, message)
            return Routed(replies.project_entered(entered) if entered else None,
                          Disposition.ANSWERED if entered else Disposition.IGNORED)
        if kind is MessageKind.MENU:
            if message.text == "enquiry":
                return Routed(replies.enquiry_menu(), Disposition.ANSWERED)
            utterance = menu_utterance(message.text)
            if utterance is None:
                return Routed(None, Disposition.IGNORED)
            return await self.ask_assistant(message, utterance, first=False, bound=True)

        if kind in (MessageKind.TEXT, MessageKind.VOICE) and message.text.strip():
            first, bound, relayed = await asyncio.to_thread(self._note_contact_and_route, message)
            if relayed is not False:
                return Routed(relayed or None, Disposition.ANSWERED)
        else:
            first, bound = await asyncio.to_thread(self._note_contact, message.openid, None)
        if kind is MessageKind.TEXT:
            binding = mentions_binding(message.text) if not bound else None
            if binding:
                return Routed(await asyncio.to_thread(self._bind, message, *binding), Disposition.ANSWERED)
            if not message.text.strip():
                return Routed(replies.assistant_did_not_answer(), Disposition.ANSWERED)
            return await self.ask_assistant(message, message.text, first=first, bound=bound)
        if kind is MessageKind.VOICE:
            if not message.text:
                return Routed(replies.voice_not_recognised(), Disposition.ANSWERED)
            return await self.ask_assistant(message, message.text, first=first, bound=bound)
        if kind is MessageKind.IMAGE:
            return Routed(await asyncio.to_thread(self._attach_image, message), Disposition.ANSWERED)
        if kind is MessageKind.LOCATION:
            return Routed(replies.location_received(message.text), Disposition.ANSWERED)
        return Routed(replies.only_text_and_pictures(), Disposition.ANSWERED)

    async def ask_assistant(self, message: ResidentMessage, text: str, *, first: bool = False, bound: bool = True,
                            retried: bool = False) -> Routed:
        metadata: dict[str, object] = {"channel": message.channel, "msg_type": message.kind.value,
                                       "dedupe_key": message.dedupe_key}
        if retried:
            metadata["retried"] = True
        try:
            answers = await self._earlier_answer(message) if message.resumed else None
            if answers is None:
                answers = await self.assistant.ask(message.openid, text, metadata)
        except AssistantUnavailable as exc:
            log.warning("assistant unavailable for %s: %s; will retry", mask_openid(message.openid), exc)
            return Routed(replies.received_will_answer_later(), Disposition.WAITING)
        answer = "\n\n".join(answers) or replies.assistant_did_not_answer()
        if first and not bound:
            answer = f"{answer}\n\n{replies.BINDING_PROMPT}"
        return Routed(answer, Disposition.ANSWERED)

    async def _earlier_answer(self, message: ResidentMessage) -> list[str] | None:
        """The answer of the turn this message already had at the assistant, if it had one."""
        if not message.dedupe_key:
            return None
        answers = await self.assistant.earlier_answer(message.openid, message.dedupe_key)
        if answers is not None:
            log.info("the assistant already answered this message of %s: its answer is reused, not asked again",
                     mask_openid(message.openid))
        return answers

    # --- store work (in a worker thread) ---------------------------------------------

    def _note_contact(self, openid: str, subscribed: bool | None) -> tuple[bool, bool]:
        with self.store.transaction() as session:
            return self._noted(session, openid, subscribed)

    def _noted(self, session: Session, openid: str, subscribed: bool | None) -> tuple[bool, bool]:
        """(first contact, bound) of the resident, their contact noted."""
        resident, first = note_contact(session, openid, project=self.company.default_code, subscribed=subscribed)
        return first, resident.bound_at is not None

    def _enter_project(self, message: ResidentMessage) -> str | None:
        """The project of a QR code the resident came through: its name, or None (and a logged
        refusal, nothing changed) when the code names no project of ours."""
        if not self.company.knows(message.scene):
            log.warning("QR code scene %r of %s names no project; the resident stays where they are",
                        message.scene[:40], mask_openid(message.openid))
            return None
        with self.store.transaction() as session:
            resident = enter_project(session, message.openid, message.scene)
            resident.subscribed = resident.subscribed or message.kind is MessageKind.SUBSCRIBE
        log.info("%s entered project %s through its QR code", mask_openid(message.openid), message.scene)
        return self.company.rules(message.scene).name

    def _note_contact_and_route(self, message: ResidentMessage) -> tuple[bool, bool, str | None | Literal[False]]:
        """A resident's words, in one transaction (every text pays it): the contact noted (first
        contact, bound), and the words relayed when a staff member holds the resident's case, for
        the message is then theirs, not the assistant's (False: nobody holds it)."""
        with self.store.transaction() as session:
            first, bound = self._noted(session, message.openid, None)
            return first, bound, route_resident_message(session, message.openid, message.text, channel=message.channel)

    def _bind(self, message: ResidentMessage, room: str, phone: str) -> str:
        with self.store.transaction() as session:
            current = current_contact(session, message.openid)
            rules = self.company.rules(current.project) if current and self.company.knows(current.project) \
                else self.company.default
            result = bind_resident(session, rules, openid=message.openid, room=room, phone=phone,
                                   channel=message.channel)
        log.info("binding for %s: %s", mask_openid(message.openid), result.outcome.value)
        if result.outcome is BindOutcome.BOUND:
            return replies.binding_done(result.room)
        if result.outcome is BindOutcome.ALREADY_BOUND:
            return replies.binding_already(result.room)
        if result.outcome is BindOutcome.TOO_MANY:
            return replies.binding_too_many_tries()
        return replies.binding_not_matched(result.follow_up_number or "")  # mismatch or unknown room alike

    def _attach_image(self, message: ResidentMessage) -> str | None:
        with self.store.transaction() as session:
            if route_resident_picture(session, message.openid, message.picture_url, channel=message.channel):
                return None  # the staff member holding the case sees it; no automatic answer
            ticket = attach_evidence(session, message.openid, picture_url=message.picture_url,
                                     media_id=message.media_id, channel=message.channel)
            number = ticket.number if ticket else None
        return replies.evidence_attached(number) if number else replies.what_does_the_picture_show()
