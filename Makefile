# `make demo` and `make test` each do the whole set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed
WEB_DEPS := web/node_modules/.package-lock.json
WEB_BUILD := src/epochal/server/static/index.html
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json
CHROMIUM := /usr/bin/chromium
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
PORT ?= 8765

.PHONY: setup web browser postgres demo test screenshots bench clean

setup: $(STAMP) $(WEB_BUILD)

# torch first, pinned, so that nothing later pulls a CUDA build from the registry.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	touch $(STAMP)

# The web UI: TypeScript built by Vite into the package, where `epochal ui` serves it from.
web: $(WEB_BUILD)

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_DEPS)

$(WEB_BUILD): $(WEB_DEPS) $(WEB_SOURCES)
	cd web && npm run build

# The browser tests drive Debian's Chromium; never a browser downloaded by a tool.
browser: $(CHROMIUM)

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	elif command -v sudo >/dev/null; then sudo apt-get update && sudo apt-get install -y chromium; \
	else echo "the browser tests need Chromium at $(CHROMIUM): apt-get install chromium" >&2; exit 1; fi

# The team-store tests start a PostgreSQL server of their own (tests/postgres_server.py) from
# Debian's binaries; the cluster the package makes and starts on 5432 is not used.
postgres:
	@if [ -n "$(PG_INITDB)" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y postgresql; \
	elif command -v sudo >/dev/null; then sudo apt-get update && sudo apt-get install -y postgresql; \
	else echo "the team-store tests need PostgreSQL's server (initdb, pg_ctl): apt-get install postgresql" >&2; exit 1; fi

demo: setup
	$(PY) -m epochal.demo
	@echo "serving the demo's store; stop with Ctrl-C"
	$(VENV)/bin/epochal ui --port $(PORT)

# EPOCHAL_REQUIRE_SERVERS=1: a missing server fails its tests instead of skipping them.
test: setup browser postgres
	EPOCHAL_REQUIRE_SERVERS=1 $(PY) -m pytest -q

# Re-make the README's dashboard pictures in docs/ from a demo run.
screenshots: setup browser
	EPOCHAL_DOCS_DIR=docs $(PY) -m pytest -q tests/e2e -k screenshot

bench: setup browser
	$(PIP) -e '.[dev,bench]'
	$(PY) bench/log_overhead.py
	$(PY) bench/trainer_overhead.py
	$(PY) bench/ddp_overhead.py
	$(PY) bench/gpu_overhead.py
	$(PY) bench/system_metrics.py
	$(PY) bench/dashboard.py
	$(PY) bench/runs_at_scale.py
	$(PY) bench/dynamics.py
	$(PY) bench/faults.py
	$(PY) bench/team_store.py

clean:
	rm -rf $(VENV) epochal-runs web/node_modules src/epochal/server/static
