# The two commands a newcomer needs: `make demo` and `make test`. Everything else is usage.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCENARIO ?=
GRID_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup test lint format sim demo clean bench grid report

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@bash scripts/ensure_chromium.sh
	@touch $(STAMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check simulator loadgen analysis locustfiles tests scripts
	$(VENV)/bin/ruff format --check simulator loadgen analysis locustfiles tests scripts
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format simulator loadgen analysis locustfiles tests scripts
	$(VENV)/bin/ruff check --fix simulator loadgen analysis locustfiles tests scripts

# Both default targets in the foreground: the seed's BF16 server on :8000 and its quantized twin on :8001.
sim: setup
	@trap 'kill 0' INT TERM; \
	$(PY) -m simulator --profile rtx2000-ada-16gb-bf16 --port 8000 & \
	$(PY) -m simulator --profile rtx2000-ada-16gb-awq --port 8001 & \
	wait

# A scenario file (SCENARIO=scenarios/....toml), or the seed's interface: GPU_NAME=... OUT_CSV=... URL=... make grid
grid: setup
	$(PY) -m loadgen grid $(SCENARIO) $(GRID_ARGS)

demo: setup
	$(PY) scripts/demo.py

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
