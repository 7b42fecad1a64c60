"""Open-loop (arrival-rate) figures of a cell: offered vs achieved rate, dropped arrivals, schedule lag,
and latencies measured from each request's scheduled time (coordinated-omission-free).

Pure: takes the request log, the dropped arrivals and the dispatchers' summaries already loaded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MAX_DROPPED_PCT",
    "MAX_SCHEDULE_LAG_P95_MS",
    "MIN_ACHIEVED_SHARE",
    "OPEN_LOOP_COLUMNS",
    "offered_rate",
    "open_loop_row",
]

OPEN_LOOP_COLUMNS = [
    "arrival",
    "offered_rate_req_s",
    "achieved_rate_req_s",
    "arrivals",
    "dropped",
    "dropped_pct",
    "schedule_lag_p50_ms",
    "schedule_lag_p99_ms",
    "p95_latency_from_schedule_ms",
    "ttft_p95_from_schedule_ms",
    "sustained",
    "sustained_reason",
]
# A cell sustains its offered rate when it drops at most this share of the arrivals scheduled in the
# window, sends at least this share of the others inside the window, and (with queueing) its arrivals
# wait at most this long at p95. Not "achieved vs offered": a Poisson window's count varies by itself.
MIN_ACHIEVED_SHARE = 0.95
MAX_DROPPED_PCT = 1.0
MAX_SCHEDULE_LAG_P95_MS = 1000.0


def offered_rate(summaries: list[dict[str, Any]]) -> float:
    """The configured rate of all processes together (req/s); NaN for a trace (its rate is what it holds)."""
    rates = [s.get("rate_per_s") for s in summaries]
    if not rates or any(r is None for r in rates):
        return math.nan
    return float(sum(float(r) for r in rates if r is not None))


def _pct(values: np.ndarray, q: float) -> float:
    finite = values[~np.isnan(values)]
    return float(np.percentile(finite, q)) if finite.size else math.nan


def _kind(summaries: list[dict[str, Any]]) -> str:
    kind = str(summaries[0].get("kind", ""))
    if kind == "gamma":
        kind = f"gamma(b={float(summaries[0].get('burstiness', 1.0)):g})"
    return kind + ("+queue" if summaries[0].get("queue") else "")


def open_loop_row(
    requests: pd.DataFrame, drops: pd.DataFrame, summaries: list[dict[str, Any]], ws: float, we: float
) -> dict[str, Any]:
    """The OPEN_LOOP_COLUMNS of a cell over the window [ws, we]; {} for a closed-loop cell.

    Arrivals in the window are those *scheduled* in it (sent or dropped); the achieved rate counts requests
    *sent* in it. Latencies from schedule add each request's schedule lag (send − scheduled) to its latency
    from send, for successful requests sent in the window (the set the other latency columns use).
    """
    if not summaries or "scheduled_wall_s" not in requests.columns or not we > ws:
        return {}
    window_s = we - ws
    start = requests["start_wall_s"].to_numpy(dtype=float)
    scheduled = requests["scheduled_wall_s"].to_numpy(dtype=float)
    lag = requests["schedule_lag_ms"].to_numpy(dtype=float)
    success = requests["success"].to_numpy(dtype=bool)
    sent_in = (start >= ws) & (start <= we)
    dropped_at = drops["scheduled_wall_s"].to_numpy(dtype=float) if not drops.empty else np.empty(0)
    n_dropped = int(((dropped_at >= ws) & (dropped_at <= we)).sum())
    scheduled_in = (scheduled >= ws) & (scheduled <= we)
    n_arrivals = int(scheduled_in.sum()) + n_dropped
    sent_scheduled_in = int((scheduled_in & (start <= we)).sum())
    offered = offered_rate(summaries)
    if math.isnan(offered):
        offered = n_arrivals / window_s
    achieved = float(sent_in.sum()) / window_s
    ok = sent_in & success
    e2e = requests["e2e_ms"].to_numpy(dtype=float)
    ttft = requests["ttft_ms"].to_numpy(dtype=float)
    dropped_pct = 100.0 * n_dropped / n_arrivals if n_arrivals else math.nan
    lag_p95 = _pct(lag[sent_in], 95)
    reasons = []
    if sent_scheduled_in < MIN_ACHIEVED_SHARE * (n_arrivals - n_dropped):
        reasons.append(f"sent {sent_scheduled_in} of {n_arrivals - n_dropped} accepted arrivals")
    if dropped_pct > MAX_DROPPED_PCT:
        reasons.append(f"{dropped_pct:.1f}% of arrivals dropped")
    if lag_p95 > MAX_SCHEDULE_LAG_P95_MS:
        reasons.append(f"arrivals waited {lag_p95:.0f} ms at p95")
    return {
        "arrival": _kind(summaries),
        "offered_rate_req_s": offered,
        "achieved_rate_req_s": achieved,
        "arrivals": n_arrivals,
        "dropped": n_dropped,
        "dropped_pct": dropped_pct,
        "schedule_lag_p50_ms": _pct(lag[sent_in], 50),
        "schedule_lag_p99_ms": _pct(lag[sent_in], 99),
        "p95_latency_from_schedule_ms": _pct((e2e + lag)[ok], 95),
        "ttft_p95_from_schedule_ms": _pct((ttft + lag)[ok], 95),
        "sustained": not reasons,
        "sustained_reason": "; ".join(reasons),
    }
