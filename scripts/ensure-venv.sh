#!/usr/bin/env bash
# Creates (or reuses) the project's virtualenv.
#
# The venv lives in a cache directory keyed by the lock file and the interpreter, and
# `.venv` is a symlink to it, so a fresh clone on a machine that already built the same
# lock (CI, a second checkout) reuses it in a second instead of reinstalling TensorFlow.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  local candidates=()
  [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
  candidates+=(python3.10)
  for p in "$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
    [ -x "$p" ] && candidates+=("$p")
  done
  for c in "${candidates[@]}"; do
    if "$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
      command -v "$c" 2>/dev/null || echo "$c"
      return 0
    fi
  done
  return 1
}

if ! PY=$(find_python); then
  cat >&2 <<'MSG'
error: Python 3.10 is required (Rasa Open Source 3.6 runs on Python 3.8-3.10) and none was found.
Install it, then run the command again, for example:
  Debian/Ubuntu:  apt-get install python3.10 python3.10-venv python3.10-dev
  pyenv:          pyenv install 3.10.13
Or point PYTHON at an existing interpreter: make test PYTHON=/path/to/python3.10
MSG
  exit 1
fi

PYVER=$("$PY" -c 'import sys; print(sys.version.split()[0])')
KEY=$( (cat requirements.lock; echo "$PYVER") | sha256sum | cut -c1-16)
CACHE=${WUYE_CACHE_DIR:-$HOME/.cache/wuye-assistant}
TARGET="$CACHE/venv-$KEY"
mkdir -p "$CACHE"

if [ -L .venv ] && [ "$(readlink .venv)" = "$TARGET" ] && [ -f "$TARGET/.complete" ]; then
  exit 0
fi

exec 9>"$CACHE/venv.lock"
flock 9
if [ ! -f "$TARGET/.complete" ]; then
  echo "==> building virtualenv for Python $PYVER in $TARGET (first run takes a few minutes)"
  rm -rf "$TARGET"
  "$PY" -m venv "$TARGET"
  "$TARGET/bin/python" -m pip install --quiet --disable-pip-version-check "pip==24.3.1"
  "$TARGET/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
  "$TARGET/bin/python" -m pip check
  touch "$TARGET/.complete"
fi
# A real directory named .venv (made by hand) is left alone only if it is complete.
if [ -e .venv ] && [ ! -L .venv ]; then
  echo "==> replacing hand-made .venv with the cached, lock-matched one"
  rm -rf .venv
fi
ln -sfn "$TARGET" .venv
echo "==> .venv -> $TARGET"
