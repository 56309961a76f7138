"""A staff channel: the Telegram staff bot (cards, buttons, live relay)."""
