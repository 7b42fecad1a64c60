"""Cells that run until the answer is known: --until-ci against the simulator, one process and two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.locustrun import run_locust

pytestmark = pytest.mark.slow

MAX_S = 90

AUTO = """
[scenario]
name = "auto"
duration_s = "auto"
target_ci_pct = 10
max_duration_s = {max_s}
warmup_s = 2
spawn_rate = 50
stop_timeout_s = 10
request_timeout_s = 30

[[targets]]
label = "SIM"
url = "{url}"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [8]
max_new_tokens = [16]
options = {{ output_range_ratio = 0.5 }}
"""


FAST = ("--fixed-ttft-ms", "40", "--fixed-itl-ms", "10")  # requests of 0.1-0.3 s: batches of well under 1 s


def test_auto_cell_stops_early_with_ci_reached_and_records_it(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    scenario = tmp_path / "auto.toml"
    scenario.write_text(AUTO.format(url=sim.url, max_s=MAX_S))
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "loadgen", "grid", str(scenario), "--out", str(tmp_path / "runs")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=MAX_S + 90,
        env={**os.environ},
    )
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    (meta_path,) = (tmp_path / "runs").rglob("metadata.json")
    meta = json.loads(meta_path.read_text())
    cmd = meta["command"]
    assert cmd[cmd.index("--until-ci") + 1] == "10" and cmd[cmd.index("-t") + 1] == f"{MAX_S}s"
    assert meta["status"] == "completed" and meta["stop_reason"] == "ci_reached", meta.get("until_ci")
    assert meta["max_duration_s"] == MAX_S and meta["target_ci_pct"] == 10
    assert 2 < meta["stopped_after_s"] < MAX_S / 2 and meta["duration_s"] == meta["stopped_after_s"]
    assert took < MAX_S  # it ended well before the cap
    est = meta["until_ci"]["estimate"]
    assert est["batches"] >= 5
    assert est["throughput_half_width_pct"] <= 10 and est["p95_half_width_pct"] <= 10
    assert (meta_path.parent / "locust_stop.json").is_file()


def test_processes_2_decide_on_the_whole_load_and_cap_at_run_time(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    args = ("--processes", "2", "--max-new-tokens", "16", "--output-range-ratio", "0.5", "--warmup", "2")
    run = run_locust(tmp_path, "batch.py", sim.url, *args, "--until-ci", "10", users=8, run_time="60s", name="p2")
    assert run.proc.returncode == 0, run.output[-3000:]
    stop = json.loads(Path(f"{run.prefix}_stop.json").read_text())
    assert stop["stop_reason"] == "ci_reached" and stop["stopped_after_s"] < 20, stop
    reqs = run.requests()
    assert reqs.worker_id.nunique() == 2
    # The decision counted both workers' requests: those that started inside its window, all finished.
    t0 = reqs.start_wall_s.min()
    window = reqs[(reqs.start_wall_s >= t0 + 2) & (reqs.start_wall_s <= t0 + stop["stopped_after_s"])]
    assert stop["estimate"]["requests"] == int(window.success.sum())

    capped = run_locust(tmp_path, "batch.py", sim.url, *args, "--until-ci", "0.01", users=8, run_time="6s", name="cap")
    assert capped.proc.returncode == 0, capped.output[-3000:]
    stop = json.loads(Path(f"{capped.prefix}_stop.json").read_text())
    assert stop["stop_reason"] == "max_duration" and stop["stopped_after_s"] == 6.0
