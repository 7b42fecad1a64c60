"""Record delivery in analysis: a distributed cell whose workers' records did not all reach the master is
inadequate, named in the capacity CSV, the HTML warnings and the Markdown caveats."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.bundle import Options, analyse
from analysis.delivery import delivery_row
from analysis.report import write_report
from analysis.run import load_run
from tests.unit.analysis.runbuilder import BF16, CellSpec, build_run


def _worker(tag: str, started: int, records: int, state: str = "finished", **extra: int) -> dict[str, Any]:
    return {
        "node_id": f"node-{tag}",
        "identity": {"tag": tag, "host": "h", "pid": 1},
        "started": started,
        "records": records,
        "lost": started - records,
        "gap_records": extra.get("gap_records", 0),
        "dropped": extra.get("dropped", 0),
        "state": state,
    }


def _delivery(*workers: dict[str, Any]) -> dict[str, Any]:
    return {"workers": list(workers), "lost_records": sum(w["lost"] for w in workers)}


def test_every_record_delivered_is_zero_lost_and_no_reason() -> None:
    row = delivery_row(_delivery(_worker("h-1", 30, 30), _worker("h-2", 25, 25)))
    assert row == {"records_lost": 0, "records_lost_detail": ""}


def test_a_run_that_was_not_distributed_has_no_figure() -> None:
    row = delivery_row({})
    assert math.isnan(row["records_lost"]) and row["records_lost_detail"] == ""


def test_each_losing_worker_is_named_with_why() -> None:
    row = delivery_row(
        _delivery(
            _worker("h-1", 30, 30),
            _worker("h-2", 40, 33, state="lost"),
            _worker("h-3", 50, 45, gap_records=3, dropped=2),
            _worker("h-4", 10, 10, state="lost"),
        )
    )
    assert row["records_lost"] == 12
    assert row["records_lost_detail"] == (
        "7 of 40 from worker h-2 (it stopped without its last batch: at least 7), "
        "5 of 50 from worker h-3 (3 in batches that never arrived, 2 dropped under back-pressure), "
        "0 of 10 from worker h-4 (it stopped without its last batch: at least 0)"
    )


def _single_cell_run(tmp_path: Path) -> Path:
    run = build_run(tmp_path, cells={(BF16, "chat", 16): CellSpec(60, 1000.0)}, labels=(BF16,))
    (cell,) = [p.parent for p in run.rglob("metadata.json")]
    return cell


def test_the_report_marks_a_cell_whose_worker_died(tmp_path: Path) -> None:
    cell = _single_cell_run(tmp_path)
    (cell / "locust_workers.json").write_text(
        json.dumps(_delivery(_worker("h-1", 30, 30), _worker("h-2", 40, 33, "lost")))
    )
    out = write_report(analyse(load_run(cell.parents[2]), Options()), tmp_path / "out").parent
    capacity = pd.read_csv(out / "capacity.csv")
    assert capacity["records_lost"].tolist() == [7]
    reason = "records lost: 7 of 40 from worker h-2 (it stopped without its last batch: at least 7)"
    assert not capacity["adequate"].iloc[0] and reason in capacity["adequacy"].iloc[0]
    html = (out / "index.html").read_text()
    assert '<span class="badge bad">records lost</span>' in html and reason in html
    assert "records lost" in (out / "INFERENCE_PERFORMANCE_BEST_PRACTICES.md").read_text()


def test_a_grid_cell_metadata_copy_is_read_when_the_file_is_gone(tmp_path: Path) -> None:
    cell = _single_cell_run(tmp_path)
    meta = json.loads((cell / "metadata.json").read_text())
    meta["record_delivery"] = _delivery(_worker("h-1", 30, 28))
    (cell / "metadata.json").write_text(json.dumps(meta))
    capacity = load_run(cell.parents[2]).capacity
    assert capacity["records_lost"].tolist() == [2]
    assert "records lost: 2 of 30 from worker h-1" in capacity["adequacy"].iloc[0]
