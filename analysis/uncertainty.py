"""Per-cell uncertainty: batch-means CIs for throughput and request rate, batch-based CIs for percentiles.

The rule (batch length, minimum batches, the t interval) is `runformat.batchmeans`, shared with the
live stopping rule inside Locust; this module applies it to one cell's request log and token traces.
Pure: arrays and frames in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.traces import parse_traces, select_traces
from runformat.batchmeans import MIN_BATCHES, batch_count, batch_means_ci, proportion_band

__all__ = ["CellCI", "batch_edges", "cell_ci", "completion_sync", "percentile_ci", "tokens_per_bin"]


def _bin_of(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each time in [edges[0], edges[-1]] (the last edge belongs to the last bin); −1 outside."""
    idx = np.searchsorted(edges, times, side="right") - 1
    idx[times == edges[-1]] = len(edges) - 2
    idx[(times < edges[0]) | (times > edges[-1]) | np.isnan(times)] = -1
    return idx


def tokens_per_bin(requests: pd.DataFrame, tokens: pd.DataFrame, edges: np.ndarray) -> np.ndarray:
    """Output tokens whose arrival lies in each bin [edges[i], edges[i+1]], all requests (successful or not).

    A request whose first and last tokens share a bin counts whole there; only those crossing a bin edge
    need their trace. Without a trace a crossing request is spread linearly between its first and last
    token (approximate).
    """
    nb = len(edges) - 1
    start = requests["start_wall_s"].to_numpy(dtype=float)
    first = start + requests["ttft_ms"].to_numpy(dtype=float) / 1000.0
    last = start + requests["e2e_ms"].to_numpy(dtype=float) / 1000.0
    out = requests["output_tokens"].fillna(0).to_numpy(dtype=float)
    has = (out > 0) & ~np.isnan(first) & ~np.isnan(last)
    b_first, b_last = _bin_of(first, edges), _bin_of(last, edges)
    whole = has & (b_first == b_last) & (b_first >= 0)
    counts = np.bincount(b_first[whole], weights=out[whole], minlength=nb).astype(float)
    crossing = has & ~whole & (last >= edges[0]) & (first <= edges[-1])
    if not crossing.any():
        return counts
    edge = requests.loc[crossing, ["request_id", "start_wall_s", "ttft_ms", "e2e_ms", "output_tokens"]]
    traced = select_traces(edge, tokens)
    with_trace = traced["arrivals_ms"].notna() & (traced["arrivals_ms"].astype(str).str.len() > 0)
    if with_trace.any():
        sub = traced[with_trace].reset_index(drop=True)
        row, arrivals_ms, per_event = parse_traces(sub)
        at = sub["start_wall_s"].to_numpy(dtype=float)[row] + arrivals_ms / 1000.0
        b = _bin_of(at, edges)
        counts += np.bincount(b[b >= 0], weights=per_event[b >= 0], minlength=nb)
    rest = traced[~with_trace]
    if not rest.empty:
        f = (rest["start_wall_s"] + rest["ttft_ms"] / 1000.0).to_numpy(dtype=float)[:, None]
        lst = (rest["start_wall_s"] + rest["e2e_ms"] / 1000.0).to_numpy(dtype=float)[:, None]
        span = np.maximum(lst - f, 1e-9)
        overlap = np.minimum(lst, edges[None, 1:]) - np.maximum(f, edges[None, :-1])
        frac = np.clip(np.maximum(overlap, 0.0) / span, 0.0, 1.0)
        counts += (rest["output_tokens"].to_numpy(dtype=float)[:, None] * frac).sum(axis=0)
    return counts


def batch_edges(ws: float, we: float, lifetime_s: float) -> np.ndarray:
    """Edges of the equal batches the window holds (empty when it holds none)."""
    k = batch_count(we - ws, lifetime_s)
    return np.linspace(ws, we, k + 1) if k > 0 else np.empty(0)


