# stripe-elt: the README's two commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export DAGSTER_HOME := $(CURDIR)/.dagster
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test lint format ui sandbox webhooks bench lock clean clean-warehouse

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as in many
# container images), Python would otherwise compile every module it imports from source in
# every process (about 1.3 s of each dbt start).
$(VENV)/.installed: requirements.lock | $(BIN)/uv
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

env: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

## Run the whole pipeline (sandbox -> DuckDB -> dbt -> workbook) and print a summary.
run: env
	$(BIN)/python -m orchestration.run

## Lint, then the test suite (slow cases are behind the `slow` marker), one worker per core (at
## most four), each taking whole test files so that a file's shared fixtures are built once.
test: env lint
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	mkdir -p .state && DUCKDB_PATH=$(CURDIR)/.state/lint.duckdb $(BIN)/sqlfluff lint dbt_project --processes 2

format: env
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	mkdir -p .state && DUCKDB_PATH=$(CURDIR)/.state/lint.duckdb $(BIN)/sqlfluff fix dbt_project --processes 2

## The Dagster UI on http://127.0.0.1:3000
ui: env
	$(BIN)/dagster dev -w workspace.yaml

## Serve the Stripe sandbox on its own (http://127.0.0.1:12111).
sandbox: env
	$(BIN)/python -m sandbox serve

## Receive Stripe webhooks on http://127.0.0.1:8787/webhooks/stripe (needs STRIPE_WEBHOOK_SECRET).
webhooks: env
	$(BIN)/python -m ingestion.webhooks

## Benchmarks (docs/benchmarks.md): `make bench SIZES=10k RUNS=1` for a quick look.
SIZES ?= 10k,100k,1m
RUNS ?= 3
bench: env
	$(BIN)/python -m benchmarks --sizes $(SIZES) --runs $(RUNS)

lock: | $(BIN)/uv
	$(BIN)/uv pip compile --quiet requirements.in -o requirements.lock --python $(BIN)/python --custom-compile-command "make lock"

# The warehouse and the loads' state only (the sandbox's datasets and the environment stay).
clean-warehouse:
	rm -rf warehouse/*.duckdb warehouse/*.duckdb.wal .state/dlt

clean:
	rm -rf .state .dagster warehouse/*.duckdb warehouse/*.duckdb.wal output dbt_project/target dbt_project/logs
