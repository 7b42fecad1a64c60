"""Judge one cell against a set of SLOs from its 95% CIs: pass, fail, undecided (a CI straddles a bound) or
invalid (nothing usable measured); and goodput, the rate of requests that individually met every SLO.

Pure over a capacity row (`judge_row`) and a cell's request log (`goodput_req_s`); `judge_cell` loads a
cell directory first. The capacity search calls `judge_cell` once per probe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.capacity import CellData, cell_row, window_bounds
from analysis.tables import load_cells
from runformat.search import SLO_METRICS, ProbeOutcome, Slo

__all__ = ["NOT_SUSTAINED", "Check", "Judgement", "error_rate_ci", "goodput_req_s", "judge_cell", "judge_row"]

_Z95 = 1.959963984540054
NOT_SUSTAINED = "sustained"  # the binding "SLO" of an open-loop probe that dropped arrivals (METRICS.md)


@dataclass(frozen=True)
class Check:
    """One SLO on one cell: the metric's value, its 95% CI and the verdict."""

    slo: Slo
    value: float
    low: float
    high: float
    outcome: ProbeOutcome

    @property
    def ratio(self) -> float:
        """value ÷ bound: above 1 breaks the SLO; the largest ratio is the binding SLO."""
        return self.value / self.slo.bound if self.value == self.value else math.nan


@dataclass(frozen=True)
class Judgement:
    outcome: ProbeOutcome
    binding: str = ""  # the failing SLO (the worst if several), or the one closest to its bound
    detail: str = ""
    checks: tuple[Check, ...] = ()
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput_tok_s(self) -> float:
        return _f(self.row.get("throughput_tok_s"))

    @property
    def p95_latency_ms(self) -> float:
        return _f(self.row.get("p95_latency_ms"))


def _f(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def error_rate_ci(failures: float, started: float) -> tuple[float, float]:
    """Wilson score 95% interval of failures ÷ started requests (requests assumed independent)."""
    if not started > 0:
        return math.nan, math.nan
    p, n, z2 = failures / started, started, _Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _interval(row: Mapping[str, Any], metric: str) -> tuple[float, float, float]:
    if metric == "error_rate":
        failures, ok = _f(row.get("failures")), _f(row.get("requests"))
        low, high = error_rate_ci(failures, failures + ok)
        return _f(row.get("error_rate")), low, high
    return _f(row.get(metric)), _f(row.get(f"{metric}_ci95_low")), _f(row.get(f"{metric}_ci95_high"))


def _check(row: Mapping[str, Any], slo: Slo) -> Check:
    value, low, high = _interval(row, slo.metric)
    if math.isnan(low) or math.isnan(high):
        outcome = ProbeOutcome.UNDECIDED  # no CI yet: the window is too short to decide
    elif slo.within(high):
        outcome = ProbeOutcome.PASS
    elif not slo.within(low):
        outcome = ProbeOutcome.FAIL
    else:
        outcome = ProbeOutcome.UNDECIDED
    return Check(slo, value, low, high, outcome)


def _invalid(row: Mapping[str, Any]) -> str:
    status = str(row.get("status", ""))
    if status != "completed":
        return f"measured nothing usable (cell status: {status or 'unknown'})"
    if not _f(row.get("requests")) > 0:
        return "completed no request in its window"
    return ""


def judge_row(row: Mapping[str, Any], slos: Sequence[Slo]) -> Judgement:
    """Pass when every SLO's CI lies within its bound; fail when any lies wholly beyond (or when an open-loop
    cell is not `sustained`: it dropped arrivals, so its load is not the offered rate); else undecided."""
    invalid = _invalid(row)
    if invalid:
        return Judgement(ProbeOutcome.INVALID, detail=invalid, row=dict(row))
    checks = tuple(_check(row, slo) for slo in slos)
    if row.get("client_bound") is True:  # the load asked for was not the load offered: measure again
        signal = row.get("client_bound_signal") or "load generator saturated"
        return Judgement(
            ProbeOutcome.UNDECIDED,
            "",
            f"client-bound ({signal}): re-run; add workers if it persists",
            checks,
            dict(row),
        )
    if row.get("sustained") is False:  # an open-loop cell that dropped arrivals did not carry the offered rate
        reason = row.get("sustained_reason") or "offered rate not carried"
        detail = f"not sustained: {reason}; " + "; ".join(f"{c.slo.text}: {c.value:.4g} {c.outcome}" for c in checks)
        return Judgement(ProbeOutcome.FAIL, NOT_SUSTAINED, detail, checks, dict(row))
    failing = [c for c in checks if c.outcome is ProbeOutcome.FAIL]
    straddling = [c for c in checks if c.outcome is ProbeOutcome.UNDECIDED]
    if failing:
        outcome, pool = ProbeOutcome.FAIL, failing
    elif straddling:
        outcome, pool = ProbeOutcome.UNDECIDED, straddling
    else:
        outcome, pool = ProbeOutcome.PASS, list(checks)
    worst = max(pool, key=lambda c: -math.inf if math.isnan(c.ratio) else c.ratio) if pool else None
    detail = "; ".join(f"{c.slo.text}: {c.value:.4g} [{c.low:.4g}, {c.high:.4g}] {c.outcome}" for c in checks)
    return Judgement(outcome, worst.slo.text if worst else "", detail, checks, dict(row))


def goodput_req_s(cell: CellData, slos: Sequence[Slo]) -> float:
    """Requests started in the steady window that succeeded and met every per-request bound (e2e, TTFT,
    TPOT), per second of window: DistServe's goodput. An error-rate SLO bounds the cell, not a request."""
    req = cell.requests
    if req.empty:
        return math.nan
    ws, we = window_bounds(req, float(cell.metadata.get("warmup_s", 0.0)), cell.metadata.get("duration_s"))
    if we <= ws:
        return math.nan
    start = req["start_wall_s"].to_numpy(dtype=float)
    good = (start >= ws) & (start <= we) & req["success"].to_numpy(dtype=bool)
    for slo in slos:
        column = SLO_METRICS[slo.metric][0]
        if column != "success":
            values = req[column].to_numpy(dtype=float)
            good &= (values <= slo.bound) if slo.op == "<=" else (values < slo.bound)
    return float(np.count_nonzero(good)) / (we - ws)


def judge_cell(cell_dir: Path, slos: Sequence[Slo]) -> tuple[Judgement, float]:
    """Load one cell directory and judge it; also its goodput."""
    cells = load_cells([cell_dir])
    if not cells:
        return Judgement(ProbeOutcome.INVALID, detail=f"has no cell in {cell_dir}"), math.nan
    cell = cells[0]
    return judge_row(cell_row(cell), slos), goodput_req_s(cell, slos)
