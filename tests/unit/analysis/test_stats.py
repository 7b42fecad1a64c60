"""Student-t quantiles against the printed table, CI and Welch's test against hand computation."""

from __future__ import annotations

import math

import pytest

from analysis.stats import mean_ci, t_cdf, t_quantile, welch_test


@pytest.mark.parametrize(
    ("df", "t975"), [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (10, 2.228), (30, 2.042)]
)
def test_t_quantile_matches_the_table(df: int, t975: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(t975, abs=5e-4)


def test_t_cdf_is_symmetric_and_known() -> None:
    assert t_cdf(0.0, 5) == pytest.approx(0.5)
    assert t_cdf(2.0, 5) == pytest.approx(0.94903, abs=1e-5)
    assert t_cdf(-2.0, 5) == pytest.approx(1 - 0.94903, abs=1e-5)


def test_mean_ci_by_hand() -> None:
    # 10, 12, 14: mean 12, s = 2, sem = 2/√3, t(0.975, 2) = 4.3027 → half width 4.9683
    ci = mean_ci([10, 12, 14])
    assert ci.mean == 12
    assert ci.half_width == pytest.approx(4.3027 * 2 / math.sqrt(3), abs=1e-3)
    assert (ci.low, ci.high) == pytest.approx((12 - ci.half_width, 12 + ci.half_width))


def test_mean_ci_single_value_has_no_interval() -> None:
    ci = mean_ci([5.0])
    assert ci.mean == 5.0 and math.isnan(ci.half_width) and ci.n == 1


def test_welch_by_hand() -> None:
    # a: mean 2.5, var 5/3; b: mean 5, var 2.5 → se² = 5/12 + 0.5, t = 2.5/√(11/12) = 2.6112
    result = welch_test([1, 2, 3, 4], [3, 4, 5, 6, 7])
    assert result.t == pytest.approx(2.5 / math.sqrt(11 / 12))
    assert result.df == pytest.approx((11 / 12) ** 2 / ((5 / 12) ** 2 / 3 + 0.5**2 / 4))
    assert result.p_value == pytest.approx(0.0349, abs=5e-4)
    assert result.significant()


def test_welch_needs_two_values_per_side() -> None:
    assert math.isnan(welch_test([1.0], [2.0, 3.0]).p_value)
    assert not welch_test([1.0], [2.0, 3.0]).significant()
