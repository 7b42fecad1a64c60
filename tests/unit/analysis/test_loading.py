"""Which runs a folder of plain `--csv` output holds: our own PREFIX_llm_stats.csv is not a run."""

from __future__ import annotations

from pathlib import Path

from analysis.loading import find_cells
from runformat.layout import llm_stats_file


def _touch(path: Path) -> None:
    path.write_text("a\n", encoding="utf-8")


def test_llm_stats_beside_its_run_is_not_a_run(tmp_path: Path) -> None:
    _touch(tmp_path / "run_stats.csv")
    _touch(tmp_path / "run_requests_host-1.csv")
    _touch(llm_stats_file(tmp_path / "run"))
    assert [c.prefix for c in find_cells(tmp_path)] == [tmp_path / "run"]


def test_a_prefix_that_ends_in_llm_is_still_a_run(tmp_path: Path) -> None:
    _touch(tmp_path / "x_llm_stats.csv")  # Locust's stats of `--csv x_llm`, no run named x beside it
    _touch(llm_stats_file(tmp_path / "x_llm"))
    assert [c.prefix for c in find_cells(tmp_path)] == [tmp_path / "x_llm"]
