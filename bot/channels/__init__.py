"""Channels: each one owns its protocol and API client. A channel never imports another."""
