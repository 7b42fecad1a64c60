"""Baseline vs candidate per workload × concurrency × max_new_tokens: values, % change, flags, CIs.

With repeats, each metric is a mean ± 95% CI (Student t) over repeats and the difference is tested with
Welch's t-test; a single repeat gives NaN CIs and no significance verdict.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.cost import KEY
from analysis.stats import mean_ci, welch_test

__all__ = ["COMPARE_METRICS", "compare_table", "flag_text"]

COMPARE_METRICS = ["throughput_tok_s", "p95_latency_ms", "ttft_p95_ms", "tpot_p95_ms"]


def _pct_change(base: float, cand: float) -> float:
    if math.isnan(base) or math.isnan(cand) or base == 0:
        return math.nan
    return (cand - base) / base * 100.0


def _metric_columns(metric: str, base: pd.Series, cand: pd.Series) -> dict[str, object]:
    b, c = mean_ci(base.to_numpy()), mean_ci(cand.to_numpy())
    welch = welch_test(base.to_numpy(), cand.to_numpy())
    return {
        f"baseline_{metric}": b.mean,
        f"candidate_{metric}": c.mean,
        f"{metric}_change_pct": _pct_change(b.mean, c.mean),
        f"baseline_{metric}_ci95": b.half_width,
        f"candidate_{metric}_ci95": c.half_width,
        f"{metric}_p_value": welch.p_value,
        f"{metric}_significant": welch.significant() if not math.isnan(welch.p_value) else None,
    }


def flag_text(row: pd.Series, p95_threshold_pct: float, throughput_drop_pct: float) -> str:
    """The warnings a reader must not miss, as one string ('' when none)."""
    flags = []
    p95 = row["p95_latency_ms_change_pct"]
    if not math.isnan(p95) and p95 > p95_threshold_pct:
        flags.append(f"p95 blow-up {p95:+.1f}% (threshold +{p95_threshold_pct:g}%)")
    tput = row["throughput_tok_s_change_pct"]
    if not math.isnan(tput) and tput < -throughput_drop_pct:
        flags.append(f"throughput regression {tput:+.1f}% (threshold -{throughput_drop_pct:g}%)")
    if math.isnan(row["baseline_throughput_tok_s"]) or math.isnan(row["candidate_throughput_tok_s"]):
        flags.append("no data on one side")
    return "; ".join(flags)


def compare_table(
    capacity: pd.DataFrame,
    cost: pd.DataFrame,
    baseline: str,
    candidate: str,
    p95_threshold_pct: float = 20.0,
    throughput_drop_pct: float = 5.0,
) -> pd.DataFrame:
    """One row per cell present for either target; `flags` names p95 blow-ups and throughput regressions."""
    sides = capacity[capacity["target_label"].isin([baseline, candidate])].dropna(subset=["concurrency"])
    rows = []
    for key, group in sides.groupby(KEY, sort=True):
        base = group[group["target_label"] == baseline]
        cand = group[group["target_label"] == candidate]
        row: dict[str, object] = dict(zip(KEY, key, strict=True))
        row["repeats_baseline"] = int(base["throughput_tok_s"].notna().sum())
        row["repeats_candidate"] = int(cand["throughput_tok_s"].notna().sum())
        for metric in COMPARE_METRICS:
            row.update(_metric_columns(metric, base[metric], cand[metric]))
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    usd = cost.pivot_table(index=KEY, columns="target_label", values="usd_per_1m_tokens", dropna=False)
    for side, label in (("baseline", baseline), ("candidate", candidate)):
        values = usd[label] if label in usd.columns else pd.Series(math.nan, index=usd.index)
        table = table.merge(values.rename(f"{side}_usd_per_1m_tokens").reset_index(), on=KEY, how="left")
    table["usd_per_1m_tokens_change_pct"] = [
        _pct_change(b, c)
        for b, c in zip(table["baseline_usd_per_1m_tokens"], table["candidate_usd_per_1m_tokens"], strict=True)
    ]
    table["flags"] = table.apply(flag_text, axis=1, args=(p95_threshold_pct, throughput_drop_pct))
    table.insert(0, "candidate", candidate)
    table.insert(0, "baseline", baseline)
    return table
