"""The service runtime is on current releases and has no Rasa in it (Rasa's pins stop at Rasa)."""
from __future__ import annotations

import importlib.util
from importlib.metadata import version

from packaging.version import Version


def test_service_runtime_is_on_current_releases_without_rasa():
    assert Version(version("aiohttp")) >= Version("3.14.1")  # request smuggling and decompression-bomb fixes
    assert Version(version("SQLAlchemy")).major == 2
    assert importlib.util.find_spec("rasa") is None
    assert importlib.util.find_spec("tensorflow") is None
    assert importlib.util.find_spec("rasa_sdk") is not None  # the action server runs here
