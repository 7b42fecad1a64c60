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

from analysis.adequacy import DEFAULT_THRESHOLDS, AdequacyThresholds, judge_adequacy
from analysis.delivery import DELIVERY_COLUMNS, delivery_row
from analysis.openloop import OPEN_LOOP_COLUMNS, open_loop_row
from analysis.traces import ids_in, pooled_itl_ms
from analysis.uncertainty import CellCI, cell_ci, completion_sync, tokens_per_bin
from runformat.records import INTERRUPTED_PREFIX

__all__ = [
    "CAPACITY_COLUMNS",
    "CLIENT_CPU_LIMIT_PCT",
    "CLIENT_LAG_LIMIT_MS",
    "SORT_COLUMNS",
    "CellData",
    "capacity_table",
    "cell_row",
    "cell_window",
    "tokens_in_window",
    "window_bounds",
]

# Cells in table order: closed-loop cells by users, open-loop ones by offered rate.
SORT_COLUMNS = ["target_label", "workload", "concurrency", "offered_rate_req_s", "max_new_tokens", "repeat"]
CLIENT_CPU_LIMIT_PCT = 90.0
CLIENT_LAG_LIMIT_MS = 10.0
CLIENT_SATURATED_SHARE = 0.2  # share of the window's seconds that must be saturated to call a cell client-bound

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
    "throughput_tok_s_ci95_low",
    "throughput_tok_s_ci95_high",
    "req_per_s",
    "req_per_s_ci95_low",
    "req_per_s_ci95_high",
    "p50_latency_ms",
    "p95_latency_ms",
    "p95_latency_ms_ci95_low",
    "p95_latency_ms_ci95_high",
    "p99_latency_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p95_ms_ci95_low",
    "ttft_p95_ms_ci95_high",
    "tpot_p50_ms",
    "tpot_p95_ms",
    "tpot_p95_ms_ci95_low",
    "tpot_p95_ms_ci95_high",
    "itl_p99_ms",
    "prompt_tokens_mean",
    "output_tokens_mean",
    "source",
    "ci_batches",
    "ci_batch_s",
    "batch_lag1_autocorr",
    "warmup_s",
    "ramp_s",
    "completion_sync_share",
    "completion_sync_expected",
    "client_cpu_pct",
    "dispatch_lag_p99_ms",
    "client_saturated_share",
    "client_bound",
    "client_bound_signal",
    "client_output_tokens",
    "server_generation_tokens",
    "token_check",
    "suspect_token_requests",
    "prefix_cache_hit_rate",
    "prefix_sharing",
    *DELIVERY_COLUMNS,
    *OPEN_LOOP_COLUMNS,
    "adequate",
    "adequacy",
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
    drops: pd.DataFrame = field(default_factory=pd.DataFrame)  # open loop: dropped arrivals
    arrivals: list[dict[str, Any]] = field(default_factory=list)  # open loop: each process's dispatcher summary
    delivery: dict[str, Any] = field(default_factory=dict)  # distributed: the master's PREFIX_workers.json


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


def cell_window(cell: CellData) -> tuple[float, float]:
    """The cell's steady window from its request log and metadata (warmup_s, duration_s); see window_bounds."""
    meta = cell.metadata
    return window_bounds(cell.requests, float(meta.get("warmup_s", 0.0)), meta.get("duration_s"))


def tokens_in_window(requests: pd.DataFrame, tokens: pd.DataFrame, ws: float, we: float) -> float:
    """Output tokens whose arrival lies in [ws, we], all requests (successful or not); see `tokens_per_bin`."""
    return float(tokens_per_bin(requests, tokens, np.array([ws, we], dtype=float)).sum())


