"""`loadgen grid --duration/--warmup/--users/--spawn-rate`: a real grid run with the scenario's settings replaced,
recorded in every cell's metadata and in run.json, and kept by a resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runformat.layout import COMPLETE_MARKER, METADATA_FILE, RUN_RECORD
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SCENARIO = """
[scenario]
name = "o"
duration_s = 600
warmup_s = 60
spawn_rate = 1
stop_timeout_s = 10
request_timeout_s = 30

[[targets]]
label = "SIM"
url = "{url}"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [32]
max_new_tokens = [8]
"""


def _grid(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "loadgen", "grid", *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)


def test_overrides_run_record_and_survive_a_resume(sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = tmp_path / "o.toml"
    scenario.write_text(SCENARIO.format(url=sim.url))
    flags = ["--duration", "3", "--warmup", "1", "--users", "2", "--spawn-rate", "20"]
    done = _grid(scenario, "--out", tmp_path / "runs", *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scenario settings replaced: duration_s = 3.0, warmup_s = 1.0, users = [2], spawn_rate = 20.0" in done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    cell = run_dir / "SIM" / "batch" / "c2_m8"  # the override's users name the cell
    meta = json.loads((cell / METADATA_FILE).read_text())
    assert (meta["users"], meta["duration_s"], meta["warmup_s"], meta["spawn_rate"]) == (2, 3.0, 1.0, 20.0)
    recorded = {"duration_s": 3.0, "warmup_s": 1.0, "users": [2], "spawn_rate": 20.0}
    assert meta["grid_overrides"] == recorded
    assert json.loads((run_dir / RUN_RECORD).read_text())["grid_overrides"] == recorded
    assert meta["command"][meta["command"].index("-t") + 1] == "3s"

    (cell / COMPLETE_MARKER).unlink()  # as if the run had been interrupted in this cell
    resumed = _grid("--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "1 unfinished cell(s)" in resumed.stderr
    again = json.loads((cell / METADATA_FILE).read_text())
    assert (again["users"], again["duration_s"], again["grid_overrides"]) == (2, 3.0, recorded)
    assert not (run_dir / "SIM" / "batch" / "c32_m8").exists()


def test_a_bad_override_exits_2_naming_the_flag(tmp_path: Path) -> None:
    scenario = tmp_path / "o.toml"
    scenario.write_text(SCENARIO.format(url="http://127.0.0.1:9"))
    bad = _grid(scenario, "--out", tmp_path / "runs", "--duration", "5", "--warmup", "5")
    assert bad.returncode == 2
    assert "error: --warmup 5: expected 0 <= warm-up < duration (5 s)" in bad.stderr
    assert not (tmp_path / "runs").exists()
