"""SLO capacity: per target × workload, the highest tested concurrency that meets a latency/error SLO.

A cell meets the SLO when p95 e2e ≤ p95_ms, TTFT p95 ≤ ttft_p95_ms (if given) and error_rate ≤ the limit
(all repeats must). Goodput follows DistServe: the rate of requests that individually met the SLO
(e2e and TTFT within bounds, successful), per second of steady-state window.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.capacity import CellData, cell_window
from analysis.cost import KEY

__all__ = ["SloSpec", "attainment_table", "slo_table"]


class SloSpec:
    """The SLO: p95 e2e latency bound, optional TTFT p95 bound, maximum error rate."""

    def __init__(self, p95_ms: float, ttft_p95_ms: float | None = None, max_error_rate: float = 0.01) -> None:
        self.p95_ms = p95_ms
        self.ttft_p95_ms = ttft_p95_ms
        self.max_error_rate = max_error_rate

    def describe(self) -> str:
        parts = [f"p95 latency ≤ {self.p95_ms:g} ms"]
        if self.ttft_p95_ms is not None:
            parts.append(f"TTFT p95 ≤ {self.ttft_p95_ms:g} ms")
        parts.append(f"error rate ≤ {self.max_error_rate:.1%}")
        return ", ".join(parts)


def _attainment(cell: CellData, spec: SloSpec) -> tuple[float, float]:
    req = cell.requests
    if req.empty:
        return math.nan, math.nan
    ws, we = cell_window(cell)
    if we <= ws:
        return math.nan, math.nan
    start = req["start_wall_s"].to_numpy(dtype=float)
    started = (start >= ws) & (start <= we)
    good = started & req["success"].to_numpy(dtype=bool) & (req["e2e_ms"].to_numpy(dtype=float) <= spec.p95_ms)
    if spec.ttft_p95_ms is not None:
        good &= req["ttft_ms"].to_numpy(dtype=float) <= spec.ttft_p95_ms
    n = int(started.sum())
    return (float(good.sum()) / n if n else math.nan), float(good.sum()) / (we - ws)


def attainment_table(cells: list[CellData], spec: SloSpec) -> pd.DataFrame:
    """Per cell (by name): share of in-window requests meeting the SLO, and goodput in requests/s."""
    rows = [(c.name, *_attainment(c, spec)) for c in cells]
    return pd.DataFrame(rows, columns=["cell", "slo_attainment", "goodput_req_s"])


def slo_table(capacity: pd.DataFrame, cost: pd.DataFrame, attainment: pd.DataFrame, spec: SloSpec) -> pd.DataFrame:
    """One row per target × workload × max_new_tokens: best concurrency meeting the SLO and its economics."""
    cap = capacity.dropna(subset=["concurrency"])
    if "cell" in cap.columns and not attainment.empty:
        cap = cap.merge(attainment, on="cell", how="left")
    else:
        cap = cap.assign(slo_attainment=math.nan, goodput_req_s=math.nan)
    ttft_ok = cap["ttft_p95_ms"] <= spec.ttft_p95_ms if spec.ttft_p95_ms is not None else True
    cap = cap.assign(
        meets=cap["throughput_tok_s"].notna()
        & (cap["p95_latency_ms"] <= spec.p95_ms)
        & ttft_ok
        & (cap["error_rate"].fillna(1.0) <= spec.max_error_rate)
    )
    per_cell = cap.groupby(["target_label", *KEY], sort=True, dropna=False).agg(
        meets=("meets", "all"),
        throughput_tok_s=("throughput_tok_s", "mean"),
        req_per_s=("req_per_s", "mean"),
        p95_latency_ms=("p95_latency_ms", "mean"),
        ttft_p95_ms=("ttft_p95_ms", "mean"),
        error_rate=("error_rate", "mean"),
        slo_attainment=("slo_attainment", "mean"),
        goodput_req_s=("goodput_req_s", "mean"),
    )
    per_cell = per_cell.reset_index().merge(
        cost[["target_label", *KEY, "usd_per_1m_tokens"]], on=["target_label", *KEY], how="left"
    )
    rows = []
    for (label, workload, tokens), group in per_cell.groupby(["target_label", "workload", "max_new_tokens"]):
        group = group.sort_values(["concurrency", "offered_rate_req_s"])  # open loop: the highest rate last
        passing = group[group["meets"]]
        row: dict[str, object] = {
            "target_label": label,
            "workload": workload,
            "max_new_tokens": tokens,
            "tested_concurrency": ", ".join(str(int(c)) for c in group["concurrency"]),
            "slo": spec.describe(),
        }
        if passing.empty:
            row.update(best_concurrency=np.nan, verdict="no tested concurrency meets the SLO")
        else:
            best = passing.iloc[-1]
            highest = int(best["concurrency"]) == int(group["concurrency"].max())
            row.update({c: best[c] for c in per_cell.columns if c not in ("target_label", *KEY, "meets")})
            row["best_concurrency"] = int(best["concurrency"])
            row["verdict"] = "meets at the highest tested concurrency: test higher" if highest else "meets"
        rows.append(row)
    columns = [
        "target_label",
        "workload",
        "max_new_tokens",
        "best_concurrency",
        "throughput_tok_s",
        "req_per_s",
        "usd_per_1m_tokens",
        "p95_latency_ms",
        "ttft_p95_ms",
        "error_rate",
        "slo_attainment",
        "goodput_req_s",
        "tested_concurrency",
        "verdict",
        "slo",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)
