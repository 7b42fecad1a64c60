"""Grid progress: the ETA, the load generator's live row and the cell's own end-of-run figures."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.gridlive import RESULTS_JSON, cell_figures, eta_s, live_figures, llm_live_row


def test_eta_counts_the_running_cell_and_the_ones_waiting() -> None:
    assert eta_s(3, 10.0, None) == 30.0  # before the first cell starts
    assert eta_s(3, 10.0, 4.0) == 6.0 + 20.0  # 4 s into the first of three
    assert eta_s(1, 10.0, 15.0) == 0.0  # a cell running over its estimate


def test_live_row_and_final_figures_are_read_from_the_cell(tmp_path: Path) -> None:
    assert llm_live_row(tmp_path, "locust") is None and cell_figures(tmp_path) is None
    (tmp_path / "locust_llm_stats.csv").write_text(
        "type,name,requests,in_flight,throughput_tok_s_current,ttft_p50_ms\n"
        "POST,batch,3,4,352.5,310\n,Aggregated,3,4,352.5,310\n"
    )
    row = llm_live_row(tmp_path, "locust")
    assert row is not None
    assert live_figures(row) == {"throughput_tok_s": 352.5, "requests": 3.0, "in_flight": 4.0, "ttft_p50_ms": 310.0}
    (tmp_path / f"{RESULTS_JSON}.json").write_text(json.dumps({"stats": [], "llm": {"requests": {"completed": 16}}}))
    assert cell_figures(tmp_path) == {"requests": {"completed": 16}}
    (tmp_path / f"{RESULTS_JSON}.json").write_text("[]")  # Locust's plain list: no LLM section
    assert cell_figures(tmp_path) is None
