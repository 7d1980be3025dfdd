# ha-storage-flows: every target installs what it needs (Debian 12 host, as root), idempotently.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Offline-friendly Prefect defaults for every command run from here (environment still wins).
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90

.PHONY: deps host-deps python-deps demo setup bench-failover bench-backup bench-volumes test test-unit test-flow test-server test-lab lint lab-up lab-status lab-down clean blocks deployments serve

deps: host-deps python-deps

host-deps:
	bash scripts/install-host-packages.sh

python-deps: $(STAMP)

$(STAMP): pyproject.toml | host-deps
	@# A stock Debian python3 needs python3-venv, and python3-dev to build libvirt-python.
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq python3-venv)
	@$(PYTHON) -c 'import os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' \
		2>/dev/null || (apt-get update -qq && apt-get install -y -qq python3-dev)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## The main job on the embedded lab.
demo: deps
	$(PY) -m flows.failover

## Build (or confirm) the replicated volume only.
setup: deps
	$(PY) -m flows.setup

## The failover drill as the flow and as a plain shell sequence, side by side (figures, no asserts).
bench-failover: deps
	$(PY) -m benchmarks.failover

## The backup flow vs raw borg create/extract on one data set (figures, no asserts).
bench-backup: deps
	$(PY) -m benchmarks.backup

## Setup and the failover drill with 1 to 4 volumes on the lab (figures, no asserts).
bench-volumes: deps
	$(PY) -m benchmarks.volumes

## Lint, then every test tier: unit, flow (Prefect harness) and lab (real VMs). Ends with the lab down.
## The lab tier and the others run at once (scripts/run-tests.sh); `$(PY) -m pytest` runs them in turn.
test: deps lint
	bash scripts/run-tests.sh

test-unit: deps
	$(PY) -m pytest tests/unit

test-flow: deps
	$(PY) -m pytest tests/flow

test-server: deps
	$(PY) -m pytest tests/server

test-lab: deps
	$(PY) -m pytest -m lab

lint: deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy flows tasks blocks deployments benchmarks

## Register the project's Prefect block types and save this cluster's blocks (secrets generated once).
blocks: deps
	$(PY) -m blocks register

## The scheduled deployments and their next run times (no server needed); serve them from here.
deployments: deps
	$(PY) -m deployments list

serve: deps
	$(PY) -m deployments serve

lab-up lab-status lab-down: deps
	$(PY) -m flows.lab $(@:lab-%=%)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
