"""The resident-facing HTTP gateway (aiohttp)."""
