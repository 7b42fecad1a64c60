"""Baseline vs candidate per workload × concurrency × max_new_tokens: values, % change with 95% CI, verdicts, flags.

Every change carries its interval and a verdict (`analysis.verdict`): a flag is raised only for a
significant change beyond its threshold, never for a difference the data cannot tell from zero or for
an inadequate cell.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.cost import KEY
from analysis.verdict import Change, Estimate, Verdict, adequate_mask, change, side_estimate

__all__ = ["COMPARE_METRICS", "LATENCY_METRICS", "compare_table", "flag_text", "metric_columns"]

COMPARE_METRICS = ["throughput_tok_s", "p95_latency_ms", "ttft_p95_ms", "tpot_p95_ms"]
LATENCY_METRICS = {"p95_latency_ms": "p95", "ttft_p95_ms": "TTFT p95", "tpot_p95_ms": "TPOT p95"}


def metric_columns(metric: str, base: Estimate, cand: Estimate, ch: Change) -> dict[str, object]:
    """The comparison columns of one metric (also used by the regression gate)."""
    return {
        f"baseline_{metric}": base.value,
        f"candidate_{metric}": cand.value,
        f"baseline_{metric}_ci95": base.half_width,
        f"candidate_{metric}_ci95": cand.half_width,
        f"{metric}_change_pct": ch.pct,
        f"{metric}_change_ci95_low_pct": ch.low_pct,
        f"{metric}_change_ci95_high_pct": ch.high_pct,
        f"{metric}_verdict": ch.verdict.value,
        f"{metric}_change": ch.text(),
    }


def flag_text(row: pd.Series, p95_threshold_pct: float, throughput_drop_pct: float) -> str:
    """Significant breaches a reader must not miss, as one string ('' when none)."""
    flags = []
    significant = Verdict.SIGNIFICANT.value
    for metric, name in LATENCY_METRICS.items():
        pct = row.get(f"{metric}_change_pct", math.nan)
        if row.get(f"{metric}_verdict") == significant and pct > p95_threshold_pct:
            flags.append(f"{name} blow-up {row[f'{metric}_change']} (threshold +{p95_threshold_pct:g}%)")
    tput = row.get("throughput_tok_s_change_pct", math.nan)
    if row.get("throughput_tok_s_verdict") == significant and tput < -throughput_drop_pct:
        flags.append(f"throughput regression {row['throughput_tok_s_change']} (threshold -{throughput_drop_pct:g}%)")
    if math.isnan(row["baseline_throughput_tok_s"]) or math.isnan(row["candidate_throughput_tok_s"]):
        flags.append("no data on one side")
    return "; ".join(flags)


def _adequacy(base: pd.DataFrame, cand: pd.DataFrame) -> str:
    parts = []
    for side, rows in (("baseline", base), ("candidate", cand)):
        bad = rows[~adequate_mask(rows)]
        if len(bad):
            parts.append(f"{side}: {bad['adequacy'].iloc[0]}")
    return "; ".join(parts) or "ok"


def _price(cost: pd.DataFrame, label: str) -> float:
    prices = cost.loc[cost["target_label"] == label, "hourly_price_usd"].dropna()
    return float(prices.iloc[0]) if len(prices) else math.nan


def compare_table(
    capacity: pd.DataFrame,
    cost: pd.DataFrame,
    baseline: str,
    candidate: str,
    p95_threshold_pct: float = 20.0,
    throughput_drop_pct: float = 5.0,
) -> pd.DataFrame:
    """One row per cell present for either target; `flags` names significant regressions and blow-ups."""
    sides = capacity[capacity["target_label"].isin([baseline, candidate])].dropna(subset=["concurrency"])
    price_ratio = _price(cost, candidate) / _price(cost, baseline)
    rows = []
    for key, group in sides.groupby(KEY, sort=True, dropna=False):
        base = group[group["target_label"] == baseline]
        cand = group[group["target_label"] == candidate]
        row: dict[str, object] = dict(zip(KEY, key, strict=True))
        row["repeats_baseline"] = int(base["throughput_tok_s"].notna().sum())
        row["repeats_candidate"] = int(cand["throughput_tok_s"].notna().sum())
        row["adequacy"] = _adequacy(base, cand)
        for metric in COMPARE_METRICS:
            b, c = side_estimate(base, metric), side_estimate(cand, metric)
            row.update(metric_columns(metric, b, c, change(b, c)))
            if metric == "throughput_tok_s":
                row["baseline_run_to_run_cv_pct"] = b.run_to_run_cv_pct
                row["candidate_run_to_run_cv_pct"] = c.run_to_run_cv_pct
                # $/1M ∝ price / throughput: the cost change is the price ratio over the throughput ratio
                usd = change(c, b, price_ratio) if not math.isnan(price_ratio) else change(c, b, math.nan)
                row["usd_per_1m_tokens_change_pct"] = usd.pct
                row["savings_pct"] = -usd.pct
                row["savings_ci95_low_pct"] = -usd.high_pct
                row["savings_ci95_high_pct"] = -usd.low_pct
                row["savings_verdict"] = usd.verdict.value
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    usd_cells = cost.pivot_table(index=KEY, columns="target_label", values="usd_per_1m_tokens", dropna=False)
    for side, label in (("baseline", baseline), ("candidate", candidate)):
        values = usd_cells[label] if label in usd_cells.columns else pd.Series(math.nan, index=usd_cells.index)
        table = table.merge(values.rename(f"{side}_usd_per_1m_tokens").reset_index(), on=KEY, how="left")
    table["flags"] = table.apply(flag_text, axis=1, args=(p95_threshold_pct, throughput_drop_pct))
    table.insert(0, "candidate", candidate)
    table.insert(0, "baseline", baseline)
    return table
