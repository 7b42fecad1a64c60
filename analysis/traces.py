"""Token arrival traces: parsing the per-request `arrivals_ms`/`counts` strings, selecting and pooling them.

Vectorised in Arrow (split + cast run in C++): traces hold one number per token, so for a large run this
is the bulk of the parsing work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ids_in", "parse_traces", "pooled_itl_ms", "select_traces"]


def _split_traces(traces: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(events per row, arrival_ms per event, tokens per event or None when every event carries one)."""
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


def parse_traces(traces: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def select_traces(requests: pd.DataFrame, tokens: pd.DataFrame) -> pd.DataFrame:
    """`requests` with their trace columns (`arrivals_ms`, `counts`) joined on request_id; NaN where none."""
    if tokens.empty:
        return requests.assign(arrivals_ms=None, counts="")
    # narrow the traces to these requests first: merging all of them is costly
    traced = requests.merge(tokens[ids_in(tokens["request_id"], requests["request_id"])], on="request_id", how="left")
    return traced if "counts" in traced.columns else traced.assign(counts="")


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
