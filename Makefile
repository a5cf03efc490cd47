# Two commands do everything on a fresh machine with Python 3.11 and pip: `make demo`, `make test`.
SHELL := /bin/bash
UV_VERSION := 0.9.30
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3.11
UV := $(shell command -v uv 2>/dev/null || echo python3.11 -m uv)

.PHONY: setup test test-fast lint format demo dev sandbox bench bench-sandbox

.venv/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3.11 -m pip install --quiet "uv==$(UV_VERSION)"
	# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on these machines) every process
	# would otherwise compile dagster, dbt and dlt again, doubling each code location's load time.
	$(UV) sync --frozen --compile-bytecode
	touch $@

# The dbt manifest the definitions read: parsed once here (no warehouse needed), not at every load.
DBT_SOURCES := $(shell find aptrinsic_dbt -path aptrinsic_dbt/target -prune -o -type f \( -name '*.sql' -o -name '*.yml' \) -print)
aptrinsic_dbt/target/manifest.json: .venv/.synced $(DBT_SOURCES)
	cd aptrinsic_dbt && ../.venv/bin/dbt parse --quiet

setup: .venv/.synced aptrinsic_dbt/target/manifest.json  ## .venv exactly as uv.lock pins it, and the dbt manifest

# Two pytest-xdist workers: most tests wait on subprocesses, servers and sockets, so two of them share
# these 2 cores well. Every test makes its own ports, folders and databases (the demo test alone writes
# the project's .dagster_home).
test: setup  ## the whole suite against the local sandbox
	.venv/bin/python -m pytest -n 2

test-fast: setup  ## unit and quick integration tests, for the edit-test loop (~2.5 minutes here)
	.venv/bin/python -m pytest -n 2 -m "not slow"

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

demo: setup  ## the main job: sandbox -> Dagster -> aptrinsic.duckdb, checks, a printed summary
	.venv/bin/python -m aptrinsic_sandbox.demo

dev: setup  ## the sandbox plus `dagster dev` (UI on http://127.0.0.1:3000)
	.venv/bin/python -m aptrinsic_sandbox.dev

sandbox: setup
	.venv/bin/python -m aptrinsic_sandbox --port 8765

bench: setup  ## the side-by-side benchmark, the daily job's cost, memory by scale, the merge DELETE and Dagster's record of a year's range, at full scale; SCALE=0.1 for a quick one
	.venv/bin/python -m benchmarks.bench --scale $(or $(SCALE),1)
	.venv/bin/python -m benchmarks.daily_cost --scale $(or $(SCALE),1)
	.venv/bin/python -m benchmarks.memory --scales $(if $(SCALE),$(SCALE),0.25 0.5 1.0)
	.venv/bin/python -m benchmarks.merge_delete
	.venv/bin/python -m benchmarks.event_storage

bench-sandbox: setup  ## how fast the sandbox serves
	.venv/bin/python -m benchmarks.sandbox_throughput
