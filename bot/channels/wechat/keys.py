"""Typed keys of what the WeChat channel keeps on the application that mounts it."""
from __future__ import annotations

import aiohttp
from aiohttp import web

from bot.channels.wechat.conversation import ConversationService
from bot.channels.wechat.protocol import WeChatCredentials

HTTP = web.AppKey("wechat_http", aiohttp.ClientSession)
CREDENTIALS = web.AppKey("wechat_credentials", WeChatCredentials)
CONVERSATIONS = web.AppKey("wechat_conversations", ConversationService)
