"""Confidence intervals for one cell's steady window by non-overlapping batch means (Law & Kelton, ch. 9).

A closed loop's output is autocorrelated: neighbouring seconds share the same users and the same engine
batch, so per-second samples are not independent and the i.i.d. formula understates the error. Instead
the window is cut into k equal batches, each at least `BATCH_LIFETIMES` request lifetimes long (the
correlation time of a closed loop is about one request lifetime: by then every user has replaced its
request), and the k batch means are treated as independent: mean ± t_{0.975, k−1} · s/√k. Fewer than
`MIN_BATCHES` batches gives no interval — the window is too short to say.

Quantiles use the same batches: the CI of P(X ≤ x̂_q) is a batch-means CI on the per-batch share of
values at or below x̂_q (never narrower than the i.i.d. binomial one), inverted through the empirical
quantile function. Pure Python: both the analysis and the live stopping rule inside Locust use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BATCH_LIFETIMES",
    "MAX_BATCHES",
    "MIN_BATCHES",
    "BatchCI",
    "batch_count",
    "batch_means_ci",
    "lag1_autocorr",
    "percentile",
    "proportion_band",
    "t_cdf",
    "t_quantile",
]

BATCH_LIFETIMES = 2.0  # each batch spans at least this many median request lifetimes
MIN_BATCHES = 5  # fewer batches: no interval, the window is too short
MAX_BATCHES = 20  # more batches add little once each is long enough (Law & Kelton: 10–30)


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b), by Lentz's continued fraction (~1e-12)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with df degrees of freedom (df may be fractional, as in Welch)."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value with P(T ≤ t) = p, by bisection on the CDF."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if math.isinf(df):
        df = 1e9
    lo, hi = -1e4, 1e4
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def percentile(values: Sequence[float], q: float) -> float:
    """Percentile q in [0, 100] with linear interpolation between order statistics (numpy's default);
    NaN for no values. The one percentile rule of the suite's pure-Python code."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = min(max(q, 0.0), 100.0) / 100.0 * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def batch_count(window_s: float, lifetime_s: float, max_batches: int = MAX_BATCHES) -> int:
    """How many equal batches the window holds when each spans ≥ BATCH_LIFETIMES request lifetimes."""
    if not window_s > 0:
        return 0
    if not lifetime_s > 0:
        return max_batches
    return max(0, min(max_batches, int(window_s // (BATCH_LIFETIMES * lifetime_s))))


def lag1_autocorr(values: Sequence[float]) -> float:
    """Lag-1 autocorrelation of the batch means (NaN below 3 values or with zero variance)."""
    n = len(values)
    if n < 3:
        return math.nan
    mean = sum(values) / n
    dev = [v - mean for v in values]
    var = sum(d * d for d in dev)
    if var == 0.0:
        return math.nan
    return sum(dev[i] * dev[i + 1] for i in range(n - 1)) / var


@dataclass(frozen=True)
class BatchCI:
    """A batch-means estimate: mean, half-width of its CI (NaN when too few batches) and diagnostics."""

    mean: float
    half_width: float
    batches: int
    lag1: float = math.nan

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def rel_half_width_pct(self) -> float:
        """Half-width as % of the mean (NaN when either is unknown or the mean is 0)."""
        if math.isnan(self.half_width) or not self.mean:
            return math.nan
        return abs(self.half_width / self.mean) * 100.0


def batch_means_ci(batch_values: Sequence[float], confidence: float = 0.95, min_batches: int = MIN_BATCHES) -> BatchCI:
    """mean ± t_{(1+c)/2, k−1} · s/√k over k batch means; no interval when k < min_batches."""
    values = [float(v) for v in batch_values if not math.isnan(float(v))]
    k = len(values)
    if k == 0:
        return BatchCI(math.nan, math.nan, 0)
    mean = sum(values) / k
    if k < max(min_batches, 2):
        return BatchCI(mean, math.nan, k, lag1_autocorr(values))
    var = sum((v - mean) ** 2 for v in values) / (k - 1)
    half = t_quantile((1.0 + confidence) / 2.0, k - 1) * math.sqrt(var / k)
    return BatchCI(mean, half, k, lag1_autocorr(values))


def proportion_band(
    below: Sequence[int], totals: Sequence[int], q: float, confidence: float = 0.95, min_batches: int = MIN_BATCHES
) -> tuple[float, float]:
    """CI (in probability) of the share of values ≤ the q-quantile estimate, from per-batch counts.

    `below[b]` of `totals[b]` values in batch b lie at or below x̂_q. The half-width is the larger of the
    batch-means one (honest under autocorrelation) and the i.i.d. binomial one (z·√(q(1−q)/n)), so a
    window whose batches happen to agree is never reported as more precise than independent samples.
    (NaN, NaN) with fewer than `min_batches` non-empty batches.
    """
    shares = [b / t for b, t in zip(below, totals, strict=True) if t > 0]
    n = sum(totals)
    if len(shares) < max(min_batches, 2) or n == 0:
        return math.nan, math.nan
    ci = batch_means_ci(shares, confidence, min_batches)
    z = t_quantile((1.0 + confidence) / 2.0, math.inf)
    half = max(ci.half_width, z * math.sqrt(q * (1.0 - q) / n))
    return max(0.0, q - half), min(1.0, q + half)
