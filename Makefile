# 物业客服助手 — the two commands a newcomer needs are `make run` and `make test`.
# Two runtimes, each its own pinned venv (scripts/ensure-venv.sh builds both):
#   .venv            requirements/service.lock    gateway, worker, staff bot, actions, CLI, tests, lint
#   .venv-assistant  requirements/assistant.lock  Rasa 3.6 (train, serve, test stories, NLU evaluation)
SHELL := /bin/bash
.DEFAULT_GOAL := help

SVC_PY    := .venv/bin/python
ASSIST_PY := .venv-assistant/bin/python
RASA      := $(ASSIST_PY) -m rasa
export PYTHONDONTWRITEBYTECODE := 1
export TF_CPP_MIN_LOG_LEVEL := 2
# Browser tests drive Debian's /usr/bin/chromium (make browser); Playwright never downloads one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: help venv console-assets browser haproxy migrate train validate run lint unit clock-check test test-py test-stories chaos crossval eval bench clean

help:
	@echo "make run    - install what is missing, train if the data changed, start the local stack"
	@echo "make test   - install what is missing and run the whole test suite"
	@echo "make unit   - the fast tests: no trained model, no servers, no PostgreSQL"
	@echo "make clock-check - the unit tests with the clock moved to other dates"
	@echo "make chaos  - faults under load: replicas killed, PostgreSQL restarted, Redis stopped (results/faults.md)"
	@echo "make train | validate | lint | test-stories | crossval | eval | bench | clean"

venv:
	@scripts/ensure-venv.sh

# The staff console's front-end packages (bot/console/package-lock.json) -> bot/console/node_modules,
# reinstalled only when the lock is newer than the last install (the stamp inside node_modules).
CONSOLE_DIR   := bot/console
CONSOLE_STAMP := $(CONSOLE_DIR)/node_modules/.installed-from-lock
console-assets: $(CONSOLE_STAMP)

$(CONSOLE_STAMP): $(CONSOLE_DIR)/package-lock.json $(CONSOLE_DIR)/package.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm is missing; the staff console's front-end packages" \
	    "are installed with it: apt-get install nodejs npm (Node.js 18 or newer)" >&2; exit 1; }
	@echo "==> installing the staff console's front-end packages from $(CONSOLE_DIR)/package-lock.json"
	@npm ci --prefix $(CONSOLE_DIR) --no-audit --no-fund
	@touch $@

# Debian's Chromium and a CJK font for the browser tests (tests/browser.py).
browser:
	@scripts/ensure-browser.sh

# Debian's HAProxy: in front of several Rasa, action-server and gateway processes (bot/app/balancer.py).
haproxy:
	@scripts/ensure-haproxy.sh

migrate: venv
	@$(SVC_PY) -m bot migrate

# The service CLI trains with the assistant interpreter (.venv-assistant, or env ASSISTANT_PYTHON).
train: venv
	@$(SVC_PY) -m bot train

validate: venv
	@$(RASA) data validate --data data --domain domain.yml --config config.yml

run: venv console-assets
	@scripts/ensure-haproxy.sh --if-needed
	@$(SVC_PY) -m bot stack

lint: venv
	@$(SVC_PY) -m ruff check bot actions tests scripts
	@$(SVC_PY) -m mypy

unit: venv console-assets
	@$(SVC_PY) -m pytest tests/unit -m "not postgres"
	@$(ASSIST_PY) -m pytest tests/assistant

# The unit suite with the system clock moved to other dates (a new year, a leap day, years
# past the bundled holiday data): a test that depends on today's date fails here first.
CLOCK_CHECK_DATES := 2026-12-31T23:30:00+08:00 2028-02-29T09:00:00+08:00 2031-07-01T03:00:00+08:00
clock-check: venv
	@for when in $(CLOCK_CHECK_DATES); do echo "==> unit tests at $$when"; \
	    WUYE_TEST_NOW=$$when $(SVC_PY) -m pytest -q tests/unit -m "not postgres" || exit 1; done

# Dialogue test stories through the trained model; any wrong prediction fails.
test-stories: train
	@$(RASA) test core --model models/current.tar.gz --stories tests/stories \
	    --fail-on-prediction-errors --out results/stories

test-py: train
	@$(SVC_PY) -m pytest tests/unit tests/e2e
	@$(ASSIST_PY) -m pytest tests/assistant

# Everything: lint, Rasa's data validation, the dialogue stories and the assistant runtime's tests
# alongside the service unit tests, then the end-to-end tests alone (scripts/run-tests.sh).
test: console-assets browser haproxy train
	@scripts/run-tests.sh

# Faults under load, alone (make test-py runs them with the rest of tests/e2e): kill -9 a Rasa
# replica, a gateway, an action server, a worker; restart PostgreSQL; stop Redis for 30 s.
# Needs root (pg_ctlcluster, the Redis server's process); the table goes to results/faults.md.
chaos: train haproxy
	@$(SVC_PY) -m pytest tests/e2e -m faults

crossval: venv
	@$(RASA) test nlu --nlu data --config config.yml --cross-validation --folds 5 --out results/crossval

# Measured NLU quality: held-out intent/entity scores, 5-fold cross-validation -> results/eval.md.
eval: train
	@$(ASSIST_PY) scripts/evaluate_nlu.py
	@$(SVC_PY) scripts/evaluate_urgency.py

# Benchmarks (latency targets live here, never in timed unit tests); reports in results/.
bench: train
	@$(SVC_PY) scripts/bench.py
	@$(SVC_PY) scripts/bench_console.py
	@$(SVC_PY) scripts/bench_reports.py

clean:
	rm -rf models results var/log .pytest_cache
