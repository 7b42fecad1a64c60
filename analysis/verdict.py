"""Differences between two sides with their 95% CI, and the verdict they support.

A side is one target's cell (or its repeats). Its standard error combines the within-run uncertainty
(the cell's batch-means or percentile CI) with the run-to-run spread when there are repeats: the larger
of the two is used, so repeats of a deterministic server never look more precise than one window says.
The change `candidate / baseline − 1` gets a CI by the delta method on the log ratio with Welch–
Satterthwaite degrees of freedom. "significant" only when that CI excludes 0; "inconclusive" when either
side is inadequate or has no CI; otherwise "not distinguishable".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from runformat.batchmeans import t_quantile

__all__ = ["CI_METRICS", "Change", "Estimate", "Verdict", "adequate_mask", "change", "side_estimate"]

# metrics whose cells carry `<metric>_ci95_low/high`
CI_METRICS = ("throughput_tok_s", "req_per_s", "p95_latency_ms", "ttft_p95_ms", "tpot_p95_ms")


class Verdict(StrEnum):
    SIGNIFICANT = "significant"
    NOT_DISTINGUISHABLE = "not distinguishable"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Estimate:
    """One side of a comparison: value, standard error, its degrees of freedom, and adequacy."""

    value: float
    se: float
    df: float
    repeats: int
    adequate: bool
    why: str = ""  # first inadequacy reason
    run_to_run_cv_pct: float = math.nan

    @property
    def half_width(self) -> float:
        if math.isnan(self.se) or not self.df > 0:
            return math.nan
        return t_quantile(0.975, self.df) * self.se


def adequate_mask(rows: pd.DataFrame) -> pd.Series:
    """Which rows are judged adequate (rows never judged count as adequate only if the column is absent)."""
    if "adequate" not in rows:
        return pd.Series(True, index=rows.index)
    return rows["adequate"].map(lambda v: v is True or v == 1)


def _within_se(row: pd.Series, metric: str) -> tuple[float, float]:
    """(se, df) of one cell's figure from its 95% CI; NaN without one."""
    low, high = row.get(f"{metric}_ci95_low", math.nan), row.get(f"{metric}_ci95_high", math.nan)
    k = row.get("ci_batches", math.nan)
    try:
        low, high, k = float(low), float(high), float(k)
    except (TypeError, ValueError):
        return math.nan, math.nan
    if math.isnan(low) or math.isnan(high) or not k >= 2:
        return math.nan, math.nan
    return (high - low) / 2.0 / t_quantile(0.975, k - 1), k - 1


def side_estimate(rows: pd.DataFrame, metric: str) -> Estimate:
    """Combine a side's repeats (rows of the capacity table) into one estimate of `metric`."""
    rows = rows[pd.to_numeric(rows[metric], errors="coerce").notna()] if metric in rows else rows.iloc[0:0]
    if rows.empty:
        return Estimate(math.nan, math.nan, math.nan, 0, False, "no data")
    values = rows[metric].to_numpy(dtype=float)
    within = [_within_se(r, metric) for _, r in rows.iterrows()]
    ses = np.array([w[0] for w in within])
    dfs = np.array([w[1] for w in within])
    good = adequate_mask(rows)
    adequate = bool(good.all())
    why = "" if adequate else str(rows.loc[~good, "adequacy"].iloc[0])
    r = len(values)
    if r == 1:
        return Estimate(float(values[0]), float(ses[0]), float(dfs[0]), 1, adequate, why)
    mean = float(values.mean())
    se_between = float(values.std(ddof=1)) / math.sqrt(r)
    se_within = math.sqrt(float(np.mean(ses**2)) / r) if not np.isnan(ses).any() else math.nan
    cv = float(values.std(ddof=1)) / abs(mean) * 100.0 if mean else math.nan
    if math.isnan(se_within) or se_between >= se_within:
        return Estimate(mean, se_between, r - 1, r, adequate, why, cv)
    return Estimate(mean, se_within, float(dfs.sum()), r, adequate, why, cv)


@dataclass(frozen=True)
class Change:
    """candidate vs baseline as % change with its 95% CI and verdict."""

    pct: float
    low_pct: float
    high_pct: float
    verdict: Verdict
    reason: str = ""

    def text(self, unit: str = "%") -> str:
        """'+12.4% [+8.1, +16.9], significant' — the interval and verdict always travel with the number.

        Why a change is inconclusive is `reason` (the cells' adequacy), shown once beside the table, not here.
        """
        if math.isnan(self.pct):
            return f"n/a ({self.reason})" if self.reason else "n/a"
        ci = "" if math.isnan(self.low_pct) else f" [{self.low_pct:+.1f}, {self.high_pct:+.1f}]"
        return f"{self.pct:+.1f}{unit}{ci}, {self.verdict.value}"

    @property
    def significant(self) -> bool:
        return self.verdict is Verdict.SIGNIFICANT


def _ratio_ci(base: Estimate, cand: Estimate) -> tuple[float, float]:
    """95% CI of cand/base by the delta method on log(cand/base); (NaN, NaN) without both SEs."""
    if math.isnan(base.se) or math.isnan(cand.se) or base.value <= 0 or cand.value <= 0:
        return math.nan, math.nan
    vb, vc = (base.se / base.value) ** 2, (cand.se / cand.value) ** 2
    ratio = cand.value / base.value
    if vb + vc == 0.0:
        return ratio, ratio
    denominator = vb**2 / max(base.df, 1.0) + vc**2 / max(cand.df, 1.0)
    df = (vb + vc) ** 2 / denominator if denominator > 0 else math.inf
    half = t_quantile(0.975, df) * math.sqrt(vb + vc)
    return ratio * math.exp(-half), ratio * math.exp(half)


def change(base: Estimate, cand: Estimate, scale: float = 1.0) -> Change:
    """% change of cand vs base; `scale` multiplies the ratio (e.g. a price ratio, or −1 powers for cost)."""
    if math.isnan(base.value) or math.isnan(cand.value) or base.value == 0:
        return Change(math.nan, math.nan, math.nan, Verdict.INCONCLUSIVE, "no data on one side")
    pct = (scale * cand.value / base.value - 1.0) * 100.0
    lo, hi = _ratio_ci(base, cand)
    low, high = (scale * lo - 1.0) * 100.0, (scale * hi - 1.0) * 100.0
    if not base.adequate or not cand.adequate:
        side = base if not base.adequate else cand
        return Change(pct, low, high, Verdict.INCONCLUSIVE, f"inadequate cell ({side.why})")
    if math.isnan(low):
        return Change(pct, low, high, Verdict.INCONCLUSIVE, "no CI")
    verdict = Verdict.SIGNIFICANT if (low > 0 or high < 0) else Verdict.NOT_DISTINGUISHABLE
    return Change(pct, low, high, verdict)
