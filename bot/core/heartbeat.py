"""A heartbeat file: a process without an HTTP side (the worker, the staff bot) touches it each
round of its loop; whoever watches it (`make run`'s supervisor, a Docker healthcheck) reads its
modification time, so no HTTP and no parsing is needed: an old file means a stuck process.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

_failed: set[Path] = set()


def beat(path: Path) -> None:
    """Mark this process alive now. A file that cannot be written is logged (once per path) and
    never stops the caller: a stuck heartbeat only makes the watcher restart the process."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        _failed.discard(path)
    except OSError as exc:
        if path not in _failed:
            _failed.add(path)
            log.warning("heartbeat file %s not written: %s", path, exc)


def age(path: Path, now: float | None = None) -> float | None:
    """Seconds since the last beat (wall clock, like the file's time); None: no beat yet."""
    try:
        modified = os.stat(path).st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - modified)
