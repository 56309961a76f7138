"""The Telegram staff bot (python-telegram-bot).

- Escalated cases (staff alerts) are posted to the staff group as cards with 接单 / 回复 / 办结.
- 回复 and 办结 ask for the text with a forced reply; a reply to that prompt, or to a relayed
  resident message, goes to the resident / resolves the case.
- /mine, /unclaimed, /ticket <number>.
- A Telegram user acts as the staff member whose directory entry holds their user id; what they
  may see and do (their projects, their roles) is decided and audited by bot.cases.access, like
  every other interface. Anyone else is refused and the attempt logged.
- Each project's cases go to its own staff group (and its head; major and group complaints
  also to the company customer-service department's chat).

Every case decision is made by `bot.cases.handoff` (the same functions the staff HTTP API calls).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from telegram import ForceReply, Message, Update, User
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.cases import handoff
from bot.cases.access import authorize
from bot.cases.escalation import COMPANY, HEAD
from bot.cases.handoff import Outcome, Refusal, Staff
from bot.cases.staff_directory import by_telegram_user, principal_of
from bot.cases.tickets import find_ticket
from bot.channels.telegram import cards
from bot.channels.telegram.models import TelegramLink
from bot.core import heartbeat as heartbeat_file
from bot.core.access import Permission, Principal, visible_projects
from bot.core.clock import utcnow
from bot.core.company import Company
from bot.core.rules import ProjectRules
from bot.db.models import StaffAlert, StaffOutbox
from bot.db.records import require
from bot.db.store import TicketStore
from bot.settings import Settings

log = logging.getLogger(__name__)

FEED_INTERVAL = 1.0
CHANNEL = "telegram"


FORBIDDEN_TEXT = "您无权处理这张工单（不在您负责的项目或岗位范围内）。"


@dataclass
class StaffBot:
    settings: Settings
    company: Company
    store: TicketStore

    def rules_of(self, project: str | None) -> ProjectRules:
        return self.company.rules(project) if self.company.knows(project) else self.company.default

    # --- who may act ------------------------------------------------------------------

    def principal_of_user(self, user: User | None) -> Principal | None:
        """The staff member this Telegram account belongs to (enabled members only)."""
        member = None
        if user is not None:
            with self.store.transaction() as session:
                found = by_telegram_user(session, user.id)
                member = principal_of(found) if found is not None else None
        if member is None or not member.roles:
            log.warning("staff bot: refused user id %s (no enabled staff member has it)", user.id if user else "?")
            return None
        return member

    async def staff_of(self, user: User | None) -> Principal | None:
        return await asyncio.to_thread(self.principal_of_user, user)

    def chats_for(self, project: str, audience: str) -> list[int]:
        """The project's staff group; its head too, and the company customer-service department
        for what reaches it (the deployment-wide chats stand in for projects that name none)."""
        rules = self.rules_of(project)
        chats = [rules.staff_chat_id or self.settings.staff_chat_id]
        if audience in (HEAD, COMPANY):
            chats.append(rules.head_chat_id or self.settings.project_head_chat_id)
        if audience == COMPANY:
            chats.append(self.company.cs_chat_id)
        return list(dict.fromkeys(chat for chat in chats if chat))

    # --- links between Telegram messages and cases --------------------------------------

    def link(self, message: Message, ticket_id: int, purpose: str, staff: Staff | None = None) -> None:
        with self.store.transaction() as session:
            session.merge(TelegramLink(chat_id=message.chat_id, message_id=message.message_id, ticket_id=ticket_id,
                                       purpose=purpose, staff_id=staff.id if staff else None, created_at=utcnow()))

    def linked(self, chat_id: int, message_id: int) -> tuple[str, str] | None:
        with self.store.transaction() as session:
            row = session.get(TelegramLink, (chat_id, message_id))
            return (row.ticket.number, row.purpose) if row else None

    def ticket_id(self, number: str) -> int | None:
        with self.store.transaction() as session:
            ticket = find_ticket(session, number)
            return ticket.id if ticket else None

    def holder_of(self, number: str) -> str | None:
        with self.store.transaction() as session:
            ticket = find_ticket(session, number)
            return ticket.assignee_id if ticket else None

    # --- the feed: cards and relayed messages out to Telegram ------------------------------

    async def post_new(self, application: Application) -> int:
        """Post alerts not yet posted and staff messages not yet sent. Returns how many went out."""
        sent = 0
        for alert_id, text, ticket_id, number, chats in await asyncio.to_thread(self._unposted_alerts):
            try:
                for chat in chats:
                    message = await application.bot.send_message(
                        chat, text, reply_markup=cards.card_keyboard(number) if number else None)
                    if ticket_id:
                        await asyncio.to_thread(self.link, message, ticket_id, "card")
            except TelegramError as exc:
                log.warning("staff bot: card for alert %d not posted: %s", alert_id, exc)
                continue
            await asyncio.to_thread(self._mark_alert, alert_id)
            sent += 1
        for row_id, text, ticket_id, chat in await asyncio.to_thread(self._unsent_outbox):
            try:
                message = await application.bot.send_message(chat, text)
            except TelegramError as exc:
                log.warning("staff bot: message %d not sent: %s", row_id, exc)
                await asyncio.to_thread(self._mark_outbox, row_id, str(exc))
                continue
            if ticket_id:
                await asyncio.to_thread(self.link, message, ticket_id, "relay")
            await asyncio.to_thread(self._mark_outbox, row_id, None)
            sent += 1
        return sent

    def _unposted_alerts(self) -> list[tuple[int, str, int | None, str | None, list[int]]]:
        with self.store.transaction() as session:
            alerts = session.execute(select(StaffAlert).where(StaffAlert.notified_at.is_(None))
                                     .order_by(StaffAlert.id).limit(20)).scalars().all()
            return [(a.id, cards.alert_card(a, self.rules_of(a.project)), a.ticket_id,
                     a.ticket.number if a.ticket else None, self.chats_for(a.project, a.audience)) for a in alerts]

    def _mark_alert(self, alert_id: int) -> None:
        with self.store.transaction() as session:
            alert = require(session, StaffAlert, alert_id)
            alert.notified_at = utcnow()

    def _unsent_outbox(self) -> list[tuple[int, str, int | None, int]]:
        with self.store.transaction() as session:
            return [(row.id, row.text, row.ticket_id, self.chats_for(row.project, "staff")[0])
                    for row in handoff.pending_staff_messages(session)
                    if row.attempts < 5 and self.chats_for(row.project, "staff")]

    def _mark_outbox(self, row_id: int, error: str | None) -> None:
        with self.store.transaction() as session:
            row = require(session, StaffOutbox, row_id)
            row.attempts += 1
            if error is None:
                row.sent_at = utcnow()
            row.error = error

    async def feed(self, application: Application, interval: float = FEED_INTERVAL,
                   heartbeat: Path | None = None) -> None:
        while True:
            if heartbeat is not None:  # each round: a stale file says the bot is stuck (bot.core.heartbeat)
                heartbeat_file.beat(heartbeat)
            try:
                await self.post_new(application)
            except Exception:  # noqa: BLE001 - the feed must outlive a bad round (db briefly down, ...)
                log.exception("staff bot feed round failed")
            await asyncio.sleep(interval)

    # --- doing things, through bot.cases.handoff-----------------------------------------------

    def act(self, action: str, number: str, principal: Principal, text: str = "") -> Outcome:
        """Claim, reply or resolve as this person, if their projects and roles allow it (audited)."""
        with self.store.transaction() as session:
            ticket = find_ticket(session, number)
            if ticket is None:
                return Outcome(number.upper(), False, Refusal.NO_SUCH_TICKET)
            access = authorize(session, principal, Permission.ACT_ON_CASE, ticket=ticket, interface=CHANNEL,
                               detail=action)
            if not access.allowed:
                return Outcome(ticket.number, False, Refusal.FORBIDDEN)
            return handoff.perform(session, self.rules_of(ticket.project), action, number, acting(principal), text,
                                   channel=CHANNEL)

    def view(self, number: str, principal: Principal) -> str | None:
        with self.store.transaction() as session:
            ticket = find_ticket(session, number)
            if ticket is None:
                return None
            access = authorize(session, principal, Permission.VIEW_CASE, ticket=ticket, interface=CHANNEL)
            return cards.ticket_view(ticket, self.rules_of(ticket.project)) if access.allowed else FORBIDDEN_TEXT

    def listing(self, principal: Principal, mine: bool) -> str:
        """/mine or /unclaimed: each case listed is a read (its room), authorised and audited."""
        with self.store.transaction() as session:
            if mine:
                title, found = "我的在办工单", handoff.cases_held_by(session, acting(principal))
            else:
                projects = visible_projects(principal, self.company.codes)
                title, found = "待接单工单", handoff.unclaimed_escalated(session, projects)
            shown = [ticket for ticket in found
                     if authorize(session, principal, Permission.VIEW_CASE, ticket=ticket, interface=CHANNEL,
                                  detail=title).allowed]
            return cards.case_list(title, shown, self.company.default)


def acting(principal: Principal) -> Staff:
    """Who a case's timeline names: the staff member, not their Telegram account."""
    return Staff(id=principal.actor_id, name=principal.name)


