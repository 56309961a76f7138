"""Wiring: settings into services, the gateway application, the local stack and the command line."""