def _pct(values: pd.Series | np.ndarray, q: float) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(np.percentile(arr, q)) if arr.size else math.nan


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _client_health(client: pd.DataFrame, ws: float, we: float) -> dict[str, Any]:
    """Client CPU and dispatch lag inside the window, and whether the generator was *sustainedly* saturated.

    A second counts as saturated when its CPU ≥ CLIENT_CPU_LIMIT_PCT or its lag p99 ≥ CLIENT_LAG_LIMIT_MS;
    the cell is client-bound when at least CLIENT_SATURATED_SHARE of its seconds (and 2 or more) are, so one
    noisy sample never flags a cell. Rows with no active users (the shutdown row) are not load samples.
    """
    none = {"client_cpu_pct": math.nan, "dispatch_lag_p99_ms": math.nan, "client_saturated_share": math.nan}
    if client.empty or "wall_s" not in client.columns:
        return {**none, "client_bound": False, "client_bound_signal": ""}
    inside = client[(client["wall_s"] >= ws) & (client["wall_s"] <= we)]
    if "active_users" in inside.columns:
        inside = inside[pd.to_numeric(inside["active_users"], errors="coerce").fillna(1) > 0]
    if inside.empty:
        return {**none, "client_bound": False, "client_bound_signal": ""}
    cpu = inside["cpu_pct"].to_numpy(dtype=float)
    lag = inside["dispatch_lag_p99_ms"].to_numpy(dtype=float)
    cpu_hot, lag_hot = cpu >= CLIENT_CPU_LIMIT_PCT, lag >= CLIENT_LAG_LIMIT_MS
    share = float((cpu_hot | lag_hot).mean())
    bound = share >= CLIENT_SATURATED_SHARE and int((cpu_hot | lag_hot).sum()) >= 2
    signals = []
    if bound and cpu_hot.any():
        signals.append(f"CPU ≥ {CLIENT_CPU_LIMIT_PCT:g}% in {cpu_hot.mean() * 100:.0f}% of seconds")
    if bound and lag_hot.any():
        signals.append(f"dispatch lag p99 ≥ {CLIENT_LAG_LIMIT_MS:g} ms in {lag_hot.mean() * 100:.0f}% of seconds")
    return {
        "client_cpu_pct": float(inside.groupby("process")["cpu_pct"].mean().max()),
        "dispatch_lag_p99_ms": float(np.median(lag)),
        "client_saturated_share": share,
        "client_bound": bool(bound),
        "client_bound_signal": "; ".join(signals),
    }


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


def _interrupted(req: pd.DataFrame) -> np.ndarray:
    """Records the load generator marked as cut off by the end of the run (user stopped mid-request)."""
    if "error" not in req.columns:
        return np.zeros(len(req), dtype=bool)
    return req["error"].astype("string").str.startswith(INTERRUPTED_PREFIX).fillna(False).to_numpy(dtype=bool)


def sync_tolerance_s(tpot_p50_ms: float) -> float:
    """How close two completions must be to count as finishing in the same engine step (seconds)."""
    if not tpot_p50_ms > 0:
        return 0.005
    return min(max(tpot_p50_ms / 4.0, 0.5), 5.0) / 1000.0


def _sync_expected(concurrency: Any, steps_per_request: float) -> float:
    """Share of completions expected to land within a step of another if users' phases were independent."""
    try:
        n = int(concurrency)
    except (TypeError, ValueError):
        return math.nan
    if n < 2 or not steps_per_request >= 1:
        return math.nan
    # a neighbour within ±half a step: each of the n−1 other users completes in this step with p = 1/steps
    return 1.0 - (1.0 - min(1.0, 1.0 / steps_per_request)) ** (n - 1)


def _suspect_tokens(req: pd.DataFrame) -> int:
    """Requests whose server usage count was not believable (the load generator counted events instead)."""
    if "tokens_source" not in req:
        return 0
    return int((req["tokens_source"] == "suspect").sum())