def _bot(context: ContextTypes.DEFAULT_TYPE) -> StaffBot:
    return context.application.bot_data["staff_bot"]


def refusal_text(outcome: Outcome) -> str:
    if outcome.refusal is Refusal.NO_SUCH_TICKET:
        return f"没有找到工单 {outcome.ticket_number}"
    if outcome.refusal is Refusal.FORBIDDEN:
        return FORBIDDEN_TEXT
    if outcome.refusal is Refusal.CLOSED:
        return f"工单 {outcome.ticket_number} 已结束，无需再处理"
    if outcome.refusal is Refusal.TAKEN:
        return f"工单 {outcome.ticket_number} 已由 {outcome.holder} 接单"
    holder = f"（接单人：{outcome.holder}）" if outcome.holder else "，请先接单"
    return f"只有接单人可以操作工单 {outcome.ticket_number}{holder}"


# --- handlers: one per button or command ---------------------------------------------------


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None  # CallbackQueryHandler only passes updates with a callback query
    bot = _bot(context)
    staff = await bot.staff_of(query.from_user)
    parsed = cards.parse_button(query.data)
    if staff is None:
        await query.answer("您不在值班名单中，无权操作。", show_alert=True)
        return
    if parsed is None:
        await query.answer("无法识别的操作。")
        return
    action, number = parsed
    if action == handoff.CLAIM:
        await on_claim(query, bot, staff, number)
    else:
        await ask_for_text(query, bot, staff, action, number)


