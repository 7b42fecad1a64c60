"""One-sample Kolmogorov–Smirnov test, and the CDFs the arrival checks compare inter-arrival gaps with.

Dependency-free: the statistic D = sup |F_n(x) − F(x)| and the asymptotic p-value from the Kolmogorov
distribution with Stephens' small-sample correction (√n + 0.12 + 0.11/√n) · D.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["exponential_cdf", "gamma_cdf", "ks_test"]


def ks_test(samples: Sequence[float], cdf: Callable[[float], float]) -> tuple[float, float]:
    """(D, p-value) of `samples` against the continuous distribution `cdf`."""
    xs = sorted(samples)
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    d = 0.0
    for i, x in enumerate(xs):
        f = cdf(x)
        d = max(d, (i + 1) / n - f, f - i / n)
    return d, _kolmogorov_sf((math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d)


def _kolmogorov_sf(t: float) -> float:
    """P(K > t) for the Kolmogorov distribution: 2 Σ (−1)^(k−1) exp(−2k²t²)."""
    if t <= 0:
        return 1.0
    if t < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * t * t)
        total += term if k % 2 else -term
        if term < 1e-16:
            break
    return min(1.0, max(0.0, 2.0 * total))


def exponential_cdf(rate: float) -> Callable[[float], float]:
    return lambda x: 1.0 - math.exp(-rate * x) if x > 0 else 0.0


def gamma_cdf(shape: float, scale: float) -> Callable[[float], float]:
    """The gamma CDF P(shape, x/scale) (regularised lower incomplete gamma, series or continued fraction)."""

    def cdf(x: float) -> float:
        if x <= 0:
            return 0.0
        return _lower_regularized(shape, x / scale)

    return cdf


def _lower_regularized(a: float, x: float) -> float:
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:  # series
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return min(1.0, total * math.exp(log_prefix))
    # continued fraction for the upper tail (Lentz), as in Numerical Recipes' gcf
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return max(0.0, 1.0 - math.exp(log_prefix) * h)
