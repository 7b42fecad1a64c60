"""A run's results as one JSON file (`results.json`) and the per-cell table printed when a grid ends.

`results_document` is pure (capacity table in, dict out); `write_results` does the one write, atomically.
The schema is documented in docs/RESULTS.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.capacity import CAPACITY_COLUMNS
from analysis.tables import capacity_from_paths
from analysis.writing import write_json_atomic

__all__ = ["RESULTS_FILE", "RESULTS_SCHEMA_VERSION", "end_of_grid", "grid_table_lines", "results_document"]

RESULTS_FILE = "results.json"
RESULTS_SCHEMA_VERSION = 1


def _value(v: Any) -> Any:
    """JSON-safe: NaN/NA → null, numpy scalars → Python."""
    if v is None or v is pd.NA:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def results_document(run_dir: Path, table: pd.DataFrame) -> dict[str, Any]:
    """Every figure of the capacity table, one object per cell, keyed by the table's column names."""
    columns = [c for c in CAPACITY_COLUMNS if c in table.columns]
    cells = [{c: _value(row[c]) for c in columns} for _, row in table.iterrows()]
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "run_dir": str(run_dir),
        "source": "analysis capacity table (request logs; docs/METRICS.md)",
        "columns": columns,
        "cells": cells,
    }


def _fmt(v: Any, digits: int = 0) -> str:
    v = _value(v)
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _ci(row: pd.Series, column: str) -> str:
    low, high = _value(row.get(f"{column}_ci95_low")), _value(row.get(f"{column}_ci95_high"))
    if low is None or high is None:
        return "no CI"
    return f"[{low:,.0f}, {high:,.0f}]"


_HEADER = (
    "target",
    "workload",
    "users",
    "max tok",
    "tok/s",
    "95% CI",
    "req/s",
    "p95 ms",
    "TTFT p95",
    "TPOT p95",
    "err %",
    "adequate",
)


def _first_reason(row: pd.Series) -> str:
    reasons = [x.strip() for x in str(row.get("adequacy") or row.get("status") or "").split(";") if x.strip()]
    if not reasons:
        return "no"
    first = reasons[0] if len(reasons[0]) <= 50 else reasons[0][:49] + "…"
    return f"no: {first}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "")


def grid_table_lines(table: pd.DataFrame) -> list[str]:
    """One line per cell: the capacity table's key figures, with the throughput CI and adequacy."""
    rows = [_HEADER]
    for _, r in table.iterrows():
        adequate = _value(r.get("adequate"))
        rows.append(
            (
                str(r["target_label"]),
                str(r["workload"]),
                _fmt(r["concurrency"]),
                _fmt(r["max_new_tokens"]),
                _fmt(r["throughput_tok_s"], 1),
                _ci(r, "throughput_tok_s"),
                _fmt(r["req_per_s"], 2),
                _fmt(r["p95_latency_ms"]),
                _fmt(r["ttft_p95_ms"]),
                _fmt(r["tpot_p95_ms"], 1),
                _fmt(100.0 * _value(r["error_rate"]) if _value(r["error_rate"]) is not None else None, 1),
                "yes" if adequate else _first_reason(r),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER) - 1)]
    lines = []
    for row in rows:
        cells = [row[i].ljust(widths[i]) if i < 2 else row[i].rjust(widths[i]) for i in range(len(widths))]
        lines.append("  ".join(cells) + "  " + row[-1])
    return lines


def end_of_grid(run_dir: Path) -> list[str]:
    """Reduce the run, write RUN/results.json, and return the lines to print at the end of a grid."""
    table = capacity_from_paths([run_dir])
    if table.empty:
        return ["no completed cells to summarise"]
    path = write_json_atomic(run_dir / RESULTS_FILE, results_document(run_dir, table))
    return [
        *grid_table_lines(table),
        "tok/s: output tokens that arrived in the steady window (after warm-up) ÷ window; 95% CI by batch means",
        f"results: {path}",
        f"report:  make report RUN={run_dir}   (or: python -m analysis report {run_dir})",
    ]