async def on_claim(query, bot: StaffBot, staff: Principal, number: str) -> None:  # type: ignore[no-untyped-def]
    outcome = await asyncio.to_thread(bot.act, handoff.CLAIM, number, staff)
    if not outcome.done:
        await query.answer(refusal_text(outcome), show_alert=True)
        return
    await query.answer(f"已接单 {outcome.ticket_number}")
    await query.message.reply_text(f"✅ {staff.name} 已接单 {outcome.ticket_number}，居民的消息将转到这里。")


async def ask_for_text(query, bot: StaffBot, staff: Principal, action: str,  # type: ignore[no-untyped-def]
                       number: str) -> None:
    holder = await asyncio.to_thread(bot.holder_of, number)
    if action == handoff.REPLY and holder != staff.actor_id:
        await query.answer("请先接单再回复。" if holder is None else "只有接单人可以回复。", show_alert=True)
        return
    if action == handoff.RESOLVE and holder not in (None, staff.actor_id):
        await query.answer("只有接单人可以办结。", show_alert=True)
        return
    ticket_id = await asyncio.to_thread(bot.ticket_id, number)
    if ticket_id is None:
        await query.answer(f"没有找到工单 {number}", show_alert=True)
        return
    await query.answer()
    prompt = (f"请直接回复本条消息，输入要发给居民的话（{number}）。" if action == handoff.REPLY
              else f"请直接回复本条消息，写明处理结果，即办结 {number}。")
    message = await query.message.reply_text(prompt, reply_markup=ForceReply(selective=True))
    await asyncio.to_thread(bot.link, message, ticket_id, f"ask_{action}", acting(staff))


