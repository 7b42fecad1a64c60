"""`make bench`'s driver in its tiny configuration: it runs end to end and writes its JSON (no speed checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)  # every section of make bench, each in its tiny configuration, one after another
def test_bench_driver_quick_writes_its_json(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    capacity = json.loads((tmp_path / "loadgen_capacity_quick.json").read_text())
    assert {run["client"] for run in capacity["runs"]} >= {"ours", "naive"}
    for run in capacity["runs"]:
        assert run["events_in_window"] > 0 and run["client_cpu_s"] >= 0
        assert run["requests"] > 0 and run["delay_events"] > 0
    firehose = json.loads((tmp_path / "loadgen_firehose_quick.json").read_text())
    assert all(run["events_in_window"] > 0 for run in firehose["runs"])
    analysis = json.loads((tmp_path / "analysis_speed_quick.json").read_text())
    assert analysis["records"] == 20000 and analysis["capacity_cli_best_wall_s"] > 0
    sim = json.loads((tmp_path / "sim_capacity_quick.json").read_text())
    assert sim["streams"] == 16 and sim["throughput_tok_s"] > 0
    coverage = json.loads((tmp_path / "ci_coverage_quick.json").read_text())
    assert [c["condition"] for c in coverage["conditions"]] == ["varied", "waves"]
    for condition in coverage["conditions"]:
        assert condition["slices"] == 2 and condition["truth"]["throughput_tok_s"] > 0
    master = json.loads((tmp_path / "master_capacity_quick.json").read_text())
    assert [step["streams"] for step in master["steps"]] == [4, 8]
    for step in master["steps"]:
        assert step["master_exit_code"] == 0 and step["records_in_window"] > 0 and step["lost_records"] == 0
        assert step["compressed_bytes_per_record"] > 0
