# `make demo` and `make test` each do the whole set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

# torch first, pinned, so that nothing later pulls a CUDA build from the registry.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m epochal.demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PIP) -e '.[dev,bench]'
	$(PY) bench/log_overhead.py
	$(PY) bench/trainer_overhead.py

clean:
	rm -rf $(VENV) epochal-runs
