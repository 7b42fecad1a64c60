"""The run lock, orphan detection, atomic cell replacement, cell verdicts and the recorded target URLs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.grid import cell_verdict, completed_requests, fresh_cell_dir
from orchestrator.runlock import LOCK_FILE, RunLocked, hold_run_lock, live_locust, pid_alive
from orchestrator.runrecord import record_target_urls, recorded_target_urls


def _cell(run_dir: Path, **meta: object) -> Path:
    cell = run_dir / "BF16" / "batch" / "c4_m16"
    cell.mkdir(parents=True)
    (cell / "metadata.json").write_text(json.dumps({"host": os.uname().nodename, **meta}))
    return cell


def test_a_second_grid_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 4242, "host": os.uname().nodename}))
    with (
        pytest.raises(RunLocked, match="another grid is running in it \\(pid 4242"),
        hold_run_lock(tmp_path, alive=lambda pid: True),
    ):
        pass
    with hold_run_lock(tmp_path, alive=lambda pid: False):  # its grid is gone: a stale lock is taken over
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_from_another_host_is_refused(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunLocked, match="another host"), hold_run_lock(tmp_path):
        pass


def test_resume_is_refused_while_an_orphan_locust_of_the_run_still_runs(tmp_path: Path) -> None:
    cell = tmp_path / "BF16" / "batch" / "c4_m16"
    cell.mkdir(parents=True)
    # stands in for an orphan Locust: a live process whose command line names the cell
    orphan = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", str(cell)], stdin=subprocess.PIPE)
    try:
        (cell / "metadata.json").write_text(json.dumps({"host": os.uname().nodename, "locust_pid": orphan.pid}))
        assert live_locust(tmp_path) == [(cell, orphan.pid)]
        with (
            pytest.raises(RunLocked, match=f"still runs: pid {orphan.pid} \\(BF16/batch/c4_m16\\)"),
            hold_run_lock(tmp_path),
        ):
            pass
    finally:
        orphan.communicate(b"", timeout=10)
    assert not pid_alive(orphan.pid)
    assert live_locust(tmp_path) == []
    with hold_run_lock(tmp_path):
        pass


def test_a_reused_pid_is_not_an_orphan(tmp_path: Path) -> None:
    _cell(tmp_path, locust_pid=os.getpid())  # alive, but its command line does not name the cell
    assert live_locust(tmp_path) == []


def test_a_cell_is_replaced_in_one_step(tmp_path: Path) -> None:
    cell = _cell(tmp_path, status="running")
    (cell / "locust_requests_h-1.csv").write_text("old")
    fresh_cell_dir(tmp_path, cell)
    assert cell.is_dir() and list(cell.iterdir()) == []
    assert not any((tmp_path / ".replaced").iterdir())


def test_a_cell_without_a_completed_request_failed(tmp_path: Path) -> None:
    (tmp_path / "locust_requests_h-1.csv").write_text("request_id,success\na,0\nb,0\n")
    assert completed_requests(tmp_path) == 0
    status, detail = cell_verdict(False, 0, 0, tmp_path / "locust.log")
    assert status == "failed" and "no request completed" in detail
    (tmp_path / "locust_requests_h-2.csv").write_text("request_id,success\nc,1\n")
    assert completed_requests(tmp_path) == 1
    assert cell_verdict(False, 0, 1, tmp_path / "locust.log") == ("completed", "")
    assert cell_verdict(True, 0, 1, tmp_path / "locust.log")[0] == "interrupted"


def test_resume_uses_the_recorded_urls_and_records_overrides(tmp_path: Path) -> None:
    _cell(tmp_path, target_label="BF16", target_url="http://old:1", started_at="2026-01-01T00:00:00")
    assert recorded_target_urls(tmp_path) == {"BF16": "http://old:1"}  # a run from before run.json
    record_target_urls(tmp_path, {"BF16": "http://a:1"}, {})
    record_target_urls(tmp_path, {"BF16": "http://b:2"}, {"BF16": "http://b:2"})
    assert recorded_target_urls(tmp_path) == {"BF16": "http://b:2"}
    record = json.loads((tmp_path / "run.json").read_text())
    assert [o["urls"] for o in record["target_url_overrides"]] == [{"BF16": "http://b:2"}]


def test_resume_plans_against_the_recorded_urls_unless_overridden(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    run_dir = tmp_path / "t-20260101T000000Z"
    run_dir.mkdir()
    (run_dir / "scenario.toml").write_text(
        '[scenario]\nname = "t"\nduration_s = 5\n\n[[targets]]\nlabel = "BF16"\nurl = "http://original:1"\n\n'
        '[[workloads]]\nname = "batch"\nlocustfile = "locustfiles/batch.py"\nconcurrency = [1]\nmax_new_tokens = [8]\n'
    )
    record_target_urls(run_dir, {"BF16": "http://recorded:2"}, {"BF16": "http://recorded:2"})
    plan = CliRunner().invoke(main, ["grid", "--resume", str(run_dir), "--dry-run"])
    assert plan.exit_code == 0, plan.output
    assert "--host http://recorded:2" in plan.output and "original" not in plan.output
    flag = CliRunner().invoke(
        main, ["grid", "--resume", str(run_dir), "--dry-run", "--target-url", "BF16=http://new:3"]
    )
    assert "--host http://new:3" in flag.output


def test_a_missing_docs_file_stops_the_grid_up_front(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[scenario]\nname = "t"\nduration_s = 5\n\n[[targets]]\nlabel = "BF16"\nurl = "http://x:1"\n\n'
        '[[workloads]]\nname = "batch"\nlocustfile = "locustfiles/batch.py"\nconcurrency = [1]\n'
        f'max_new_tokens = [8]\noptions = {{ docs = "{tmp_path / "missing.txt"}" }}\n'
    )
    result = CliRunner().invoke(main, ["grid", str(scenario), "--dry-run"])
    assert result.exit_code == 2 and "workload 'batch'" in result.output and "missing.txt" in result.output


@pytest.mark.parametrize("value", ["0", "-1"])
def test_request_timeout_must_be_positive(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from locust.argument_parser import get_empty_argument_parser

    from loadgen.options import add_arguments

    parser = get_empty_argument_parser(add_help=False)
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--request-timeout", value])
    assert f"--request-timeout: must be seconds > 0, got {value}" in capsys.readouterr().err


def test_scenario_request_timeout_must_be_positive(tmp_path: Path) -> None:
    from orchestrator.scenario import ScenarioError, load_scenario

    path = tmp_path / "s.toml"
    path.write_text(
        '[scenario]\nname = "t"\nduration_s = 5\nrequest_timeout_s = 0\n\n[[targets]]\nlabel = "A"\nurl = "http://x:1"\n\n'
        '[[workloads]]\nname = "batch"\nlocustfile = "locustfiles/batch.py"\nconcurrency = [1]\nmax_new_tokens = [8]\n'
    )
    with pytest.raises(ScenarioError, match="request_timeout_s: expected seconds > 0"):
        load_scenario(path)


def test_a_full_disk_leaves_the_cell_failed_not_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from orchestrator import grid
    from orchestrator.scenario import expand, load_scenario
    from orchestrator.targets import TargetInfo

    path = tmp_path / "s.toml"
    path.write_text(
        '[scenario]\nname = "t"\nduration_s = 5\n\n[[targets]]\nlabel = "A"\nurl = "http://127.0.0.1:9"\n\n'
        '[[workloads]]\nname = "batch"\nlocustfile = "locustfiles/batch.py"\nconcurrency = [1, 2]\n'
        "max_new_tokens = [8]\n\n[scrape]\nenabled = false\n"
    )
    scenario = load_scenario(path)
    runner = grid.GridRunner(scenario, tmp_path / "run")
    runner.target_info["A"] = TargetInfo("m", None, ("m",), None, False)
    real_write = grid.write_json_atomic

    def full_disk(*args: object, **kwargs: object) -> object:
        raise OSError(errno.ENOSPC, "No space left on device")

    def write_once_then_full(target: Path, data: object) -> object:
        monkeypatch.setattr(grid, "write_json_atomic", full_disk)  # the disk fills after the first write
        return real_write(target, data)

    monkeypatch.setattr(grid, "write_json_atomic", write_once_then_full)
    monkeypatch.setattr(grid.subprocess, "Popen", full_disk)
    results = runner.run(expand(scenario))
    assert [r.status for r in results] == ["failed"]  # the grid stops: every later cell would fail alike
    assert "No space left on device" in results[0].detail
    meta = json.loads((results[0].path / "metadata.json").read_text())  # type: ignore[operator]
    assert meta["status"] == "failed"
