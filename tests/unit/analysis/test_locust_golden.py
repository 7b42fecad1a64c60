"""Locust's CSV schema against golden files from a real run (scripts/make_locust_golden.py regenerates them).

If a Locust upgrade renames, adds or drops a column, these tests fail before the analysis silently misreads
a CSV. Locust is imported only in a subprocess: gevent's monkey-patching must not reach this process.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.capacity import capacity_table
from analysis.loading import _LOCUST_STATS_COLUMNS
from analysis.tables import load_cells

REPO = Path(__file__).resolve().parents[3]
GOLDEN = REPO / "tests" / "fixtures" / "locust_golden"
FILES = {"stats": "golden_stats.csv", "stats_history": "golden_stats_history.csv",
         "failures": "golden_failures.csv", "exceptions": "golden_exceptions.csv"}  # fmt: skip

_LIVE_COLUMNS = """
import json, sys, tempfile
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter
with tempfile.TemporaryDirectory() as tmp:
    w = StatsCSVFileWriter(Environment(), PERCENTILES_TO_REPORT, tmp + "/x", full_history=True)
    cols = {"stats": w.requests_csv_columns, "stats_history": w.stats_history_csv_columns,
            "failures": w.failures_columns, "exceptions": w.exceptions_columns}
    for fh in (w.requests_csv_filehandle, w.stats_history_csv_filehandle, w.failures_csv_filehandle,
               w.exceptions_csv_filehandle):
        fh.close()
print(json.dumps(cols))
"""


def _header(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return next(csv.reader(fh))


def test_installed_locust_writes_the_golden_columns() -> None:
    result = subprocess.run([sys.executable, "-c", _LIVE_COLUMNS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    live = json.loads(result.stdout.strip().splitlines()[-1])
    golden_version = (GOLDEN / "LOCUST_VERSION").read_text().strip()
    for kind, name in FILES.items():
        assert live[kind] == _header(GOLDEN / name), (
            f"Locust's {kind} CSV columns drifted from {name} (golden from Locust {golden_version}); "
            "check analysis/loading.py and rerun scripts/make_locust_golden.py"
        )


def test_analysis_reads_the_golden_run() -> None:
    assert set(_LOCUST_STATS_COLUMNS) <= set(_header(GOLDEN / FILES["stats"]))
    table = capacity_table(load_cells([GOLDEN / "golden"]))
    row = table.iloc[0]
    assert row["source"] == "locust_csv"
    assert row["requests"] > 0 and row["p95_latency_ms"] > 0
    assert row["concurrency"] == 2  # the history's peak User Count


@pytest.mark.slow
def test_regenerated_golden_has_the_same_columns(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_locust_golden.py"), "--out", str(tmp_path), "--seconds", "2"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for name in FILES.values():
        assert _header(tmp_path / name) == _header(GOLDEN / name), name


def test_report_from_a_plain_locust_prefix_is_marked_approximate(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from analysis.cli import main

    result = CliRunner().invoke(main, ["report", str(GOLDEN / "golden"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "out" / "index.html").read_text()
    assert "approximate: Locust CSVs only (rounded percentiles, no CI)" in html
