"""The grid runner end to end: real simulators, real headless Locust processes, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SMOKE = """
[scenario]
name = "t"
duration_s = {duration}
warmup_s = 1
spawn_rate = 50
order = "interleaved"
stop_timeout_s = 10
request_timeout_s = 30

[[targets]]
label = "BF16"
url = "{bf16}"

[[targets]]
label = "QUANT"
url = "{quant}"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [4]
max_new_tokens = [16]

[[workloads]]
name = "chat"
locustfile = "locustfiles/chat.py"
api = "chat"
concurrency = [4]
max_new_tokens = [16]
"""


def _grid(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", "grid", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _scenario(tmp_path: Path, bf16: str, quant: str, duration: int = 4) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(SMOKE.format(bf16=bf16, quant=quant, duration=duration))
    return path


def _cells(run_dir: Path) -> list[Path]:
    return sorted(p.parent for p in run_dir.rglob("metadata.json"))


def test_smoke_grid_produces_every_file_per_cell(tmp_path: Path, simulator_factory) -> None:  # type: ignore[no-untyped-def]
    bf16 = simulator_factory("--profile", "rtx2000-ada-16gb-bf16")
    quant = simulator_factory("--profile", "rtx2000-ada-16gb-awq")
    done = _grid(str(_scenario(tmp_path, bf16.url, quant.url)), "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    cells = _cells(run_dir)
    assert [str(c.relative_to(run_dir)) for c in cells] == [
        "BF16/batch/c4_m16",
        "BF16/chat/c4_m16",
        "QUANT/batch/c4_m16",
        "QUANT/chat/c4_m16",
    ]
    for cell in cells:
        names = {p.name for p in cell.iterdir()}
        for expected in (
            "locust_stats.csv",
            "locust_stats_history.csv",
            "locust_failures.csv",
            "locust_report.html",
            "locust_llm_stats.csv",
            "server_metrics.csv",
            "metadata.json",
            "COMPLETE",
        ):
            assert expected in names, (cell, sorted(names))
        assert any(n.startswith("locust_requests_") for n in names)
        meta = json.loads((cell / "metadata.json").read_text())
        assert meta["status"] == "completed"
        assert meta["model"] and meta["max_model_len"] and meta["metrics_available"]
        assert meta["command"][2] == "locust"
        requests = pd.concat(pd.read_csv(p) for p in cell.glob("locust_requests_*.csv"))
        assert requests["success"].all()
        # server-side truth equals what the client counted
        assert meta["server_token_delta"]["generation"] == requests["output_tokens"].sum()
        # every prompt is unique from its first token: the server's prefix cache never hits
        assert meta["server_prefix_cache"] == {"hits": 0, "queries": requests["prompt_tokens"].sum()}
        metrics = pd.read_csv(cell / "server_metrics.csv")
        assert {"running", "waiting", "kv_cache_usage_perc", "generation_tokens_total"} <= set(metrics.columns)
    # The grid ends with a per-cell table, results.json with every capacity-table figure, the report hint.
    from analysis.capacity import CAPACITY_COLUMNS

    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema_version"] == 1 and results["columns"] == CAPACITY_COLUMNS and len(results["cells"]) == 4
    assert all(set(cell) == set(CAPACITY_COLUMNS) and cell["throughput_tok_s"] > 0 for cell in results["cells"])
    table = done.stderr[done.stderr.index("target  ") :]
    assert "tok/s" in table and "TTFT p95" in table and len([ln for ln in table.splitlines() if "QUANT" in ln]) == 2
    assert f"make report RUN={run_dir}" in done.stderr
    assert "[1/4] running BF16 / batch / 4 users / 16 tok (ETA" in done.stderr
    line = next(
        ln for ln in done.stderr.splitlines() if ln.startswith("[4/4] completed QUANT / chat / 4 users / 16 tok (")
    )
    figures = results["cells"][3]
    assert " tok/s, " in line and " completed, 0 failed, TTFT p50 " in line and figures["target_label"] == "QUANT"


def test_dry_run_starts_nothing(tmp_path: Path) -> None:
    done = _grid(
        str(_scenario(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")),
        "--dry-run",
        "--out",
        str(tmp_path / "runs"),
    )
    assert done.returncode == 0, done.stderr
    assert "4 cell(s)" in done.stdout and "-u 4" in done.stdout
    assert not (tmp_path / "runs").exists()


def test_target_down_at_preflight_starts_nothing(tmp_path: Path, sim) -> None:  # type: ignore[no-untyped-def]
    done = _grid(str(_scenario(tmp_path, sim.url, "http://127.0.0.1:9")), "--out", str(tmp_path / "runs"))
    assert done.returncode == 1
    assert "target 'QUANT': http://127.0.0.1:9/v1/models is unreachable" in done.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())  # not even an empty run


def test_invalid_scenario_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SMOKE.format(bf16="http://a:1", quant="http://b:1", duration=4).replace("warmup_s", "warmupp_s"))
    done = _grid(str(bad))
    assert done.returncode == 2
    assert f"error: {bad}: [scenario]: unknown key 'warmupp_s' (allowed: description, duration_s," in done.stderr


def test_target_killed_mid_grid_is_recorded_and_others_go_on(tmp_path: Path, simulator_factory) -> None:  # type: ignore[no-untyped-def]
    bf16 = simulator_factory()
    quant = simulator_factory("--profile", "rtx2000-ada-16gb-awq")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadgen",
            "grid",
            str(_scenario(tmp_path, bf16.url, quant.url, duration=5)),
            "--out",
            str(tmp_path / "runs"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # inside the first (BF16) cell
    bf16.stop()
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err[-2000:]
    run_dir = Path(out.strip().splitlines()[-1])
    statuses = {
        str(c.relative_to(run_dir)): json.loads((c / "metadata.json").read_text())["status"] for c in _cells(run_dir)
    }
    assert statuses["BF16/batch/c4_m16"] == "failed"
    assert statuses["QUANT/batch/c4_m16"] == "completed"
    assert statuses["QUANT/chat/c4_m16"] == "completed"
    assert "did not complete" in err and "BF16 / chat" in err


def test_interrupt_then_resume_completes_without_duplicates(tmp_path: Path, simulator_factory) -> None:  # type: ignore[no-untyped-def]
    bf16 = simulator_factory()
    quant = simulator_factory("--profile", "rtx2000-ada-16gb-awq")
    scenario = _scenario(tmp_path, bf16.url, quant.url, duration=4)
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "grid", str(scenario), "--out", str(tmp_path / "runs")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(runs.rglob("COMPLETE"))) < 1:
        time.sleep(0.2)
    time.sleep(1.5)  # now inside the second cell
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    run_dir = next(runs.iterdir())
    finished = {p.parent for p in run_dir.rglob("COMPLETE")}
    assert 1 <= len(finished) < 4
    interrupted = [
        c for c in _cells(run_dir) if json.loads((c / "metadata.json").read_text())["status"] == "interrupted"
    ]
    assert len(interrupted) == 1
    assert "] interrupted " in err and "results: " in err  # shown as interrupted; the finished cells' table
    first_mtimes = {c: (c / "COMPLETE").stat().st_mtime_ns for c in finished}

    resumed = _grid("--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{4 - len(finished)} unfinished cell(s)" in resumed.stderr
    assert len(list(run_dir.rglob("COMPLETE"))) == 4
    assert {c: (c / "COMPLETE").stat().st_mtime_ns for c in finished} == first_mtimes  # untouched
    for cell in _cells(run_dir):
        requests = pd.concat(pd.read_csv(p) for p in cell.glob("locust_requests_*.csv"))
        assert requests["request_id"].is_unique


def test_seed_env_interface_writes_out_csv(tmp_path: Path, sim) -> None:  # type: ignore[no-untyped-def]
    out_csv = tmp_path / "day004_batch_capacity_rtx16gb_bf16.csv"
    env = {
        "GPU_NAME": "RTX2000-16GB-BF16",
        "OUT_CSV": str(out_csv),
        "URL": f"{sim.url}/v1/completions",
        "DURATION_S": "10",
        "WARMUP_S": "0",
        "MAX_NEW_TOKENS": "16",
    }
    done = subprocess.run(
        ["make", "-s", "grid", f"GRID_ARGS=--out {tmp_path / 'runs'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out_csv)
    assert list(table["gpu_name"]) == ["RTX2000-16GB-BF16", "RTX2000-16GB-BF16"]
    assert list(table["concurrency"]) == [16, 32]
    assert (table["max_new_tokens"] == 16).all()
    assert (table["throughput_tok_s"] > 0).all() and (table["p95_latency_ms"] > 0).all()
    assert (table["source"] == "request_log").all() and (table["token_check"] == "ok").all()
