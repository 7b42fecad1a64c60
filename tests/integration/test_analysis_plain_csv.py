"""Analysis reads a folder holding a plain `locust --csv PREFIX` run of our locustfile (with our own files in it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from runformat.layout import llm_stats_file
from tests.conftest import REPO
from tests.integration.locustrun import run_locust

pytestmark = pytest.mark.slow


def _analysis(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_capacity_and_report_on_a_folder_of_a_plain_csv_run(sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    run = run_locust(out, "batch.py", sim.url, "--max-new-tokens", "16", users=4, run_time="5s")
    assert run.proc.returncode == 0, run.output[-3000:]
    assert llm_stats_file(run.prefix).exists()  # the file that used to be read as Locust's stats

    result = _analysis("capacity", out, "-o", tmp_path / "capacity.csv")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "capacity.csv")
    assert len(table) == 1  # one run: the LLM stats file names none of its own
    row = table.iloc[0]
    assert row["target_label"] == str(run.prefix) and row["workload"] == "batch"
    assert row["concurrency"] == 4 and row["max_new_tokens"] == 16
    reqs = run.requests()
    assert row["source"] == "request_log" and 0 < row["requests"] <= int(reqs.success.sum())
    assert row["throughput_tok_s"] > 0 and row["ttft_p50_ms"] > 0

    report = _analysis("report", out, "-o", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    assert "batch" in (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
