"""Rate search against the simulator in fixed-timing mode, where the capacity in req/s is known in advance:
every request takes a fixed time D, arrivals are evenly spaced, and a pool of P users can carry a rate R
without dropping exactly when each user is free again by its next turn, P/R ≥ D: capacity = P/D req/s."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

TTFT_MS, ITL_MS, TOKENS, POOL = 20.0, 20.0, 20, 4
SERVICE_S = (TTFT_MS + (TOKENS - 1) * ITL_MS) / 1000.0  # 0.4 s a request
CAPACITY_REQ_S = POOL / SERVICE_S  # 10 req/s
# Probes 3, 6, 12 (drops), then bisection 9, 10.5 (drops): at 9 req/s each user is free 44 ms before its
# next turn, at 10.5 it is still busy 19 ms (plus client overhead) after it; a 20 % resolution stops there.
SCENARIO = f"""
[scenario]
name = "rate-truth"
duration_s = 5
warmup_s = 1
spawn_rate = 100
stop_timeout_s = 5
request_timeout_s = 10

[scrape]
enabled = false

[[targets]]
label = "FIXED"
url = "{{url}}"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [{POOL}]
rates = [1.0]
max_new_tokens = [{TOKENS}]
options = {{{{ prompt_tokens = 32, ignore_eos = true, arrival = "constant" }}}}

[search]
over = "rate"
start = 3
max = 48
resolution_pct = 20
"""


def test_rate_search_finds_the_rate_where_a_fixed_service_time_pool_starts_dropping(  # type: ignore[no-untyped-def]
    simulator_factory, tmp_path: Path
) -> None:
    sim = simulator_factory("--fixed-ttft-ms", f"{TTFT_MS:g}", "--fixed-itl-ms", f"{ITL_MS:g}")
    scenario = tmp_path / "rate.toml"
    scenario.write_text(SCENARIO.format(url=sim.url))
    cmd = [sys.executable, "-m", "loadgen", "search", str(scenario), "--out", str(tmp_path / "runs")]
    # a loose SLO that a dozen requests decide (Wilson bound on 0 errors): the pool's drops bind here
    cmd += ["--slo", "error_rate<=0.3"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    (line,) = json.loads((run_dir / "search.json").read_text())["lines"]
    result = line["result"]
    outcomes = {p["load"]: p["outcome"] for p in line["probes"]}
    assert outcomes == {3: "pass", 6: "pass", 12: "fail", 9: "pass", 10.5: "fail"}, line["probes"]
    assert (result["capacity"], result["passing_load"], result["failing_load"]) == (9, 9, 10.5)
    assert result["passing_load"] < CAPACITY_REQ_S < result["failing_load"]
    assert result["binding"] == "sustained"
    failing = run_dir / "FIXED" / "batch" / f"r10.5_m{TOKENS}"
    assert (failing / "COMPLETE").exists() and list(failing.glob("*drops*.csv"))
    # the service time really was D: the capacity the bracket holds is the one the timing implies
    reqs = pd.concat(pd.read_csv(f) for f in (run_dir / "FIXED" / "batch" / f"r9_m{TOKENS}").glob("*requests*.csv"))
    assert reqs.e2e_ms.median() == pytest.approx(SERVICE_S * 1000.0, abs=15.0)
    assert POOL / (reqs.e2e_ms.median() / 1000.0) < result["failing_load"]

    (row,) = list(csv.DictReader((run_dir / "capacity_search.csv").read_text().splitlines()))
    assert row["over"] == "rate" and float(row["capacity"]) == 9 and float(row["failing_load"]) == 10.5
    assert row["binding_slo"] == "sustained" and row["capacity_cell"] == f"FIXED/batch/r9_m{TOKENS}"
    # a few-second window: a request more or less moves the rates by ~0.25 req/s
    assert 7.5 < float(row["req_per_s"]) < 10.0 and 6.75 < float(row["goodput_req_s"]) <= float(row["req_per_s"])
    assert "9 req/s [9, 10.5] binding sustained" in done.stderr
    assert len(line["probes"]) == 5  # every probe decided at its first attempt
