"""Capacity reduction: one row per cell, with every metric defined as in the project's METRICS contract.

Pure functions over DataFrames; `CellData` carries what `analysis.loading` read for one cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CAPACITY_COLUMNS",
    "CLIENT_CPU_LIMIT_PCT",
    "CLIENT_LAG_LIMIT_MS",
    "CellData",
    "capacity_table",
    "cell_row",
    "pooled_itl_ms",
    "tokens_in_window",
    "window_bounds",
]

CLIENT_CPU_LIMIT_PCT = 90.0
CLIENT_LAG_LIMIT_MS = 10.0

CAPACITY_COLUMNS = [
    "target_label",
    "workload",
    "concurrency",
    "max_new_tokens",
    "repeat",
    "window_s",
    "requests",
    "failures",
    "interrupted",
    "error_rate",
    "throughput_tok_s",
    "req_per_s",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "tpot_p50_ms",
    "tpot_p95_ms",
    "itl_p99_ms",
    "prompt_tokens_mean",
    "output_tokens_mean",
    "source",
    "client_cpu_pct",
    "dispatch_lag_p99_ms",
    "client_bound",
    "client_output_tokens",
    "server_generation_tokens",
    "token_check",
    "status",
]


@dataclass
class CellData:
    """Everything known about one cell. Frames may be empty; metadata may be {} for plain Locust runs."""

    name: str
    metadata: dict[str, Any] = field(default_factory=dict)
    requests: pd.DataFrame = field(default_factory=pd.DataFrame)
    tokens: pd.DataFrame = field(default_factory=pd.DataFrame)
    client: pd.DataFrame = field(default_factory=pd.DataFrame)
    locust_stats: pd.DataFrame = field(default_factory=pd.DataFrame)
    locust_history: pd.DataFrame = field(default_factory=pd.DataFrame)


def window_bounds(requests: pd.DataFrame, warmup_s: float, duration_s: float | None) -> tuple[float, float]:
    """Steady-state window [t0 + warmup, t_end] in wall seconds.

    t0 is the first request's send time (load starts with the first user); t_end is t0 + the cell's run
    time when known, else the last recorded arrival. Tokens after t_end (streams drained during stop) are
    outside the window.
    """
    starts = requests["start_wall_s"].to_numpy(dtype=float)
    t0 = float(np.nanmin(starts))
    if duration_s is not None:
        t_end = t0 + float(duration_s)
    else:
        ends = starts + requests["e2e_ms"].to_numpy(dtype=float) / 1000.0
        t_end = float(np.nanmax(np.where(np.isnan(ends), starts, ends)))
    return t0 + float(warmup_s), t_end


def _split_traces(traces: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(events per row, arrival_ms per event, tokens per event or None when every event carries one).

    Vectorised in Arrow (split + cast run in C++): traces hold one number per token, so for a large run
    this is the bulk of the parsing work.
    """
    text = pa.array(traces["arrivals_ms"].fillna("").astype(str), type=pa.large_string())
    lists = pc.split_pattern(text, " ")
    empty = pc.equal(text, "")
    if pc.any(empty).as_py():
        lists = pc.if_else(empty, pa.scalar([], type=lists.type), lists)
    n_events = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    arrivals = pc.cast(pc.list_flatten(lists), pa.float64()).to_numpy(zero_copy_only=False)
    if "counts" not in traces.columns:
        return n_events, arrivals, None
    counts_text = traces["counts"].fillna("").astype(str)
    has_counts = counts_text.str.len().to_numpy() > 0
    if not has_counts.any():
        return n_events, arrivals, None
    counts = np.ones(len(arrivals))
    starts = np.cumsum(n_events) - n_events
    for i in np.flatnonzero(has_counts):  # only rows with multi-token events, rare
        values = np.array(str(counts_text.iat[int(i)]).split(), dtype=float)
        counts[starts[i] : starts[i] + len(values)] = values
    return n_events, arrivals, counts