def _from_request_log(cell: CellData) -> dict[str, Any]:
    req = cell.requests
    meta = cell.metadata
    ws, we = cell_window(cell)
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
    n_started = int((started_in & ~cut).sum())
    n_ok = int(ok.sum())
    client_tokens = float(req["output_tokens"].fillna(0).sum())
    server_tokens, check = _token_check(client_tokens, meta)
    ttft = req["ttft_ms"].to_numpy(dtype=float)[ok]
    tpot = req["tpot_ms"].to_numpy(dtype=float)[ok]
    tpot_p50 = _pct(tpot, 50)
    steps = (_pct(e2e[ok], 50) - _pct(ttft, 50)) / tpot_p50 + 1.0 if tpot_p50 > 0 else math.nan
    row = {
        "window_s": window_s,
        "requests": n_ok,
        "failures": n_failed,
        "interrupted": int(cut.sum()),
        "suspect_token_requests": _suspect_tokens(req),
        "error_rate": n_failed / n_started if n_started else math.nan,
        "throughput_tok_s": tokens / window_s if window_s > 0 else math.nan,
        "req_per_s": float(completed_in.sum()) / window_s if window_s > 0 else math.nan,
        "p50_latency_ms": _pct(e2e[ok], 50),
        "p95_latency_ms": _pct(e2e[ok], 95),
        "p99_latency_ms": _pct(e2e[ok], 99),
        "ttft_p50_ms": _pct(ttft, 50),
        "ttft_p95_ms": _pct(ttft, 95),
        "tpot_p50_ms": tpot_p50,
        "tpot_p95_ms": _pct(tpot, 95),
        "itl_p99_ms": _pct(itl, 99),
        "prompt_tokens_mean": _mean(req["prompt_tokens"].to_numpy(dtype=float)[ok]),
        "output_tokens_mean": _mean(req["output_tokens"].to_numpy(dtype=float)[ok]),
        "source": "request_log",
        # completions within a few ms of another (one engine step flushes its streams together; TPOT can
        # hold prefill stalls, so a quarter of it, capped at 5 ms, stays inside one step)
        "completion_sync_share": completion_sync(completed_at[completed_in], sync_tolerance_s(tpot_p50)),
        "completion_sync_expected": _sync_expected(meta.get("users"), steps),
        **_client_health(cell.client, ws, we),
        "client_output_tokens": client_tokens,
        "server_generation_tokens": server_tokens,
        "token_check": check,
    }
    row.update(open_loop_row(req, cell.drops, cell.arrivals, ws, we))
    if window_s > 0:
        row.update(cell_ci(req, cell.tokens, CellCI(ws, we, start, ok, completed_in, completed_at)))
    return row


def _from_locust_csv(cell: CellData) -> dict[str, Any]:
    """Approximate figures from Locust's own CSVs (response_length = output tokens, times rounded).

    Locust rewrites `_stats.csv` on a timer, so it misses about the last second of requests: counts and
    throughput from here run slightly low (see METRICS.md)."""
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


def _ramp_s(meta: dict[str, Any]) -> float:
    """Seconds Locust needs to start every user (users ÷ spawn rate); NaN when either is unknown."""
    try:
        return float(meta["users"]) / float(meta["spawn_rate"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return math.nan


def _prefix_cache(meta: dict[str, Any]) -> dict[str, Any]:
    """Server prefix-cache hits ÷ queries over the cell (from /metrics), and whether the workload asked to share."""
    counts = meta.get("server_prefix_cache") or {}
    try:
        queries = float(counts.get("queries") or 0)
        rate = float(counts.get("hits") or 0) / queries if queries > 0 else math.nan
    except (TypeError, ValueError, AttributeError):
        rate = math.nan
    command = " ".join(str(part) for part in meta.get("command") or [])
    sharing = bool(meta.get("shared_prefix_tokens")) or "--shared-prefix-tokens" in command
    return {"prefix_cache_hit_rate": rate, "prefix_sharing": sharing}


def cell_row(cell: CellData) -> dict[str, Any]:
    """One capacity row; a cell with neither request log nor Locust stats is marked 'no data'."""
    row: dict[str, Any] = {c: math.nan for c in CAPACITY_COLUMNS}
    row.update(_key(cell, cell.requests))
    row.update(warmup_s=float(cell.metadata.get("warmup_s", math.nan)), ramp_s=_ramp_s(cell.metadata))
    row.update(_prefix_cache(cell.metadata))
    row.update(delivery_row(cell.delivery))
    if not cell.requests.empty:
        ws, we = cell_window(cell)
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


def capacity_table(cells: Iterable[CellData], thresholds: AdequacyThresholds = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """One row per cell, sorted by target, workload, concurrency, max_new_tokens, repeat, judged for adequacy."""
    table = pd.DataFrame([cell_row(c) for c in cells], columns=CAPACITY_COLUMNS)
    table = table.sort_values(SORT_COLUMNS)
    return judge_adequacy(table.reset_index(drop=True), thresholds)
