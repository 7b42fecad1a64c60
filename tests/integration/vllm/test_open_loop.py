"""Open loop against real vLLM: a scenario with rates = [2, 4, 8] runs one cell per rate on the BF16
server, sends on schedule, counts tokens as vLLM does, and analysis reports offered vs achieved rate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.integration.vllm.gridrun import BF16_LABEL, cell_dirs, failures, requests_of, run_grid
from tests.integration.vllm.servers import VllmTargets

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

RATES = (2, 4, 8)
SCENARIO = """
[scenario]
name = "vllm_rates"
duration_s = 10
warmup_s = 2
spawn_rate = 32
stop_timeout_s = 30
request_timeout_s = 60

[grid]
rates = [2, 4, 8]
concurrency = [32]
max_new_tokens = [16]

[[targets]]
label = "{label}"
url = "{url}"

[[workloads]]
name = "chat"
locustfile = "locustfiles/chat.py"
api = "chat"
options = {{ arrival = "poisson", arrival_seed = 5, dataset = "loadgen/data/sharegpt_sample.json" }}
"""


def test_a_rates_scenario_runs_open_loop_against_vllm(vllm_pair: VllmTargets, tmp_path: Path) -> None:
    scenario = tmp_path / "rates.toml"
    scenario.write_text(SCENARIO.format(label=BF16_LABEL, url=vllm_pair.urls["bf16"]))
    done, run_dir = run_grid(scenario, tmp_path / "runs")
    assert done.returncode == 0, done.stderr[-4000:]
    assert run_dir is not None
    cells = cell_dirs(run_dir)
    assert [c.name for c in cells] == sorted(f"r{r}_m16" for r in RATES)
    for cell in cells:
        meta = json.loads((cell / "metadata.json").read_text())
        assert meta["status"] == "completed" and meta["arrival_rate"] in RATES
        requests = requests_of(cell)
        assert failures(requests).empty, failures(requests).to_dict("records")[:3]
        assert requests["schedule_lag_ms"].median() < 10
        # dataset rows set max_tokens from their recorded replies; vLLM's counters agree with ours
        assert requests["max_new_tokens"].nunique() > 1
        assert meta["server_token_delta"]["generation"] == requests["output_tokens"].sum()
    out = tmp_path / "capacity.csv"
    cap = subprocess.run(
        [sys.executable, "-m", "analysis", "capacity", str(run_dir), "-o", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cap.returncode == 0, cap.stderr[-3000:]
    table = pd.read_csv(out).sort_values("offered_rate_req_s")
    assert list(table["offered_rate_req_s"]) == [float(r) for r in RATES]
    assert table["achieved_rate_req_s"].gt(0).all() and table["arrivals"].gt(0).all()
    assert (table["p95_latency_from_schedule_ms"] >= table["p95_latency_ms"]).all()
