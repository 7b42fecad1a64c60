"""Which columns each report table shows first and how their headers read.

A key table (what a decision needs, with 95% CIs) fits an 800–1400 px page; its detail table holds the
rest and sits collapsed below it, the row's identifying columns repeated. Headers are words with units,
not column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["COLUMN_TITLES", "TableLayout", "detail_columns", "html_layouts", "key_columns", "open_loop_columns"]

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
    "req_per_s": "Requests per second",
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
    """The detail table's columns: the cell again, then everything the key table leaves out but the
    open-loop figures (a second detail table, so that each fits the page)."""
    return _after_concurrency(DETAIL_COLUMNS, ["offered_rate_req_s"]) if _open_loop(capacity) else DETAIL_COLUMNS


def open_loop_columns(capacity: pd.DataFrame) -> list[str]:
    """The open-loop detail table's columns (none for a closed-loop run): the cell, then what was carried and
    what the arriving user waited."""
    if not _open_loop(capacity):
        return []
    return ["workload", "concurrency", "offered_rate_req_s", "max_new_tokens", *OPEN_LOOP_DETAIL]


@dataclass(frozen=True)
class TableLayout:
    """One HTML table: `key` columns shown, `detail` columns collapsed below (empty: none), each column's
    header, and the columns holding text (left-aligned, allowed to wrap)."""

    key: list[str]
    detail: list[str] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)
    text: frozenset[str] = frozenset()


_TEXT = frozenset(
    {"target_label", "workload", "model", "price_source", "gpu", "kind", "bound_by", "verdict", "tested_concurrency"}
    | {"binding_slo", "probe_loads", "stop_reason", "adequacy", "flags", "status", "parameter", "meaning"}
    | {"throughput_tok_s_change", "p95_latency_ms_change", "ttft_p95_ms_change", "tpot_p95_ms_change", "savings"}
)
_TITLES = {
    **COLUMN_TITLES,
    "target_label": "Target",
    "tokens_per_hour": "Tokens/hour",
    "hourly_price_usd": "$/h",
    "price_source": "$/h source",
    "best_concurrency": "Best users",
    "slo_attainment": "SLO attainment",
    "goodput_req_s": "Goodput (req/s)",
    "tested_concurrency": "Users tested",
    "verdict": "Verdict",
    "memory_ceiling_tok_s": "Memory ceiling (tok/s)",
    "compute_ceiling_tok_s": "Compute ceiling (tok/s)",
    "bound_by": "Bound by",
    "pct_of_ceiling": "Share of ceiling",
    "prompts": "Prompts",
    "errors": "Errors",
    "exact_match_rate": "Exact match",
    "first_divergence_token_median": "First divergence (median token)",
    "token_agreement_mean": "Token agreement",
    "rouge_l_f1_mean": "ROUGE-L F1",
    "length_ratio_mean": "Length ratio",
    "delta_mean_logprob": "Δ mean logprob",
    "perplexity_ratio": "Perplexity ratio",
    "acceptance_rate": "Acceptance",
    "quality_adjusted_usd_per_1m_tokens": "Quality-adjusted $/1M tokens",
    "capacity": "Capacity",
    "passing_load": "Highest passing",
    "failing_load": "Lowest failing",
    "binding_slo": "Binding SLO",
    "probes": "Probes",
    "wall_s": "Wall time (s)",
    "probe_loads": "Probes (load:outcome)",
    "stop_reason": "Stopped",
    "gpu": "GPU",
    "kind": "Kind",
    "tpot_p50_ms": "TPOT p50 (ms)",
    "ttft_p50_ms": "TTFT p50 (ms)",
    "kv_max_concurrency": "KV-limited max users",
    "throughput_band": "Throughput (tok/s) [95% band]",
    "savings_band": "Savings [95% band]",
    "parameter": "Parameter",
    "value": "Value [95% CI]",
    "documented": "Documented",
    "meaning": "Meaning",
    "throughput_tok_s_change": "Δ throughput",
    "p95_latency_ms_change": "Δ p95 latency",
    "ttft_p95_ms_change": "Δ TTFT p95",
    "tpot_p95_ms_change": "Δ TPOT p95",
    "savings": "Savings on $/1M [95% CI]",
    "flags": "Flags",
    "repeats": "Repeats (base/cand)",
}
_CELL = ["target_label", "workload", "concurrency", "max_new_tokens"]


def _layout(key: list[str], detail: list[str] | None = None, **titles: str) -> TableLayout:
    return TableLayout(key, detail or [], {**_TITLES, **titles}, _TEXT)


def html_layouts(baseline: str, candidate: str, search_unit: str = "users") -> dict[str, TableLayout]:
    """Every split table of the HTML report but capacity's, by name; `baseline`/`candidate` name the
    comparison's sides in its headers."""
    pair = ["workload", "concurrency", "max_new_tokens"]
    return {
        "comparison": _layout(
            [
                *pair,
                "throughput_tok_s_change",
                "p95_latency_ms_change",
                "ttft_p95_ms_change",
                "tpot_p95_ms_change",
                "savings",
                "flags",
            ],
            [
                *pair,
                "repeats",
                "baseline_throughput",
                "candidate_throughput",
                "baseline_p95",
                "candidate_p95",
                "adequacy",
            ],
            baseline_throughput=f"{baseline} throughput (tok/s)",
            candidate_throughput=f"{candidate} throughput (tok/s)",
            baseline_p95=f"{baseline} p95 latency (ms)",
            candidate_p95=f"{candidate} p95 latency (ms)",
        ),
        "cost": _layout(
            [*_CELL, "throughput_tok_s", "usd_per_1m_tokens", "hourly_price_usd"], [*_CELL, "tokens_per_hour"]
        ),
        "slo": _layout(
            [
                "target_label",
                "workload",
                "max_new_tokens",
                "best_concurrency",
                "throughput_tok_s",
                "p95_latency_ms",
                "ttft_p95_ms",
                "usd_per_1m_tokens",
                "verdict",
            ],
            ["target_label", "workload", "max_new_tokens", "slo_attainment", "goodput_req_s", "tested_concurrency"],
        ),
        "roofline": _layout(
            [*_CELL, "throughput_tok_s", "pct_of_ceiling", "bound_by"],
            [*_CELL, "memory_ceiling_tok_s", "compute_ceiling_tok_s"],
            concurrency="Users (batch)",
            throughput_tok_s="Measured (tok/s)",
        ),
        "quality": _layout(
            [
                "target_label",
                "workload",
                "max_new_tokens",
                "prompts",
                "exact_match_rate",
                "rouge_l_f1_mean",
                "delta_mean_logprob",
                "acceptance_rate",
            ],
            [
                "target_label",
                "workload",
                "max_new_tokens",
                "errors",
                "first_divergence_token_median",
                "token_agreement_mean",
                "length_ratio_mean",
                "perplexity_ratio",
            ],
        ),
        "search": _layout(
            [
                "target_label",
                "workload",
                "max_new_tokens",
                "capacity",
                "binding_slo",
                "throughput_tok_s",
                "goodput_req_s",
                "usd_per_1m_tokens",
            ],
            [
                "target_label",
                "workload",
                "max_new_tokens",
                "passing_load",
                "failing_load",
                "req_per_s",
                "probes",
                "wall_s",
                "probe_loads",
                "stop_reason",
            ],
            capacity=f"Capacity ({search_unit})",
        ),
        "whatif": _layout(
            ["target_label", "concurrency", "max_new_tokens", "gpu", "kind", "throughput_band", "usd_per_1m_tokens"],
            [
                "target_label",
                "concurrency",
                "max_new_tokens",
                "gpu",
                "tpot_p50_ms",
                "ttft_p50_ms",
                "kv_max_concurrency",
                "hourly_price_usd",
            ],
        ),
    }
