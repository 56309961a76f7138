"""Typed keys of the resources the gateway application holds."""
from __future__ import annotations

import aiohttp
from aiohttp import web

from bot.config import Settings
from bot.gateway.conversation import ConversationService
from bot.rules import ProjectRules
from bot.store import TicketStore
from bot.wechat.protocol import WeChatCredentials

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", TicketStore)
RULES = web.AppKey("rules", ProjectRules)
HTTP = web.AppKey("http", aiohttp.ClientSession)
CREDENTIALS = web.AppKey("wechat_credentials", WeChatCredentials)
CONVERSATIONS = web.AppKey("conversations", ConversationService)
