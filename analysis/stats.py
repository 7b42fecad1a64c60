"""Small-sample statistics for repeated cells: Student-t CDF/quantile, mean ± 95% CI, Welch's t-test.

The t distribution comes from `runformat.batchmeans` (no scipy), shared with the cells' batch-means CIs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runformat.batchmeans import t_cdf, t_quantile

__all__ = ["MeanCI", "WelchResult", "mean_ci", "t_cdf", "t_quantile", "welch_test"]


@dataclass(frozen=True)
class MeanCI:
    """Mean of n values and the half-width of its two-sided confidence interval (NaN when n < 2)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> MeanCI:
    """mean ± t_{(1+c)/2, n−1} · s/√n (sample standard deviation s, ddof=1)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    n = int(arr.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, 0)
    mean = float(arr.mean())
    if n < 2:
        return MeanCI(mean, math.nan, 1)
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    return MeanCI(mean, t_quantile((1.0 + confidence) / 2.0, n - 1) * sem, n)


@dataclass(frozen=True)
class WelchResult:
    t: float
    df: float
    p_value: float

    def significant(self, alpha: float = 0.05) -> bool:
        return not math.isnan(self.p_value) and self.p_value < alpha


def welch_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> WelchResult:
    """Two-sided Welch's t-test for a difference in means (unequal variances); NaN when either n < 2."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size < 2 or y.size < 2:
        return WelchResult(math.nan, math.nan, math.nan)
    vx, vy = float(x.var(ddof=1)) / x.size, float(y.var(ddof=1)) / y.size
    diff = float(y.mean() - x.mean())
    if vx + vy == 0.0:
        return WelchResult(math.copysign(math.inf, diff) if diff else 0.0, math.inf, 0.0 if diff else 1.0)
    t = diff / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    p = 2.0 * (1.0 - t_cdf(abs(t), df))
    return WelchResult(t, df, min(max(p, 0.0), 1.0))
