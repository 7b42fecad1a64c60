"""A vLLM server killed in the middle of a cell: the cell is recorded as failed, with failed requests in
the request log, and the grid runner exits with its ordinary error code instead of crashing.

A throwaway server takes the kill, so the session's BF16/AWQ pair stays up for the other tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.vllm.conftest import require_vllm
from tests.integration.vllm.gridrun import (
    BF16_LABEL,
    cell_dirs,
    failures,
    grid_command,
    requests_of,
    run_dir_from,
    scenario_text,
)
from tests.integration.vllm.servers import VllmTargets, start_targets

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

WORKLOAD = {
    "name": "batch",
    "locustfile": "locustfiles/batch.py",
    "api": "completions",
    "users": 4,
    "tokens": 256,
    "options": {"prompt_tokens": 128},
}


@pytest.fixture
def doomed_server(tmp_path: Path) -> Iterator[VllmTargets]:
    require_vllm()
    try:
        server = start_targets(tmp_path / "doomed", names=("bf16",))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


def _wait_for_records(runs: Path, timeout_s: float) -> None:
    """Until the cell has logged a few finished requests, i.e. the load is really flowing."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        logs = list(runs.rglob("locust_requests_*.csv"))
        if logs and sum(len(p.read_text().splitlines()) - 1 for p in logs) >= 4:
            return
        time.sleep(0.25)
    raise AssertionError(f"no requests were recorded within {timeout_s}s under {runs}")


def test_server_killed_mid_cell_is_recorded_as_failures(doomed_server: VllmTargets, tmp_path: Path) -> None:
    scenario = tmp_path / "fault.toml"
    scenario.write_text(scenario_text({BF16_LABEL: doomed_server.urls["bf16"]}, [WORKLOAD], duration_s=16))
    proc = subprocess.Popen(
        grid_command(scenario, tmp_path / "runs"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_records(tmp_path / "runs", timeout_s=60)
        # SIGKILL to the whole group (API server and engine core): a crash, not a graceful shutdown.
        os.killpg(doomed_server.pid("bf16"), signal.SIGKILL)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    run_dir = run_dir_from(out)
    assert run_dir is not None, out
    (cell,) = cell_dirs(run_dir)
    meta = json.loads((cell / "metadata.json").read_text())
    assert meta["status"] == "failed"
    assert not (cell / "COMPLETE").exists()
    requests = requests_of(cell)
    assert requests["success"].any(), "requests before the kill succeed"
    failed = failures(requests)
    assert len(failed) > 0, "requests after the kill are recorded as failures"
    assert failed["error"].str.contains("connection").all(), failed["error"].unique()
    assert "TINY-LLAMA-BF16" in err and "did not complete" in err
