"""Rolling tok/s over a window that freezes at Stop, ITL from a trace, and the mergeable histogram."""

from __future__ import annotations

import pytest

from loadgen.live import Histogram, RollingRate, TokenTotals, itl_from_trace
from loadgen.runsummary import llm_summary, summary_lines


def _totals(output: int, input_: int = 0) -> dict[str, TokenTotals]:
    return {"batch": TokenTotals(input_, output, 1)}


def test_rolling_rate_uses_the_last_window_and_freezes_at_stop() -> None:
    rate = RollingRate(window_s=10.0)
    assert rate.rates() == {}
    for t in range(0, 31):
        # 100 tok/s for 20 s, then 300 tok/s.
        rate.add(float(t), _totals(100 * min(t, 20) + 300 * max(t - 20, 0), input_=10 * t))
    in_s, out_s = rate.rates()["batch"]
    assert out_s == pytest.approx(300.0) and in_s == pytest.approx(10.0)
    rate.freeze(31.0, _totals(100 * 20 + 300 * 11))
    rate.add(40.0, _totals(0))  # after Stop: ignored, the rate holds
    assert rate.rates()["batch"][1] == pytest.approx(300.0) and rate.frozen_at == 31.0
    rate.clear()
    assert rate.rates() == {} and rate.frozen_at is None


def test_itl_from_a_trace_is_per_token() -> None:
    assert itl_from_trace([100.0, 120.0, 160.0], [1, 1, 2]) == [20.0, 20.0, 20.0]
    assert sum(itl_from_trace([5.0, 9.0, 30.0], [2, 1, 3])) == pytest.approx(30.0 - 5.0)


def test_histogram_percentiles_and_merge() -> None:
    a, b = Histogram(), Histogram()
    a.add_many([10.0] * 90)
    b.add_many([123.4] * 10)
    a.extend(b.serialize())
    assert a.n == 100 and a.percentile(0.5) == 10.0 and a.percentile(0.95) == 120.0
    assert a.mean == pytest.approx((900 + 1234) / 100)
    assert Histogram().percentile(0.5) is None


def test_summary_block_names_its_window_endpoint_and_rates() -> None:
    row = {
        "requests": 40, "in_flight": 0, "input_tokens": 4000, "output_tokens": 2000,
        **{f"{m}_{s}_ms": 1.0 for m in ("ttft", "tpot", "itl", "e2e") for s in ("avg", "p50", "p95", "p99")},
    }  # fmt: skip
    summary = llm_summary([dict(row, name="batch"), dict(row, name="Aggregated")], 2, (100.0, 120.0), ["POST u"])
    assert summary["throughput"] == {
        "req_per_s": 2.0,
        "input_tok_s": 200.0,
        "throughput_tok_s": 100.0,
        "total_tok_s": 300.0,
    }
    assert summary["requests"] == {"completed": 40, "failed": 2} and summary["window"]["duration_s"] == 20.0
    text = "\n".join(summary_lines(summary))
    for needle in (
        "API endpoint: POST u",
        "Failed requests:",
        "Total token throughput (tok/s):",
        "P99 ITL (ms):",
        "Window:",
    ):
        assert needle in text
