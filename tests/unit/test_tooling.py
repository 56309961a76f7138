"""The two-command setup: the Python check and the training fingerprint."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bot.app.model_cache import TRAINING_INPUTS, fingerprint
from bot.settings import PROJECT_ROOT


def test_missing_python310_is_named_clearly(tmp_path: Path):
    shutil.copytree(PROJECT_ROOT / "scripts", tmp_path / "scripts")
    shutil.copytree(PROJECT_ROOT / "requirements", tmp_path / "requirements")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    for tool in ("bash", "sha256sum", "cut", "cat", "dirname", "readlink", "mkdir"):
        found = shutil.which(tool)
        if found:
            (empty_bin / tool).symlink_to(found)
    result = subprocess.run(["bash", "scripts/ensure-venv.sh"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": str(empty_bin), "HOME": str(tmp_path / "home")})
    assert result.returncode == 1
    assert "Python 3.10 is required" in result.stderr and "apt-get install python3.10" in result.stderr
    assert not (tmp_path / ".venv").exists() and not (tmp_path / ".venv-assistant").exists()


def test_fingerprint_follows_training_inputs_only(tmp_path: Path):
    for name in TRAINING_INPUTS:
        source = PROJECT_ROOT / name
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    assert fingerprint(tmp_path) == fingerprint(PROJECT_ROOT)
    (tmp_path / "README.md").write_text("not a training input")
    assert fingerprint(tmp_path) == fingerprint(PROJECT_ROOT)
    nlu = tmp_path / "data" / "nlu" / "chitchat.yml"
    nlu.write_text(nlu.read_text(encoding="utf-8") + "      - 您好呀\n", encoding="utf-8")
    assert fingerprint(tmp_path) != fingerprint(PROJECT_ROOT)


def test_only_an_absent_server_is_a_reason_to_skip():
    from tests.fixtures import server_absent

    assert server_absent('connection to server at "127.0.0.1", port 5432 failed: Connection refused')
    assert server_absent("Error 113 connecting to 10.0.0.9:6379. No route to host.")
    assert not server_absent('FATAL:  password authentication failed for user "postgres"')
    assert not server_absent('FATAL:  database "postgres" does not exist')


def test_ci_never_skips_the_server_tests():
    text = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "export CI=true" in text and text.rstrip().endswith("make test")
