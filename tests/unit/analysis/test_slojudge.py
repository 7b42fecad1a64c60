"""Judging a cell against SLOs from its CIs, the SLO grammar, and goodput over per-request bounds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.capacity import CellData
from analysis.slojudge import NOT_SUSTAINED, error_rate_ci, goodput_req_s, judge_row
from runformat.search import ProbeOutcome, SloError, parse_slo

TTFT, TPOT, ERR = parse_slo("ttft_p95_ms<=1500"), parse_slo("tpot_p95_ms <= 60"), parse_slo("error_rate<0.01")


def row(**values: float) -> dict[str, object]:
    base: dict[str, object] = {"status": "completed", "requests": 500, "failures": 0, "error_rate": 0.0}
    base.update(ttft_p95_ms=1000.0, ttft_p95_ms_ci95_low=950.0, ttft_p95_ms_ci95_high=1050.0)
    base.update(tpot_p95_ms=40.0, tpot_p95_ms_ci95_low=38.0, tpot_p95_ms_ci95_high=42.0)
    base.update(values)
    return base


def test_every_ci_within_its_bound_passes_and_names_the_tightest_slo() -> None:
    judged = judge_row(row(), [TTFT, TPOT])
    assert judged.outcome is ProbeOutcome.PASS and judged.binding == "ttft_p95_ms<=1500"  # 1000/1500 > 40/60


def test_a_ci_wholly_beyond_its_bound_fails_even_if_another_straddles() -> None:
    judged = judge_row(
        row(ttft_p95_ms_ci95_high=1600.0, tpot_p95_ms=70, tpot_p95_ms_ci95_low=65, tpot_p95_ms_ci95_high=75),
        [TTFT, TPOT],
    )
    assert judged.outcome is ProbeOutcome.FAIL and judged.binding == "tpot_p95_ms<=60"


def test_a_ci_straddling_a_bound_is_undecided_and_no_ci_is_undecided_too() -> None:
    assert judge_row(row(ttft_p95_ms_ci95_high=1600.0), [TTFT]).outcome is ProbeOutcome.UNDECIDED
    assert judge_row(row(ttft_p95_ms_ci95_low=math.nan), [TTFT]).outcome is ProbeOutcome.UNDECIDED


def test_error_rate_is_judged_on_its_wilson_interval() -> None:
    low, high = error_rate_ci(0, 500)
    assert low == pytest.approx(0.0, abs=1e-12) and 0.007 < high < 0.008
    assert judge_row(row(), [ERR]).outcome is ProbeOutcome.PASS
    assert judge_row(row(requests=100, failures=0), [ERR]).outcome is ProbeOutcome.UNDECIDED  # ≤ 3.7% at 95%
    assert judge_row(row(requests=400, failures=100, error_rate=0.2), [ERR]).outcome is ProbeOutcome.FAIL


@pytest.mark.parametrize(
    ("values", "detail"),
    [
        ({"status": "failed"}, "cell status: failed"),
        ({"requests": 0}, "no request"),
    ],
)
def test_a_cell_that_measured_nothing_usable_is_invalid(values: dict[str, object], detail: str) -> None:
    judged = judge_row(row(**values), [TTFT])  # type: ignore[arg-type]
    assert judged.outcome is ProbeOutcome.INVALID and detail in judged.detail


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ttft_p99_ms<=100", "unknown metric 'ttft_p99_ms'"),
        ("ttft_p95_ms>=100", "expected METRIC<=NUMBER"),
        ("ttft_p95_ms<=fast", "expected METRIC<=NUMBER"),
        ("error_rate<=2", "share in (0, 1]"),
        ("p95_latency_ms<=0", "positive number"),
    ],
)
def test_bad_slos_name_the_slo_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(SloError) as info:
        parse_slo(text)
    assert repr(text) in str(info.value) and message in str(info.value)


def test_a_client_bound_cell_is_undecided_so_it_is_measured_again() -> None:
    judged = judge_row(row(client_bound=True, client_bound_signal="CPU ≥ 90%"), [TTFT])
    assert judged.outcome is ProbeOutcome.UNDECIDED and "client-bound (CPU ≥ 90%)" in judged.detail


def test_goodput_counts_in_window_successes_meeting_every_per_request_bound() -> None:
    requests = pd.DataFrame(
        {
            "start_wall_s": [100.0, 101.0, 102.0, 103.0, 104.0, 150.0],
            "e2e_ms": [500.0] * 6,
            "ttft_ms": [100.0, 2000.0, 100.0, 100.0, 100.0, 100.0],
            "tpot_ms": [30.0, 30.0, 90.0, 30.0, 30.0, 30.0],
            "success": [True, True, True, False, True, True],
        }
    )
    cell = CellData("c", {"warmup_s": 0.0, "duration_s": 10.0}, requests)
    # window [100, 110]: five start inside; one misses TTFT, one TPOT, one failed -> two good over 10 s
    assert goodput_req_s(cell, [TTFT, TPOT, ERR]) == pytest.approx(0.2)


def test_an_open_loop_cell_that_dropped_arrivals_fails_though_every_slo_is_met() -> None:
    dropped = judge_row(row(sustained=False, sustained_reason="4.2% of arrivals dropped"), [TTFT, TPOT])
    assert dropped.outcome is ProbeOutcome.FAIL and dropped.binding == NOT_SUSTAINED
    assert "4.2% of arrivals dropped" in dropped.detail and all(c.outcome is ProbeOutcome.PASS for c in dropped.checks)
    assert judge_row(row(sustained=True, sustained_reason=""), [TTFT, TPOT]).outcome is ProbeOutcome.PASS
