"""Every table of the store: the core's (bot.db.models) and each channel's own.

Migrations compare against this metadata, so a channel's tables are part of the one
schema and the one migration history without the storage layer knowing the channels.
"""
from __future__ import annotations

from bot.channels.telegram import models as telegram_models
from bot.channels.wechat import models as wechat_models
from bot.db.models import Base

metadata = Base.metadata
CHANNEL_MODELS = (wechat_models, telegram_models)  # imported for their tables
