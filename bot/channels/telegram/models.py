"""The Telegram staff channel's own table: which chat message stands for which case."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.models import Base, Ticket


class TelegramLink(Base):
    """Which case a Telegram message is about, so replies to it reach the right resident."""

    __tablename__ = "telegram_links"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("tickets.id"), nullable=False)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)  # card / relay / ask_reply / ask_resolve
    staff_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    ticket: Mapped["Ticket"] = relationship("Ticket")
