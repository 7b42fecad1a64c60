"""The batch-means rule on inputs whose answers are known by hand."""

from __future__ import annotations

import math

import pytest

from runformat.batchmeans import (
    BatchCI,
    batch_count,
    batch_means_ci,
    lag1_autocorr,
    proportion_band,
    t_quantile,
)


def test_t_quantiles_match_tables() -> None:
    assert t_quantile(0.975, 4) == pytest.approx(2.776445, abs=1e-5)
    assert t_quantile(0.975, 19) == pytest.approx(2.093024, abs=1e-5)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-5)


def test_batch_means_ci_by_hand() -> None:
    ci = batch_means_ci([10.0, 12.0, 11.0, 9.0, 13.0])
    # mean 11, s = √2.5, half = t(0.975, 4) · s / √5
    assert ci.mean == pytest.approx(11.0)
    assert ci.half_width == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), rel=1e-5)
    assert (ci.low, ci.high) == pytest.approx((11.0 - ci.half_width, 11.0 + ci.half_width))
    assert ci.rel_half_width_pct == pytest.approx(ci.half_width / 11.0 * 100)


def test_too_few_batches_give_no_interval() -> None:
    ci = batch_means_ci([10.0, 12.0, 11.0, 9.0])
    assert ci.mean == pytest.approx(10.5) and math.isnan(ci.half_width) and ci.batches == 4
    assert batch_means_ci([]) == BatchCI(math.nan, math.nan, 0) or math.isnan(batch_means_ci([]).mean)


def test_batch_count_needs_two_lifetimes_per_batch() -> None:
    assert batch_count(60.0, 6.0) == 5  # 60 s ÷ (2 × 6 s)
    assert batch_count(9.0, 6.0) == 0  # the old demo cell: not even one batch
    assert batch_count(600.0, 1.0) == 20  # capped
    assert batch_count(0.0, 1.0) == 0


def test_lag1_autocorrelation() -> None:
    assert lag1_autocorr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(0.4)
    assert lag1_autocorr([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]) < -0.5
    assert math.isnan(lag1_autocorr([1.0, 1.0, 1.0]))


def test_proportion_band_is_never_narrower_than_binomial() -> None:
    # every batch has exactly 95 % below: batch means agree perfectly, the binomial floor remains
    lo, hi = proportion_band([95] * 10, [100] * 10, 0.95)
    half = 1.959964 * math.sqrt(0.95 * 0.05 / 1000)
    assert (lo, hi) == pytest.approx((0.95 - half, 0.95 + half), rel=1e-5)
    # batches that disagree widen it beyond the binomial floor
    lo2, hi2 = proportion_band([85, 100, 90, 100, 100, 95, 85, 100, 100, 95], [100] * 10, 0.95)
    assert hi2 - lo2 > hi - lo
    assert proportion_band([95] * 4, [100] * 4, 0.95) == (pytest.approx(math.nan, nan_ok=True),) * 2
