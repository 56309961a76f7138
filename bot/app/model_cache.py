"""Train the Rasa model only when its inputs changed.

The model is named by a fingerprint of everything training reads (config, domain,
data, the jieba dictionary, the Rasa version) and kept in a cache outside the checkout,
so a fresh clone on a machine that trained the same data before skips training.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bot.settings import PROJECT_ROOT

# bot/nlu holds our own graph components; with the core modules they read, their code is part
# of the model. The assistant runtime's lock pins Rasa and everything it trains with.
TRAINING_INPUTS = ("config.yml", "domain.yml", "data", "project/jieba", "bot/nlu", "bot/core/chinese.py",
                   "bot/core/rooms.py", "bot/core/phones.py", "requirements/assistant.lock")


def assistant_python(root: Path = PROJECT_ROOT) -> Path:
    """The assistant runtime's interpreter (Rasa 3.6 and our graph components), not this one."""
    configured = os.environ.get("ASSISTANT_PYTHON")
    return Path(configured) if configured else root / ".venv-assistant" / "bin" / "python"


def cache_dir() -> Path:
    root = os.environ.get("WUYE_CACHE_DIR") or str(Path.home() / ".cache" / "wuye-assistant")
    return Path(root) / "models"


def _input_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for name in TRAINING_INPUTS:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"))
    return files


def fingerprint(root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.sha256(b"wuye-model-v2")
    for path in _input_files(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def model_path(root: Path = PROJECT_ROOT) -> Path:
    return cache_dir() / f"{fingerprint(root)}.tar.gz"


def ensure_model(root: Path = PROJECT_ROOT) -> Path:
    """Path of a trained model for the current inputs, training it first if needed."""
    target = model_path(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / "train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            print(f"==> training model {target.name} (data changed or first run)", flush=True)
            started = time.monotonic()
            with tempfile.TemporaryDirectory(dir=target.parent) as out:
                subprocess.run(
                    [str(assistant_python(root)), "-m", "rasa", "train",
                     "--fixed-model-name", target.stem.replace(".tar", ""), "--out", out,
                     "--config", "config.yml", "--domain", "domain.yml", "--data", "data"],
                    cwd=root, check=True,
                )
                produced = next(Path(out).glob("*.tar.gz"))
                os.replace(produced, target)
            print(f"==> trained in {time.monotonic() - started:.0f} s", flush=True)
        else:
            print(f"==> model up to date: {target.name}", flush=True)
    local = root / "models"
    local.mkdir(exist_ok=True)
    link = local / "current.tar.gz"
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        link.symlink_to(target)
    except OSError:
        shutil.copy2(target, link)
    return target
