#!/usr/bin/env bash
# Creates (or reuses) the project's two virtualenvs, one per runtime:
#   service    requirements/service.lock    -> .venv            (gateway, worker, staff bot,
#              action server, migrations, the `python -m bot` CLI, tests, lint)
#   assistant  requirements/assistant.lock  -> .venv-assistant  (Rasa 3.6: train, serve, test)
#
#   scripts/ensure-venv.sh                 both
#   scripts/ensure-venv.sh service         one of them
#
# Each venv lives in a cache directory keyed by its runtime, its lock file and the
# interpreter, and the link in the checkout points at it, so a fresh clone on a machine
# that already built the same lock (CI, a second checkout) reuses it in a second instead
# of reinstalling TensorFlow.
set -euo pipefail
cd "$(dirname "$0")/.."

# A machine's pip config may name local package folders that do not exist; pip warns once
# per package about each. Those lines say nothing about the install: keep the rest.
pip_quietly() {
  "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2)
}

usage() {
  echo "usage: scripts/ensure-venv.sh [assistant|service]...  (no argument: both)" >&2
  exit 2
}

RUNTIMES=("$@")
[ ${#RUNTIMES[@]} -eq 0 ] && RUNTIMES=(service assistant)
for runtime in "${RUNTIMES[@]}"; do
  case "$runtime" in
    assistant|service) ;;
    *) usage ;;
  esac
done

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
CACHE=${WUYE_CACHE_DIR:-$HOME/.cache/wuye-assistant}

ensure_runtime() {
  local runtime=$1 lock="requirements/$1.lock" link key target
  case "$runtime" in
    service) link=.venv ;;
    assistant) link=.venv-assistant ;;
  esac
  if [ ! -f "$lock" ]; then
    echo "error: $lock is missing" >&2
    exit 1
  fi
  key=$( (cat "$lock"; echo "$PYVER") | sha256sum | cut -c1-16)
  target="$CACHE/venv-$runtime-$key"

  if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ] && [ -f "$target/.complete" ]; then
    return 0
  fi

  mkdir -p "$CACHE"
  # One builder per runtime at a time: a second `make` waits here, then finds it complete.
  exec 9>"$CACHE/venv-$runtime.lock"
  flock 9
  if [ ! -f "$target/.complete" ]; then
    echo "==> building the $runtime virtualenv for Python $PYVER in $target (first run takes a few minutes)"
    rm -rf "$target"
    "$PY" -m venv "$target"
    pip_quietly "$target/bin/python" -m pip install --quiet --disable-pip-version-check "pip==24.3.1"
    pip_quietly "$target/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$lock"
    "$target/bin/python" -m pip check
    touch "$target/.complete"
  fi
  # A real directory made by hand under the link's name is replaced.
  if [ -e "$link" ] && [ ! -L "$link" ]; then
    echo "==> replacing hand-made $link with the cached, lock-matched one"
    rm -rf "$link"
  fi
  ln -sfn "$target" "$link"
  exec 9>&-
  echo "==> $link -> $target"
}

for runtime in "${RUNTIMES[@]}"; do
  ensure_runtime "$runtime"
done