def percentile_ci(values: np.ndarray, batch: np.ndarray, k: int, q: float) -> tuple[float, float]:
    """95% CI of the q-th percentile (0–100) of `values` grouped into k batches; (NaN, NaN) when too few."""
    ok = ~np.isnan(values) & (batch >= 0)
    values, batch = values[ok], batch[ok]
    if k < MIN_BATCHES or values.size == 0:
        return math.nan, math.nan
    estimate = float(np.percentile(values, q))
    totals = np.bincount(batch, minlength=k)
    below = np.bincount(batch[values <= estimate], minlength=k)
    lo, hi = proportion_band(below.tolist(), totals.tolist(), q / 100.0)
    if math.isnan(lo):
        return math.nan, math.nan
    return float(np.percentile(values, lo * 100.0)), float(np.percentile(values, hi * 100.0))


def completion_sync(completed_at: np.ndarray, tolerance_s: float) -> float:
    """Share of completions with another completion within `tolerance_s` (closed-loop waves); NaN below 2."""
    t = np.sort(completed_at[~np.isnan(completed_at)])
    if t.size < 2:
        return math.nan
    gaps = np.diff(t)
    near = np.zeros(t.size, dtype=bool)
    near[:-1] |= gaps <= tolerance_s
    near[1:] |= gaps <= tolerance_s
    return float(near.mean())


@dataclass(frozen=True)
class CellCI:
    """What `cell_ci` needs from a cell's reduction: the window, the requests and which ones count."""

    ws: float
    we: float
    start: np.ndarray  # send time (wall s) per request
    ok: np.ndarray  # successful, started inside the window
    completed_in: np.ndarray  # successful, completed inside the window
    completed_at: np.ndarray  # wall s


_PERCENTILE_CIS = {
    "p95_latency_ms": ("e2e_ms", 95.0),
    "ttft_p95_ms": ("ttft_ms", 95.0),
    "tpot_p95_ms": ("tpot_ms", 95.0),
}
CI_COLUMNS = [
    f"{m}_ci95_{side}" for m in ("throughput_tok_s", "req_per_s", *_PERCENTILE_CIS) for side in ("low", "high")
]


def cell_ci(requests: pd.DataFrame, tokens: pd.DataFrame, w: CellCI) -> dict[str, float]:
    """CI columns (`<metric>_ci95_low/high`) and diagnostics (`ci_batches`, `ci_batch_s`, `batch_lag1_autocorr`)."""
    e2e = requests["e2e_ms"].to_numpy(dtype=float)
    lifetime_s = float(np.nanmedian(e2e[w.ok])) / 1000.0 if w.ok.any() else math.nan
    edges = batch_edges(w.ws, w.we, lifetime_s)
    k = max(len(edges) - 1, 0)
    out: dict[str, float] = dict.fromkeys(CI_COLUMNS, math.nan)
    out.update(ci_batches=k, ci_batch_s=(w.we - w.ws) / k if k else math.nan, batch_lag1_autocorr=math.nan)
    if k < MIN_BATCHES:
        return out
    batch_s = (w.we - w.ws) / k
    tok = batch_means_ci((tokens_per_bin(requests, tokens, edges) / batch_s).tolist())
    done = _bin_of(w.completed_at[w.completed_in], edges)
    req = batch_means_ci((np.bincount(done[done >= 0], minlength=k) / batch_s).tolist())
    out.update(
        throughput_tok_s_ci95_low=tok.low,
        throughput_tok_s_ci95_high=tok.high,
        req_per_s_ci95_low=req.low,
        req_per_s_ci95_high=req.high,
        batch_lag1_autocorr=tok.lag1,
    )
    batch = _bin_of(w.start[w.ok], edges)
    for metric, (column, q) in _PERCENTILE_CIS.items():
        lo, hi = percentile_ci(requests[column].to_numpy(dtype=float)[w.ok], batch, k, q)
        out[f"{metric}_ci95_low"], out[f"{metric}_ci95_high"] = lo, hi
    return out
