# 物业客服助手 — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
RASA   := $(PY) -m rasa
export PYTHONDONTWRITEBYTECODE := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help venv migrate train validate run test test-py test-stories crossval eval bench clean

help:
	@echo "make run    - install what is missing, train if the data changed, start the local stack"
	@echo "make test   - install what is missing and run the whole test suite"
	@echo "make train | validate | test-stories | crossval | eval | bench | clean"

venv:
	@scripts/ensure-venv.sh

migrate: venv
	@$(PY) -m bot migrate

train: venv
	@$(PY) -m bot train

validate: venv
	@$(RASA) data validate --data data --domain domain.yml --config config.yml

run: venv
	@$(PY) -m bot stack

# Dialogue test stories through the trained model; any wrong prediction fails.
test-stories: train
	@$(RASA) test core --model models/current.tar.gz --stories tests/stories \
	    --fail-on-prediction-errors --out results/stories

test-py: train
	@$(PY) -m pytest

test: validate test-stories test-py

crossval: venv
	@$(RASA) test nlu --nlu data --config config.yml --cross-validation --folds 5 --out results/crossval

# Measured NLU quality: held-out intent/entity scores, 5-fold cross-validation -> results/eval.md.
eval: train
	@$(PY) scripts/evaluate_nlu.py

# Benchmarks (latency targets live here, never in timed unit tests); reports in results/.
bench: train
	@$(PY) scripts/bench.py

clean:
	rm -rf models results var/log .pytest_cache