async def on_reply_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A reply to a prompt, a card or a relayed resident message: to the resident, or 办结."""
    message = update.effective_message
    assert message is not None  # MessageHandler(filters.REPLY & filters.TEXT) only passes updates with a message
    bot = _bot(context)
    replied = message.reply_to_message
    target = await asyncio.to_thread(bot.linked, message.chat_id, replied.message_id) if replied else None
    if target is None:
        return  # ordinary chat in the staff group
    staff = await bot.staff_of(message.from_user)
    if staff is None:
        await message.reply_text("您不在值班名单中，无权操作。")
        return
    number, purpose = target
    action = handoff.RESOLVE if purpose == "ask_resolve" else handoff.REPLY
    outcome = await asyncio.to_thread(bot.act, action, number, staff, message.text or "")
    if not outcome.done:
        await message.reply_text(refusal_text(outcome))
    elif action == handoff.RESOLVE:
        await message.reply_text(f"工单 {number} 已办结，居民已回到智能助手，满意度回访已安排。")
    else:
        await message.reply_text(f"已发送给居民（{number}）。")


async def _staff_or_refuse(update: Update, bot: StaffBot) -> Principal | None:
    staff = await bot.staff_of(update.effective_user)
    if staff is None:
        message = update.effective_message
        assert message is not None  # only command handlers call this; CommandHandler requires a message
        await message.reply_text("您不在值班名单中，无权查看。")
    return staff


async def on_mine(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    bot = _bot(context)
    staff = await _staff_or_refuse(update, bot)
    if staff is not None:
        message = update.effective_message
        assert message is not None  # CommandHandler only passes updates with a message
        await message.reply_text(await asyncio.to_thread(bot.listing, staff, True))


async def on_unclaimed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    bot = _bot(context)
    staff = await _staff_or_refuse(update, bot)
    if staff is not None:
        message = update.effective_message
        assert message is not None  # CommandHandler only passes updates with a message
        await message.reply_text(await asyncio.to_thread(bot.listing, staff, False))


async def on_ticket(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    bot = _bot(context)
    staff = await _staff_or_refuse(update, bot)
    if staff is None:
        return
    message = update.effective_message
    assert message is not None  # CommandHandler only passes updates with a message
    if not context.args:
        await message.reply_text("用法：/ticket 工单号，例如 /ticket BX20261126-0001")
        return
    view = await asyncio.to_thread(bot.view, context.args[0], staff)
    await message.reply_text(view or f"没有找到工单 {context.args[0]}")


# The Bot API puts the bot token in every request URL, and httpx (python-telegram-bot's HTTP
# client) logs each request URL at INFO: those loggers would write the token to staffbot.log.
TOKEN_BEARING_LOGGERS = ("httpx", "httpcore", "telegram.request")


def quiet_token_bearing_loggers() -> None:
    for name in TOKEN_BEARING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def create_application(settings: Settings, company: Company, store: TicketStore) -> Application:
    quiet_token_bearing_loggers()
    application = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token)
        .base_url(f"{settings.telegram_api_base_url}/bot")
        .base_file_url(f"{settings.telegram_api_base_url}/file/bot")
        # Staff click at the same moment; the database decides who wins a claim.
        .concurrent_updates(8)
        .build()
    )
    application.bot_data["staff_bot"] = StaffBot(settings, company, store)
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(CommandHandler("mine", on_mine))
    application.add_handler(CommandHandler("unclaimed", on_unclaimed))
    application.add_handler(CommandHandler("ticket", on_ticket))
    application.add_handler(MessageHandler(filters.REPLY & filters.TEXT & ~filters.COMMAND, on_reply_text))
    return application


async def serve(application: Application, stop: asyncio.Event, *, feed_interval: float = FEED_INTERVAL,
                poll_interval: float = 0.0, heartbeat: Path | None = None) -> None:
    """Poll Telegram for staff actions and post cards and relayed messages, until `stop` is set."""
    staff_bot: StaffBot = application.bot_data["staff_bot"]
    updater = application.updater
    if updater is None:
        raise RuntimeError("the staff bot polls Telegram: build its Application with an Updater")
    async with application:
        await application.start()
        await updater.start_polling(poll_interval=poll_interval, allowed_updates=["message", "callback_query"])
        feed = asyncio.create_task(staff_bot.feed(application, feed_interval, heartbeat))
        log.info("staff bot running for %d project(s)", len(staff_bot.company.codes))
        try:
            await stop.wait()
        finally:
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed
            await updater.stop()
            await application.stop()


def run(settings: Settings, company: Company) -> int:
    has_group = settings.staff_chat_id or any(p.staff_chat_id for p in company.projects.values())
    if not settings.telegram_bot_token or not has_group:
        log.error("staff bot needs TELEGRAM_BOT_TOKEN and a staff group (STAFF_CHAT_ID or a project's "
                  "staff_chat_id); escalations stay in the staff API queue")
        return 2

    async def main() -> None:
        store = TicketStore(settings.database_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await serve(create_application(settings, company, store), stop,
                        heartbeat=settings.staffbot_heartbeat_file)
        finally:
            store.dispose()

    asyncio.run(main())
    return 0