def _parse_traces(traces: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten traces into (row index per event, arrival_ms per event, tokens per event)."""
    n_events, arrivals, counts = _split_traces(traces)
    row = np.repeat(np.arange(len(traces)), n_events)
    return row, arrivals, counts if counts is not None else np.ones(len(arrivals))


def ids_in(ids: pd.Series, value_set: pd.Series) -> np.ndarray:
    """Boolean mask of `ids` found in `value_set` (hash join in Arrow; pandas' isin on strings is slow)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    mask = pc.is_in(pa.array(ids.astype(str)), value_set=pa.array(value_set.astype(str).unique()))
    return mask.to_numpy(zero_copy_only=False).astype(bool)


def tokens_in_window(requests: pd.DataFrame, tokens: pd.DataFrame, ws: float, we: float) -> float:
    """Output tokens whose arrival lies in [ws, we], all requests (successful or not).

    Requests entirely inside the window count whole; only those straddling an edge need their trace.
    Without a trace a straddler is interpolated linearly between first and last token (approximate).
    """
    start = requests["start_wall_s"].to_numpy(dtype=float)
    first = start + requests["ttft_ms"].to_numpy(dtype=float) / 1000.0
    last = start + requests["e2e_ms"].to_numpy(dtype=float) / 1000.0
    out = requests["output_tokens"].fillna(0).to_numpy(dtype=float)
    has = (out > 0) & ~np.isnan(first) & ~np.isnan(last)
    inside = has & (first >= ws) & (last <= we)
    total = float(out[inside].sum())
    straddle = has & ~inside & (last >= ws) & (first <= we)
    if not straddle.any():
        return total
    edge = requests.loc[straddle, ["request_id", "start_wall_s", "ttft_ms", "e2e_ms", "output_tokens"]]
    if not tokens.empty:  # narrow the traces to the straddlers first: merging all of them is costly
        traced = edge.merge(tokens[ids_in(tokens["request_id"], edge["request_id"])], on="request_id", how="left")
    else:
        traced = edge.assign(arrivals_ms=None)
    with_trace = traced["arrivals_ms"].notna() & (traced["arrivals_ms"].astype(str).str.len() > 0)
    if with_trace.any():
        sub = traced[with_trace].reset_index(drop=True)
        if "counts" not in sub.columns:
            sub["counts"] = ""
        row, arrivals_ms, counts = _parse_traces(sub)
        at = sub["start_wall_s"].to_numpy(dtype=float)[row] + arrivals_ms / 1000.0
        total += float(counts[(at >= ws) & (at <= we)].sum())
    rest = traced[~with_trace]
    if not rest.empty:
        f = rest["start_wall_s"] + rest["ttft_ms"] / 1000.0
        lst = rest["start_wall_s"] + rest["e2e_ms"] / 1000.0
        span = np.maximum((lst - f).to_numpy(dtype=float), 1e-9)
        inside_s = np.minimum(lst.to_numpy(dtype=float), we) - np.maximum(f.to_numpy(dtype=float), ws)
        frac = np.clip(np.maximum(inside_s, 0.0) / span, 0.0, 1.0)
        total += float((rest["output_tokens"].to_numpy(dtype=float) * frac).sum())
    return total


def pooled_itl_ms(traces: pd.DataFrame) -> np.ndarray:
    """Per-token inter-token latencies of all given traces: an event carrying k tokens gives k gaps of gap/k."""
    if traces.empty:
        return np.empty(0)
    n_events, arrivals, counts = _split_traces(traces.reset_index(drop=True))
    if len(arrivals) < 2:
        return np.empty(0)
    # gap j lies between events j and j+1; it is an ITL unless event j+1 starts a new request
    within = np.ones(len(arrivals) - 1, dtype=bool)
    starts = (np.cumsum(n_events) - n_events)[n_events > 0]
    within[starts[starts > 0] - 1] = False
    gaps = np.diff(arrivals)[within]
    if counts is None:
        return gaps
    k = np.maximum(counts[1:][within].astype(int), 1)
    return np.repeat(gaps / k, k)


def _pct(values: pd.Series | np.ndarray, q: float) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(np.percentile(arr, q)) if arr.size else math.nan


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _client_health(client: pd.DataFrame, ws: float, we: float) -> tuple[float, float]:
    """Worst process's mean CPU% and the worst per-second dispatch-lag p99 inside the window."""
    if client.empty or "wall_s" not in client.columns:
        return math.nan, math.nan
    inside = client[(client["wall_s"] >= ws) & (client["wall_s"] <= we)]
    if inside.empty:
        inside = client
    cpu = float(inside.groupby("process")["cpu_pct"].mean().max())
    lag = float(inside["dispatch_lag_p99_ms"].max())
    return cpu, lag


def _token_check(client_tokens: float, meta: dict[str, Any]) -> tuple[float, str]:
    delta = meta.get("server_token_delta") or {}
    server = delta.get("generation")
    if server is None:
        return math.nan, "n/a (no server /metrics)"
    if int(server) == int(client_tokens):
        return float(server), "ok"
    return float(server), f"mismatch: client {int(client_tokens)} vs server {int(server)}"


def _key(cell: CellData, requests: pd.DataFrame) -> dict[str, Any]:
    meta = cell.metadata

    def first(col: str) -> Any:
        if col in requests.columns and not requests.empty:
            values = requests[col].dropna()
            return values.iloc[0] if not values.empty else None
        return None

    concurrency = meta.get("users")
    if concurrency is None and not cell.locust_history.empty and "User Count" in cell.locust_history:
        concurrency = int(cell.locust_history["User Count"].max())
    return {
        "target_label": meta.get("target_label") or first("target_label") or cell.name,
        "workload": meta.get("workload") or first("workload") or "",
        "concurrency": concurrency,
        "max_new_tokens": meta.get("max_new_tokens") or first("max_new_tokens"),
        "repeat": meta.get("repeat", 0),
    }


INTERRUPTED_PREFIX = "interrupted:"


def _interrupted(req: pd.DataFrame) -> np.ndarray:
    """Records the load generator marked as cut off by the end of the run (user stopped mid-request)."""
    if "error" not in req.columns:
        return np.zeros(len(req), dtype=bool)
    return req["error"].astype("string").str.startswith(INTERRUPTED_PREFIX).fillna(False).to_numpy(dtype=bool)


def _from_request_log(cell: CellData) -> dict[str, Any]:
    req = cell.requests
    meta = cell.metadata
    ws, we = window_bounds(req, float(meta.get("warmup_s", 0.0)), meta.get("duration_s"))
    window_s = we - ws
    # numpy columns and masks, not DataFrame filtering: a frame copy per mask dominated large cells
    start = req["start_wall_s"].to_numpy(dtype=float)
    e2e = req["e2e_ms"].to_numpy(dtype=float)
    success = req["success"].to_numpy(dtype=bool)
    started_in = (start >= ws) & (start <= we)
    ok = started_in & ~np.isnan(e2e) & success
    # Streams cut off because the cell ended are the test's doing, not the server's: not failures.
    cut = _interrupted(req) & started_in
    n_failed = int((started_in & ~success & ~cut).sum())
    completed_at = start + e2e / 1000.0
    completed_in = success & (completed_at >= ws) & (completed_at <= we)
    tokens = tokens_in_window(req, cell.tokens, ws, we) if window_s > 0 else math.nan
    itl = np.empty(0)
    if not cell.tokens.empty:
        traced_ok = ids_in(cell.tokens["request_id"], req["request_id"][ok])
        itl = pooled_itl_ms(cell.tokens if traced_ok.all() else cell.tokens[traced_ok])
    cpu, lag = _client_health(cell.client, ws, we)
    n_started = int((started_in & ~cut).sum())
    n_ok = int(ok.sum())
    client_tokens = float(req["output_tokens"].fillna(0).sum())
    server_tokens, check = _token_check(client_tokens, meta)
    ttft = req["ttft_ms"].to_numpy(dtype=float)[ok]
    tpot = req["tpot_ms"].to_numpy(dtype=float)[ok]
    return {
        "window_s": window_s,
        "requests": n_ok,
        "failures": n_failed,
        "interrupted": int(cut.sum()),
        "error_rate": n_failed / n_started if n_started else math.nan,
        "throughput_tok_s": tokens / window_s if window_s > 0 else math.nan,
        "req_per_s": float(completed_in.sum()) / window_s if window_s > 0 else math.nan,
        "p50_latency_ms": _pct(e2e[ok], 50),
        "p95_latency_ms": _pct(e2e[ok], 95),
        "p99_latency_ms": _pct(e2e[ok], 99),
        "ttft_p50_ms": _pct(ttft, 50),
        "ttft_p95_ms": _pct(ttft, 95),
        "tpot_p50_ms": _pct(tpot, 50),
        "tpot_p95_ms": _pct(tpot, 95),
        "itl_p99_ms": _pct(itl, 99),
        "prompt_tokens_mean": _mean(req["prompt_tokens"].to_numpy(dtype=float)[ok]),
        "output_tokens_mean": _mean(req["output_tokens"].to_numpy(dtype=float)[ok]),
        "source": "request_log",
        "client_cpu_pct": cpu,
        "dispatch_lag_p99_ms": lag,
        "client_bound": bool(cpu >= CLIENT_CPU_LIMIT_PCT or lag >= CLIENT_LAG_LIMIT_MS),
        "client_output_tokens": client_tokens,
        "server_generation_tokens": server_tokens,
        "token_check": check,
    }


def _from_locust_csv(cell: CellData) -> dict[str, Any]:
    """Approximate figures from Locust's own CSVs (response_length = output tokens, times rounded)."""
    stats = cell.locust_stats
    rows = stats[stats["Name"] != "Aggregated"]
    if rows.empty:
        rows = stats
    hist = cell.locust_history
    duration = cell.metadata.get("duration_s")
    if duration is None and not hist.empty and "Timestamp" in hist:
        duration = float(hist["Timestamp"].max() - hist["Timestamp"].min())
    n = float(rows["Request Count"].sum())
    fails = float(rows["Failure Count"].sum())
    tokens = float((rows["Average Content Size"] * rows["Request Count"]).sum())
    weights = rows["Request Count"].to_numpy(dtype=float)

    def weighted(col: str) -> float:
        if col not in rows or weights.sum() == 0:
            return math.nan
        return float(np.average(pd.to_numeric(rows[col], errors="coerce").fillna(0), weights=weights))

    window = float(duration) if duration is not None else math.nan
    has_window = window > 0
    return {
        "window_s": window if has_window else math.nan,
        "requests": int(n - fails),
        "failures": int(fails),
        "error_rate": fails / n if n else math.nan,
        "throughput_tok_s": tokens / window if has_window else math.nan,
        "req_per_s": (n - fails) / window if has_window else math.nan,
        "p50_latency_ms": weighted("50%"),
        "p95_latency_ms": weighted("95%"),
        "p99_latency_ms": weighted("99%"),
        "source": "locust_csv",
        "client_bound": False,
        "token_check": "n/a (Locust CSV only)",
    }


def cell_row(cell: CellData) -> dict[str, Any]:
    """One capacity row; a cell with neither request log nor Locust stats is marked 'no data'."""
    row: dict[str, Any] = {c: math.nan for c in CAPACITY_COLUMNS}
    row.update(_key(cell, cell.requests))
    if not cell.requests.empty:
        ws, we = window_bounds(
            cell.requests, float(cell.metadata.get("warmup_s", 0.0)), cell.metadata.get("duration_s")
        )
        if we - ws <= 0:
            row.update(source="none", token_check="n/a", client_bound=False)
            row["status"] = f"no data: zero-length window (warm-up {cell.metadata.get('warmup_s', 0)} s)"
            return row
        row.update(_from_request_log(cell))
    elif not cell.locust_stats.empty:
        row.update(_from_locust_csv(cell))
    else:
        row.update(source="none", token_check="n/a", client_bound=False)
    row["status"] = cell.metadata.get("status", "completed") if row["source"] != "none" else "no data"
    return row


def capacity_table(cells: Iterable[CellData]) -> pd.DataFrame:
    """One row per cell, sorted by target, workload, concurrency, max_new_tokens, repeat."""
    table = pd.DataFrame([cell_row(c) for c in cells], columns=CAPACITY_COLUMNS)
    return table.sort_values(["target_label", "workload", "concurrency", "max_new_tokens", "repeat"]).reset_index(
        drop=True
    )
