"""CellFiles CIs, adequacy reasons and verdict wording on synthetic records with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.adequacy import AdequacyThresholds, reasons
from analysis.uncertainty import completion_sync, percentile_ci, tokens_per_bin
from analysis.verdict import Estimate, Verdict, change, side_estimate


def _requests(starts: list[float], ttft_ms: list[float], e2e_ms: list[float], tokens: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(starts))],
            "start_wall_s": starts,
            "ttft_ms": ttft_ms,
            "e2e_ms": e2e_ms,
            "output_tokens": tokens,
        }
    )


def test_tokens_per_bin_counts_whole_requests_and_splits_traced_ones() -> None:
    req = _requests([0.0, 1.0, 1.5], [100.0, 100.0, 100.0], [400.0, 800.0, 100.0], [4, 3, 1])
    traces = pd.DataFrame({"request_id": ["r1"], "arrivals_ms": ["100 700 800"], "counts": [""]})
    bins = tokens_per_bin(req, traces, np.array([0.0, 1.0, 1.75, 2.0]))
    # r0: all 4 tokens in [0, 1); r1 arrives at 1.1, 1.7 (bin 1) and 1.8 (bin 2); r2 at 1.6 (bin 1)
    assert bins.tolist() == [4.0, 3.0, 1.0]


def test_tokens_per_bin_spreads_untraced_crossers_linearly() -> None:
    req = _requests([0.0], [0.0], [2000.0], [10])
    bins = tokens_per_bin(req, pd.DataFrame(), np.array([0.0, 0.5, 2.0]))
    assert bins.tolist() == pytest.approx([2.5, 7.5])


def test_percentile_ci_brackets_the_estimate_and_needs_five_batches() -> None:
    rng = np.random.default_rng(1)
    values = rng.exponential(1000.0, 2000)
    batch = np.repeat(np.arange(10), 200)
    lo, hi = percentile_ci(values, batch, 10, 95.0)
    p95 = np.percentile(values, 95)
    assert lo < p95 < hi
    assert 0.05 < (hi - lo) / p95 < 0.4
    assert all(math.isnan(v) for v in percentile_ci(values, batch % 4, 4, 95.0))


def test_completion_sync_tells_waves_from_independent_users() -> None:
    waves = np.repeat(np.arange(10) * 5.0, 32)  # 32 users finishing in the same step, 10 times
    assert completion_sync(waves, 0.01) == 1.0
    spread = np.arange(320) * 0.1  # one completion every 100 ms
    assert completion_sync(spread, 0.01) == 0.0


GOOD = {
    "status": "completed",
    "source": "request_log",
    "window_s": 60.0,
    "p95_latency_ms": 6000.0,
    "requests": 320,
    "ramp_s": 1.0,
    "warmup_s": 10.0,
    "completion_sync_share": 0.1,
    "completion_sync_expected": 0.1,
    "ci_batches": 5,
    "throughput_tok_s": 300.0,
    "throughput_tok_s_ci95_low": 290.0,
    "throughput_tok_s_ci95_high": 310.0,
    "p95_latency_ms_ci95_low": 5900.0,
    "p95_latency_ms_ci95_high": 6100.0,
    "client_bound": False,
    "token_check": "ok",
    "prefix_cache_hit_rate": 0.0,
    "prefix_sharing": False,
}


@pytest.mark.parametrize(
    ("change_", "expected"),
    [
        ({}, []),
        ({"window_s": 20.0, "ci_batches": 5}, ["window 20.0 s < 5× p95 end-to-end (6.0 s)"]),
        ({"requests": 40}, ["40 completed requests < 50"]),
        ({"ramp_s": 16.0}, ["ramp 16.0 s (users ÷ spawn rate) not finished when the window opened (10 s)"]),
        ({"completion_sync_share": 0.9}, ["closed-loop waves"]),
        ({"completion_sync_share": 0.6, "completion_sync_expected": 0.5}, []),  # what independent users give
        ({"ci_batches": 1}, ["too short for a CI: the window holds 1 batches"]),
        ({"throughput_tok_s_ci95_low": 240.0}, ["throughput CI ±20.0% wider than ±10%"]),
        ({"p95_latency_ms_ci95_high": 7000.0}, ["p95 latency CI ±16.7% wider than ±10%"]),
        ({"client_bound": True, "client_bound_signal": "CPU ≥ 90% in 40% of seconds"}, ["client-bound: CPU"]),
        ({"token_check": "mismatch: client 1 vs server 2"}, ["token cross-check mismatch"]),
        ({"prefix_cache_hit_rate": 0.8}, ["server prefix-cache hit rate 80%"]),
        ({"prefix_cache_hit_rate": 0.8, "prefix_sharing": True}, []),
        ({"status": "interrupted"}, ["cell status: interrupted"]),
    ],
)
def test_each_adequacy_reason_fires_exactly_when_it_should(change_: dict[str, object], expected: list[str]) -> None:
    found = reasons({**GOOD, **change_})
    assert len(found) == len(expected), found
    for text, prefix in zip(found, expected, strict=True):
        assert text.startswith(prefix), (text, prefix)


def test_thresholds_are_options() -> None:
    assert reasons({**GOOD, "requests": 40}, AdequacyThresholds(min_requests=20)) == []


def _side(value: float, half: float, batches: int = 10, adequate: bool = True) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "throughput_tok_s": [value],
            "throughput_tok_s_ci95_low": [value - half],
            "throughput_tok_s_ci95_high": [value + half],
            "ci_batches": [batches],
            "adequate": [adequate],
            "adequacy": ["ok" if adequate else "40 completed requests < 50"],
        }
    )


def test_verdict_wording_significant_not_distinguishable_inconclusive() -> None:
    base = side_estimate(_side(100.0, 2.0), "throughput_tok_s")
    up = change(base, side_estimate(_side(112.0, 2.0), "throughput_tok_s"))
    assert up.verdict is Verdict.SIGNIFICANT and up.low_pct > 0
    assert up.text().startswith("+12.0% [+") and up.text().endswith(", significant")
    same = change(base, side_estimate(_side(101.0, 2.0), "throughput_tok_s"))
    assert same.verdict is Verdict.NOT_DISTINGUISHABLE and same.low_pct < 0 < same.high_pct
    short = change(base, side_estimate(_side(80.5, 2.0, adequate=False), "throughput_tok_s"))
    assert short.verdict is Verdict.INCONCLUSIVE and "40 completed requests" in short.reason
    assert short.text().startswith("-19.5% [") and short.text().endswith(", inconclusive")
    none = change(base, side_estimate(_side(90.0, math.nan, batches=2), "throughput_tok_s"))
    assert none.verdict is Verdict.INCONCLUSIVE and none.reason == "no CI"


def test_change_ci_by_delta_method() -> None:
    base = Estimate(100.0, 1.0, math.inf, 1, True)
    cand = Estimate(110.0, 1.1, math.inf, 1, True)
    ch = change(base, cand)
    half = 1.959964 * math.sqrt(0.01**2 + 0.01**2)
    assert ch.low_pct == pytest.approx((1.1 * math.exp(-half) - 1) * 100, rel=1e-4)
    assert ch.high_pct == pytest.approx((1.1 * math.exp(half) - 1) * 100, rel=1e-4)
