"""The grid runner's decisions without processes: metadata, verdicts, a dead target's cells skipped.

A fake launcher stands in for Locust: it writes what a Locust run would leave (a request log) and
returns a finished process, so `run_cell` and `run` run end to end in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import pytest

from orchestrator.grid import CellResult, GridRunner, HostFacts, cell_metadata, cell_verdict
from orchestrator.scenario import expand, scenario_from_text
from orchestrator.targets import TargetInfo
from runformat.layout import COMPLETE_MARKER, METADATA_FILE, CellStatus
from runformat.records import REQUEST_COLUMNS
from tests.unit.orchestrator.test_scenario import MINIMAL

INFO = TargetInfo("m", 4096, ("m",), "0.1", False)
FACTS = HostFacts("2.0", "0.1.0", "abc", 2, "host", "2026-01-01T00:00:00+00:00")


class FinishedProcess:
    def __init__(self, rc: int) -> None:
        self.pid, self.returncode = 4242, rc

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode

    def poll(self) -> int:
        return self.returncode


def fake_locust(successes: int, rc: int = 0):  # type: ignore[no-untyped-def]
    calls: list[list[str]] = []

    def launch(cmd: list[str], out: IO[bytes], env: dict[str, str]) -> FinishedProcess:
        calls.append(cmd)
        prefix = Path(cmd[cmd.index("--csv") + 1])
        rows = [",".join(REQUEST_COLUMNS)]
        for i in range(successes):
            row = dict.fromkeys(REQUEST_COLUMNS, "")
            row.update(request_id=f"r{i}", success="1")
            rows.append(",".join(row[c] for c in REQUEST_COLUMNS))
        Path(f"{prefix}_requests_host-1.csv").write_text("\n".join(rows) + "\n")
        assert "OPENAI_API_KEY" not in " ".join(cmd)
        return FinishedProcess(rc)

    launch.calls = calls  # type: ignore[attr-defined]
    return launch


def _runner(tmp_path: Path, launch) -> GridRunner:  # type: ignore[no-untyped-def]
    scenario = scenario_from_text(MINIMAL, "t.toml", "t")
    runner = GridRunner(scenario, tmp_path / "run", launch=launch)
    runner.target_info = {t.label: INFO for t in scenario.targets}
    return runner


def test_cell_metadata_records_the_cell() -> None:
    scenario = scenario_from_text(MINIMAL, "t.toml", "t")
    cell = expand(scenario)[0]
    meta = cell_metadata(scenario, cell, INFO, ["locust", "-u", "16"], FACTS)
    assert meta["status"] == "running" and meta["users"] == cell.users and meta["warmup_s"] == 2
    assert meta["duration_s"] == 10.0 and meta["model"] == "m" and meta["host"] == "host"
    assert "duration_mode" not in meta


@pytest.mark.parametrize(
    ("interrupted", "rc", "completed", "status"),
    [
        (False, 0, 10, CellStatus.COMPLETED),
        (True, 0, 10, CellStatus.INTERRUPTED),
        (False, 1, 10, CellStatus.FAILED),
        (False, 0, 0, CellStatus.FAILED),
    ],
)
def test_cell_verdict(interrupted: bool, rc: int, completed: int, status: CellStatus, tmp_path: Path) -> None:
    assert cell_verdict(interrupted, rc, completed, tmp_path / "locust.log")[0] is status


def test_a_master_that_gave_up_on_its_workers_says_so(tmp_path: Path) -> None:
    log = tmp_path / "locust.log"
    log.write_text("[2026-01-01 00:00:00,000] h/ERROR/locust.main: Gave up waiting for workers to connect\n")
    status, detail = cell_verdict(False, 1, 0, log)
    assert status is CellStatus.FAILED and "gave up waiting for its workers" in detail and str(log) in detail


def test_run_cell_writes_metadata_then_the_marker(tmp_path: Path) -> None:
    runner = _runner(tmp_path, fake_locust(successes=5))
    cell = expand(runner.scenario)[0]
    result = runner.run_cell(cell)
    assert result.status is CellStatus.COMPLETED
    meta = json.loads((result.path / METADATA_FILE).read_text())  # type: ignore[operator]
    assert meta["status"] == "completed" and meta["completed_requests"] == 5 and meta["exit_code"] == 0
    assert meta["locust_pid"] == 4242 and (result.path / COMPLETE_MARKER).exists()  # type: ignore[operator]


def test_a_cell_that_completed_nothing_fails_without_a_marker(tmp_path: Path) -> None:
    result = _runner(tmp_path, fake_locust(successes=0)).run_cell(expand(scenario_from_text(MINIMAL, "t.toml", "t"))[0])
    assert result.status is CellStatus.FAILED and "no request completed" in result.detail
    assert not (result.path / COMPLETE_MARKER).exists()  # type: ignore[operator]


def test_a_dead_target_gets_its_later_cells_skipped(tmp_path: Path) -> None:
    launch = fake_locust(successes=3)
    runner = _runner(tmp_path, launch)
    runner.target_alive = lambda label: label != "A"  # type: ignore[method-assign]
    cells = expand(runner.scenario)
    results: list[CellResult] = runner.run(cells)
    by_target = {t: [r.status for r in results if r.cell.target.label == t] for t in ("A", "B")}
    assert by_target["A"][0] is CellStatus.FAILED  # it stopped answering during its first cell
    assert set(by_target["A"][1:]) == {CellStatus.SKIPPED}
    assert set(by_target["B"]) == {CellStatus.COMPLETED}
    assert len(launch.calls) == len(by_target["B"]) + 1  # type: ignore[attr-defined]
