"""What the grid shows of a running cell: live figures from the load generator, its final figures, the ETA.

The Locust process rewrites `PREFIX_llm_stats.csv` every 2 s (rolling tok/s, completed, in flight, TTFT) and
ends with the LLM section of its `--json-file`; these readers never fail a cell (None when not there yet).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from runformat.layout import llm_stats_file

__all__ = ["RESULTS_JSON", "cell_figures", "eta_s", "llm_live_row"]

RESULTS_JSON = "locust_results"  # --json-file takes the name without .json


def llm_live_row(cell_dir: Path, prefix: str) -> dict[str, str] | None:
    """The Aggregated row of the Locust process's live LLM statistics file."""
    try:
        with (cell_dir / llm_stats_file(prefix)).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    return next((r for r in rows if r.get("name") == "Aggregated"), None)


def cell_figures(cell_dir: Path) -> dict[str, Any] | None:
    """The LLM section the cell's Locust wrote at its end (its whole run: completions, tok/s, TTFT)."""
    try:
        data = json.loads((cell_dir / f"{RESULTS_JSON}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    llm = data.get("llm") if isinstance(data, dict) else None
    return llm if isinstance(llm, dict) else None


def eta_s(cells_left: int, per_cell_s: float, in_cell_s: float | None) -> float:
    """Seconds until the grid ends: the running cell's rest plus every cell not started yet."""
    running = max(per_cell_s - in_cell_s, 0.0) if in_cell_s is not None else 0.0
    waiting = cells_left - (1 if in_cell_s is not None else 0)
    return running + max(waiting, 0) * per_cell_s


def _float(row: dict[str, str], key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return None


def live_figures(row: dict[str, str]) -> dict[str, float | None]:
    return {
        "throughput_tok_s": _float(row, "throughput_tok_s_current"),
        "requests": _float(row, "requests"),
        "in_flight": _float(row, "in_flight"),
        "ttft_p50_ms": _float(row, "ttft_p50_ms"),
    }
