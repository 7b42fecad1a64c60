"""Which capacity columns the report shows first and how their headers read.

The key table (what a decision needs, with 95% CIs) fits an 800–1400 px page; the detail table holds the
rest and sits collapsed below it. Headers are words with units, not column names.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["COLUMN_TITLES", "detail_columns", "key_columns"]

KEY_COLUMNS = [
    "workload",
    "concurrency",
    "max_new_tokens",
    "throughput_tok_s",
    "p95_latency_ms",
    "ttft_p95_ms",
    "tpot_p95_ms",
    "usd_per_1m_tokens",
    "adequate",
]
DETAIL_COLUMNS = [
    "workload",
    "concurrency",
    "max_new_tokens",
    "repeat",
    "requests",
    "error_rate",
    "req_per_s",
    "p50_latency_ms",
    "itl_p99_ms",
    "adequacy",
    "status",
]
# open-loop cells: the offered rate tells their rows apart (key table); what was carried and what the
# arriving user waited go to the detail table (METRICS.md, open-loop cells)
OPEN_LOOP_DETAIL = [
    "achieved_rate_req_s",
    "dropped",
    "dropped_pct",
    "p95_latency_from_schedule_ms",
    "ttft_p95_from_schedule_ms",
    "sustained",
]
COLUMN_TITLES = {
    "workload": "Workload",
    "concurrency": "Users",
    "max_new_tokens": "Max new tokens",
    "offered_rate_req_s": "Offered (req/s)",
    "throughput_tok_s": "Throughput (tok/s)",
    "p95_latency_ms": "p95 latency (ms)",
    "ttft_p95_ms": "TTFT p95 (ms)",
    "tpot_p95_ms": "TPOT p95 (ms)",
    "usd_per_1m_tokens": "$/1M tokens",
    "adequate": "Adequate",
    "repeat": "Repeat",
    "requests": "Requests",
    "error_rate": "Errors",
    "req_per_s": "Requests/s",
    "p50_latency_ms": "p50 latency (ms)",
    "itl_p99_ms": "ITL p99 (ms)",
    "adequacy": "Adequacy reasons",
    "status": "Status",
    "achieved_rate_req_s": "Achieved (req/s)",
    "dropped": "Dropped",
    "dropped_pct": "Dropped (%)",
    "p95_latency_from_schedule_ms": "p95 from schedule (ms)",
    "ttft_p95_from_schedule_ms": "TTFT p95 from schedule (ms)",
    "sustained": "Sustained",
}


def _open_loop(capacity: pd.DataFrame) -> bool:
    return "offered_rate_req_s" in capacity and bool(capacity["offered_rate_req_s"].notna().any())


def _after_concurrency(columns: list[str], extra: list[str]) -> list[str]:
    at = columns.index("concurrency") + 1
    return [*columns[:at], *extra, *columns[at:]]


def key_columns(capacity: pd.DataFrame) -> list[str]:
    """The key table's columns: the cell, throughput, p95, TTFT p95, TPOT p95, $/1M and adequacy."""
    return _after_concurrency(KEY_COLUMNS, ["offered_rate_req_s"]) if _open_loop(capacity) else KEY_COLUMNS


def detail_columns(capacity: pd.DataFrame) -> list[str]:
    """The detail table's columns: the cell again, then everything the key table leaves out."""
    if not _open_loop(capacity):
        return DETAIL_COLUMNS
    return _after_concurrency(DETAIL_COLUMNS, ["offered_rate_req_s", *OPEN_LOOP_DETAIL])
