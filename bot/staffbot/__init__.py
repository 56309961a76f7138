"""The Telegram staff bot: escalated cases as cards, claim/reply/resolve, live relay."""
