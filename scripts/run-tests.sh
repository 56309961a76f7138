#!/usr/bin/env bash
# `make test`'s suites, arranged for a 2-core machine. The assistant runtime's checks (Rasa's data
# validation, the dialogue stories, tests/assistant: mostly one core, loading the model) run in
# the background while lint and the service unit tests take the other core. The end-to-end tests
# start whole stacks and measure their answers, so they run alone afterwards, and only when
# everything before them passed.
set -uo pipefail
cd "$(dirname "$0")/.."
SVC_PY=.venv/bin/python
ASSIST_PY=.venv-assistant/bin/python
mkdir -p results
log=results/assistant-checks.log

(
    set -e
    echo "==> Rasa data validation"
    "$ASSIST_PY" -m rasa data validate --data data --domain domain.yml --config config.yml
    echo "==> dialogue stories"
    "$ASSIST_PY" -m rasa test core --model models/current.tar.gz --stories tests/stories \
        --fail-on-prediction-errors --out results/stories
    echo "==> tests/assistant"
    "$ASSIST_PY" -m pytest tests/assistant
) > "$log" 2>&1 &
assistant=$!
trap 'kill "$assistant" 2>/dev/null' INT TERM

failed=()
echo "==> lint (ruff, mypy)"
"$SVC_PY" -m ruff check bot actions tests scripts && "$SVC_PY" -m mypy || failed+=(lint)
echo "==> tests/unit"
"$SVC_PY" -m pytest tests/unit || failed+=(tests/unit)
echo "==> the assistant runtime's checks (ran alongside; $log)"
wait "$assistant" || failed+=("the assistant runtime's checks")
cat "$log"
if [ ${#failed[@]} -gt 0 ]; then
    printf '==> failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "==> tests/e2e"
exec "$SVC_PY" -m pytest tests/e2e
