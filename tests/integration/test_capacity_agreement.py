"""Request log vs Locust's own CSV on a steady simulator run: the exact and the approximate reductions of
the same run agree on what Locust's CSV can express — latency percentiles within one of Locust's buckets
(it keeps response times rounded to 10 ms between 100 ms and 1 s), output tokens within 1%."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis.tables import capacity_from_paths
from tests.integration.locustrun import run_locust

pytestmark = pytest.mark.slow


def test_request_log_and_locust_csv_agree_within_one_percent(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Fixed timing makes the run steady: every request takes 150 + 47 × 10 ms, whatever the load.
    sim = simulator_factory("--fixed-ttft-ms", "150", "--fixed-itl-ms", "10")
    run = run_locust(tmp_path, "batch.py", sim.url, "--max-new-tokens", "48", users=8, run_time="8s")
    assert run.proc.returncode == 0, run.output[-3000:]
    exact = capacity_from_paths([run.prefix]).iloc[0]
    csv_only = tmp_path / "csv_only" / "run"
    csv_only.parent.mkdir()
    for suffix in ("_stats.csv", "_stats_history.csv"):
        shutil.copy(f"{run.prefix}{suffix}", f"{csv_only}{suffix}")
    approx = capacity_from_paths([csv_only]).iloc[0]
    assert (exact["source"], approx["source"]) == ("request_log", "locust_csv")
    assert exact["requests"] >= 40 and exact["failures"] == 0
    for column in ("p50_latency_ms", "p95_latency_ms"):
        # ~620 ms a request: Locust's bucket there is 10 ms (1.6%); a percentile of rounded times is one bucket.
        assert 100 < exact[column] < 1000 and abs(approx[column] - exact[column]) <= 10.0, column
    # Locust's response_length is our output tokens, so its Average Content Size is the mean output length.
    stats = {row["Name"]: row for row in run.locust_stats()}
    assert float(stats["Aggregated"]["Average Content Size"]) == pytest.approx(exact["output_tokens_mean"], rel=0.01)
