"""The resident channel: the WeChat official account (push endpoint, API client, delivery, simulator)."""
