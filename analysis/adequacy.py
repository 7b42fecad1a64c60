"""Is a cell long and clean enough to support a verdict? Named reasons per cell, from its capacity row.

Pure: a capacity table in, the same table with `adequate` (bool) and `adequacy` ("ok" or the reasons,
"; "-joined) out. Thresholds are options; their defaults are documented in METRICS.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from runformat.batchmeans import BATCH_LIFETIMES, MIN_BATCHES

__all__ = ["DEFAULT_THRESHOLDS", "AdequacyThresholds", "judge_adequacy", "reasons"]


@dataclass(frozen=True)
class AdequacyThresholds:
    """When a cell stops being evidence. Every default is documented in METRICS.md."""

    min_window_lifetimes: float = 5.0  # steady window ≥ this × the cell's p95 end-to-end latency
    min_requests: int = 50  # completed requests in the window
    max_ci_pct: float = 10.0  # throughput and p95 CI half-width, % of the value
    wave_share: float = 0.5  # share of completions landing with another that means closed-loop waves
    wave_excess: float = 0.25  # ... and by this much above what independent users would give
    max_lag1: float = 0.5  # lag-1 autocorrelation of the batch means (checked from 10 batches on)
    max_prefix_cache_hit_rate: float = 0.2  # server prefix-cache hits ÷ queries for a workload not sharing prefixes


DEFAULT_THRESHOLDS = AdequacyThresholds()


def _f(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _rel_half_pct(value: float, low: float, high: float) -> float:
    if math.isnan(value) or math.isnan(low) or math.isnan(high) or value == 0:
        return math.nan
    return max(high - value, value - low) / abs(value) * 100.0


def _ci_reasons(row: Mapping[Any, Any], th: AdequacyThresholds) -> list[str]:
    batches = int(_f(row.get("ci_batches")) or 0) if not math.isnan(_f(row.get("ci_batches"))) else 0
    if batches < MIN_BATCHES:
        return [
            f"too short for a CI: the window holds {batches} batches of ≥ {BATCH_LIFETIMES:g} request lifetimes "
            f"(need {MIN_BATCHES})"
        ]
    out = []
    for metric, name in (("throughput_tok_s", "throughput"), ("p95_latency_ms", "p95 latency")):
        pct = _rel_half_pct(_f(row.get(metric)), _f(row.get(f"{metric}_ci95_low")), _f(row.get(f"{metric}_ci95_high")))
        if pct > th.max_ci_pct:
            out.append(f"{name} CI ±{pct:.1f}% wider than ±{th.max_ci_pct:g}%")
    lag1 = _f(row.get("batch_lag1_autocorr"))
    if batches >= 10 and lag1 > th.max_lag1:
        out.append(f"batch means autocorrelated (lag-1 {lag1:.2f} > {th.max_lag1:g}): batches too short")
    return out


def reasons(row: Mapping[Any, Any], th: AdequacyThresholds = DEFAULT_THRESHOLDS) -> list[str]:
    """Why this cell cannot support a verdict; [] when it can."""
    status = str(row.get("status", ""))
    if status.startswith("no data") or row.get("source") == "none":
        return ["nothing measured (see status)"]
    out = []
    if status not in ("completed", "nan", ""):
        out.append(f"cell status: {status}")
    if row.get("source") == "locust_csv":
        return [*out, "approximate: Locust CSVs only (rounded percentiles, no CI)"]
    window, p95 = _f(row.get("window_s")), _f(row.get("p95_latency_ms")) / 1000.0
    if not math.isnan(p95) and window < th.min_window_lifetimes * p95:
        out.append(f"window {window:.1f} s < {th.min_window_lifetimes:g}× p95 end-to-end ({p95:.1f} s)")
    requests = _f(row.get("requests"))
    if not requests >= th.min_requests:
        out.append(f"{0 if math.isnan(requests) else int(requests)} completed requests < {th.min_requests}")
    ramp, warmup = _f(row.get("ramp_s")), _f(row.get("warmup_s"))
    if not math.isnan(ramp) and not math.isnan(warmup) and ramp > warmup:
        out.append(f"ramp {ramp:.1f} s (users ÷ spawn rate) not finished when the window opened ({warmup:g} s)")
    share, expected = _f(row.get("completion_sync_share")), _f(row.get("completion_sync_expected"))
    if share >= th.wave_share and share >= (0.0 if math.isnan(expected) else expected) + th.wave_excess:
        exp_text = "" if math.isnan(expected) else f", ~{expected * 100:.0f}% if users were independent"
        out.append(
            f"closed-loop waves: {share * 100:.0f}% of completions land with another{exp_text} "
            "(vary output lengths, e.g. --output-range-ratio 0.5)"
        )
    out.extend(_ci_reasons(row, th))
    if row.get("client_bound") is True or row.get("client_bound") == 1:
        out.append(f"client-bound: {row.get('client_bound_signal') or 'load generator saturated'}")
    if str(row.get("token_check", "")).startswith("mismatch"):
        out.append(f"token cross-check {row.get('token_check')}")
    suspect = _f(row.get("suspect_token_requests"))
    if suspect > 0:
        out.append(
            f"server usage counts suspect in {int(suspect)} request(s): above max_tokens or fewer than the "
            "token events (tokens counted from events instead)"
        )
    lost_detail = row.get("records_lost_detail")
    if isinstance(lost_detail, str) and lost_detail:
        out.append(f"records lost: {lost_detail}")
    hit = _f(row.get("prefix_cache_hit_rate"))
    if hit > th.max_prefix_cache_hit_rate and row.get("prefix_sharing") is not True:
        out.append(
            f"server prefix-cache hit rate {hit * 100:.0f}% although the workload asked for no sharing "
            "(repeated prompts are served from cache)"
        )
    return out


def judge_adequacy(capacity: pd.DataFrame, thresholds: AdequacyThresholds = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """The table with `adequate` and `adequacy` (re)computed for every row."""
    table = capacity.copy()
    found = [reasons(r, thresholds) for r in table.to_dict("records")]
    table["adequate"] = [not r for r in found]
    table["adequacy"] = ["; ".join(r) if r else "ok" for r in found]
    return table
