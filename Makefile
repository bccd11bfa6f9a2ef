# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/data/dagster_home
export ACS_KHAOS_DATA_DIR ?= $(CURDIR)/data

.PHONY: setup chromium nginx demo test dev lint bench chaos clean

# Every file pinned by hash (scripts/lock.py): production's lock plus the test tools' lock.
# The project itself is built with the locked setuptools, not a fresh unpinned download.
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Headless Chromium renders the month-end pack in its test (Debian's package).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not installed: the report rendering test will be skipped"; fi; }

# Debian's nginx fronts the real webserver in the proxy test (deploy/nginx.conf). Installed,
# never started as a service: the test runs its own instance on free loopback ports.
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	  else echo "nginx not installed: the proxy test will be skipped"; fi; }

setup: $(STAMP)
	(umask 077 && mkdir -p $(DAGSTER_HOME))
	test -f $(DAGSTER_HOME)/dagster.yaml || cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## Run the main job: a full integration cycle against the sandbox, through Dagster.
demo: setup
	$(BIN)/acs-khaos demo

## Run the whole test suite (after the linters: style and the layer contracts).
# Both cores (CI has two): test files are spread over workers, a file's tests stay together.
# The 30 slowest tests are listed at the end, so a run shows where the suite's time goes.
PYTEST_ARGS ?= -n auto --dist loadfile --durations=30
test: lint chromium nginx
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Start the Dagster UI (and daemon) on the same local instance the demo used.
# The UI is `acs-khaos webserver --local` (Dagster's app, plus the report links at /files/,
# on loopback with no proxy), the daemon runs beside it; Ctrl-C stops both: the daemon, a
# background job, ignores SIGINT, so the EXIT trap stops it (the INT/TERM trap exits through
# it whichever sh runs the recipe). test_report_files holds it.
DEV_PORT ?= 3000
dev: setup
	$(BIN)/dagster-daemon run -w workspace.yaml & daemon=$$!; \
	trap 'kill $$daemon 2>/dev/null; wait $$daemon' EXIT; trap 'exit 130' INT TERM; \
	$(BIN)/acs-khaos webserver --local -w workspace.yaml -h 127.0.0.1 -p $(DEV_PORT)

## Benchmarks at brand scale (50k SKUs, 3M units); figures go to BENCHMARKS.md.
bench: setup
	$(BIN)/python scripts/bench.py --size $${BENCH_SIZE:-brand} --write

## Fault-injection soak against the sandbox; figures go to RELIABILITY.md.
chaos: setup
	$(BIN)/python scripts/chaos.py

# The layers (.importlinter): defs -> dagster_kit -> flows -> store : connectors -> domain; the
# domain does no I/O and reads no settings; flows never import Dagster; defs and dagster_kit
# import no SQL or HTTP.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf data .pytest_cache
