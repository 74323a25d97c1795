# Lomevexi data governance. Quick start: `make demo`, `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
AIRFLOW_STAMP := .local/airflow/.migrated
ORDERS ?= 2000000
DEMO_ORDERS ?= 3000

.PHONY: help setup demo test test-unit test-integration test-e2e lint typecheck ui lock bench bench-checksums browser clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(AIRFLOW_STAMP): $(STAMP)
	@mkdir -p .local/airflow
	bin/airflow db migrate > .local/airflow/migrate.log 2>&1 || (tail -20 .local/airflow/migrate.log; exit 1)
	@touch $@

setup: $(STAMP) $(AIRFLOW_STAMP) ## virtualenv, pinned install, Airflow home with a SQLite metadata DB (idempotent)

demo: setup ## seed the embedded store and run one whole nightly cycle of every DAG
	bin/make-local-key
	source bin/env.sh && $(PY) scripts/demo.py --orders $(DEMO_ORDERS)

browser: ## Debian's Chromium and ChromeDriver for the UI tests (installs when missing)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

lint: $(STAMP) ## ruff (incl. Airflow rules) and mypy on include/
	$(VENV)/bin/ruff check dags plugins include tests scripts
	$(VENV)/bin/mypy

test: setup browser lint ## the whole suite: unit, integration (SQLite, PostgreSQL), end to end
	source bin/env.sh && $(VENV)/bin/pytest -p no:randomly -q --durations=15  # the slowest tests, against the 10-minute budget

test-unit: setup ## unit tests only
	source bin/env.sh && $(VENV)/bin/pytest -q -m unit

test-integration: setup ## integration tests only
	source bin/env.sh && $(VENV)/bin/pytest -q -m integration

test-e2e: setup browser ## end-to-end tests only
	source bin/env.sh && $(VENV)/bin/pytest -q -m e2e

ui: demo ## start Airflow locally (api-server, scheduler, dag-processor) on http://localhost:8080
	bin/airflow standalone

lock: ## re-resolve requirements.in into exact pins in requirements.txt
	@rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.in
	(echo "# Exact pins produced by 'make lock' from requirements.in (Python 3.11). Do not edit by hand."; \
	  .lock-venv/bin/pip freeze --exclude-editable) > requirements.txt
	@rm -rf .lock-venv

bench: setup ## performance benchmark on the local PostgreSQL (ORDERS=2000000)
	$(PY) -m pip install --quiet --disable-pip-version-check py-spy==0.4.3  # for --profile
	$(PY) -m bench.run --orders $(ORDERS)

bench-checksums: setup ## checksum speed by text window size, side by side (SQLite, no server needed)
	$(PY) -m bench.checksum_windows

clean: ## remove the local state (store, keys, backups, reports, Airflow home)
	rm -rf .local
