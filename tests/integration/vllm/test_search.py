"""A capacity search against a real vLLM server (tiny model, short outputs): it converges, and the cell it
names as capacity really meets the SLO when its request log is reduced by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runformat.records import INTERRUPTED_PREFIX
from tests.conftest import REPO
from tests.integration.vllm.conftest import require_vllm
from tests.integration.vllm.gridrun import BF16_LABEL, scenario_text
from tests.integration.vllm.servers import VllmTargets, start_targets

pytestmark = pytest.mark.vllm

TOKENS = 8
MAX_USERS = 16


@pytest.fixture(scope="module")
def bf16(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmTargets]:
    """Only the BF16 server: one is enough for a search, and starts in half the time."""
    require_vllm()
    try:
        server = start_targets(tmp_path_factory.mktemp("vllm-search"), ("bf16",))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


def single_user_latency_ms(url: str, model: str) -> float:
    """Median end-to-end time of a few lone streamed requests of TOKENS tokens (the first warms up)."""
    times = []
    for i in range(6):
        body = {"model": model, "prompt": f"Request {i}: tell a story.", "max_tokens": TOKENS, "ignore_eos": True}
        request = urllib.request.Request(
            f"{url}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        t0 = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times[1:]))


def test_a_concurrency_search_converges_and_its_capacity_cell_meets_the_slo(bf16: VllmTargets, tmp_path: Path) -> None:
    model = bf16.model("bf16")
    # A bound a lone user meets with room, that batching many users on a CPU server eventually breaks.
    bound_ms = round(3.0 * single_user_latency_ms(bf16.urls["bf16"], model))
    workload = {"name": "batch", "locustfile": "locustfiles/batch.py", "api": "completions", "users": 1}
    workload |= {"tokens": TOKENS, "options": {"prompt_tokens": 32, "ignore_eos": True}}
    text = scenario_text({BF16_LABEL: bf16.urls["bf16"]}, [workload], duration_s=8, warmup_s=2)
    scenario = tmp_path / "search.toml"
    scenario.write_text(text + f"\n[search]\nmax = {MAX_USERS}\nresolution_pct = 0\nmax_attempts = 2\n")
    cmd = [sys.executable, "-m", "loadgen", "search", str(scenario), "--out", str(tmp_path / "runs")]
    cmd += ["--slo", f"p95_latency_ms<={bound_ms}"]
    done = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=420, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    (line,) = json.loads((run_dir / "search.json").read_text())["lines"]
    result = line["result"]
    assert result["capacity"] is not None and 1 <= result["capacity"] <= MAX_USERS, line
    assert result["stop_reason"].startswith(("resolved", "meets every SLO at --max", "saturated")), result
    if result["failing_load"] is not None:  # bracketed one user apart; the upper side failed, or stayed
        assert result["failing_load"] == result["capacity"] + 1  # undecided at every attempt (not claimed)
        upper = [p for p in line["probes"] if p["load"] == result["failing_load"]][-1]
        assert upper["outcome"] == "fail" or (upper["outcome"] == "undecided" and upper["attempt"] == 2), upper
    # the capacity cell, reduced by hand: requests started in its window, p95 of their end-to-end latency
    capacity_probe = next(p for p in reversed(line["probes"]) if p["load"] == result["capacity"])
    cell = run_dir / capacity_probe["cell"]
    meta = json.loads((cell / "metadata.json").read_text())
    reqs = pd.concat(pd.read_csv(f) for f in cell.glob("locust_requests_*.csv"))
    t0 = reqs.start_wall_s.min()
    inside = (reqs.start_wall_s >= t0 + float(meta["warmup_s"])) & (reqs.start_wall_s <= t0 + float(meta["duration_s"]))
    cut_at_stop = reqs.error.astype("string").str.startswith(INTERRUPTED_PREFIX).fillna(False)
    window = reqs[inside & ~cut_at_stop]
    assert len(window) >= 10 and window.success.astype(bool).all()
    assert float(np.percentile(window.e2e_ms, 95)) <= bound_ms
