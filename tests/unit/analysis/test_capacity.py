"""Capacity reductions against hand-computed cases: windowing, token arrivals, percentiles, ITL, checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.capacity import CellData, capacity_table, cell_row, pooled_itl_ms, tokens_in_window, window_bounds


def _requests(rows: list[dict]) -> pd.DataFrame:
    base = {
        "target_label": "T",
        "workload": "batch",
        "max_new_tokens": 4,
        "prompt_tokens": 100,
        "tpot_ms": math.nan,
        "success": True,
    }
    return pd.DataFrame([{**base, **r} for r in rows])


def test_window_bounds_from_first_send_and_duration() -> None:
    req = _requests([{"request_id": "a", "start_wall_s": 100.0, "ttft_ms": 10, "e2e_ms": 50, "output_tokens": 4}])
    assert window_bounds(req, warmup_s=2.0, duration_s=10.0) == (102.0, 110.0)
    assert window_bounds(req, warmup_s=0.0, duration_s=None) == (100.0, 100.05)


def test_tokens_in_window_whole_and_straddling_with_trace() -> None:
    req = _requests(
        [
            # inside [10, 20]: all 4 tokens count
            {"request_id": "in", "start_wall_s": 11.0, "ttft_ms": 100, "e2e_ms": 400, "output_tokens": 4},
            # straddles the start: tokens at 9.5, 9.9, 10.1, 10.5 → 2 inside
            {"request_id": "s", "start_wall_s": 9.0, "ttft_ms": 500, "e2e_ms": 1500, "output_tokens": 4},
            # straddles the end, multi-token event: 19.5 (1), 20.5 (3) → 1 inside
            {"request_id": "e", "start_wall_s": 19.0, "ttft_ms": 500, "e2e_ms": 1500, "output_tokens": 4},
            # entirely before the window
            {"request_id": "b", "start_wall_s": 1.0, "ttft_ms": 100, "e2e_ms": 200, "output_tokens": 4},
        ]
    )
    traces = pd.DataFrame(
        {
            "request_id": ["in", "s", "e", "b"],
            "arrivals_ms": ["100 200 300 400", "500 900 1100 1500", "500 1500", "100 200"],
            "counts": ["", "", "1 3", ""],
        }
    )
    assert tokens_in_window(req, traces, 10.0, 20.0) == 4 + 2 + 1


def test_tokens_in_window_interpolates_without_trace() -> None:
    req = _requests([{"request_id": "s", "start_wall_s": 9.0, "ttft_ms": 0, "e2e_ms": 2000, "output_tokens": 10}])
    empty = pd.DataFrame(columns=["request_id", "arrivals_ms", "counts"])
    assert tokens_in_window(req, empty, 10.0, 20.0) == pytest.approx(5.0)


def test_pooled_itl_splits_multi_token_events() -> None:
    traces = pd.DataFrame({"request_id": ["a", "b"], "arrivals_ms": ["10 30 60", "5 45"], "counts": ["", "1 4"]})
    # a: gaps 20, 30; b: one gap of 40 carrying 4 tokens → four gaps of 10
    assert sorted(pooled_itl_ms(traces)) == [10, 10, 10, 10, 20, 30]


def _cell(**meta: object) -> CellData:
    rows = []
    for i in range(20):
        rows.append(
            {
                "request_id": f"r{i}",
                "start_wall_s": 1000.0 + i * 0.5,
                "ttft_ms": 100.0 + i,
                "e2e_ms": 400.0 + 10 * i,
                "tpot_ms": (300.0 + 9 * i) / 3,
                "output_tokens": 4,
            }
        )
    rows.append(
        {
            "request_id": "f",
            "start_wall_s": 1005.0,
            "ttft_ms": math.nan,
            "e2e_ms": 5.0,
            "output_tokens": 0,
            "success": False,
        }
    )
    return CellData(name="c", metadata=dict(meta), requests=_requests(rows))


def test_cell_row_percentiles_counts_and_rates() -> None:
    meta = {
        "target_label": "GPU-A",
        "workload": "batch",
        "users": 16,
        "max_new_tokens": 4,
        "warmup_s": 2.0,
        "duration_s": 10.0,
        "server_token_delta": {"generation": 80},
    }
    row = cell_row(_cell(**meta))
    # window [1002, 1010]; requests started at 1002.0 .. 1010.0 → i = 4..20 → i in 4..19 (16 ok) + 1 failure
    e2e = np.array([400.0 + 10 * i for i in range(4, 20)])
    assert row["requests"] == 16
    assert row["failures"] == 1
    assert row["error_rate"] == pytest.approx(1 / 17)
    assert row["p95_latency_ms"] == pytest.approx(np.percentile(e2e, 95))
    assert row["ttft_p50_ms"] == pytest.approx(np.percentile([100.0 + i for i in range(4, 20)], 50))
    assert row["window_s"] == pytest.approx(8.0)
    assert row["token_check"] == "ok"
    assert row["source"] == "request_log"
    assert row["concurrency"] == 16


def test_token_mismatch_is_reported_not_hidden() -> None:
    row = cell_row(_cell(warmup_s=0, duration_s=12, server_token_delta={"generation": 79}))
    assert row["token_check"] == "mismatch: client 80 vs server 79"


def test_zero_length_window_is_marked_no_data() -> None:
    row = cell_row(_cell(warmup_s=30, duration_s=10))
    assert row["status"].startswith("no data: zero-length window")


def test_locust_csv_fallback_is_marked_approximate() -> None:
    stats = pd.DataFrame(
        [
            {
                "Type": "POST",
                "Name": "batch",
                "Request Count": 10,
                "Failure Count": 1,
                "Average Content Size": 256,
                "50%": 1000,
                "95%": 2000,
                "99%": 2100,
            },
            {
                "Type": "",
                "Name": "Aggregated",
                "Request Count": 10,
                "Failure Count": 1,
                "Average Content Size": 256,
                "50%": 1000,
                "95%": 2000,
                "99%": 2100,
            },
        ]
    )
    cell = CellData(name="x", metadata={"duration_s": 20.0}, locust_stats=stats)
    table = capacity_table([cell])
    assert table.loc[0, "source"] == "locust_csv"
    assert table.loc[0, "throughput_tok_s"] == pytest.approx(256 * 10 / 20)
    assert table.loc[0, "p95_latency_ms"] == 2000


def test_streams_cut_off_by_the_end_of_the_run_are_not_failures() -> None:
    cell = _cell(warmup_s=0, duration_s=12)
    cut = {
        "request_id": "cut",
        "start_wall_s": 1009.0,
        "ttft_ms": 50.0,
        "e2e_ms": math.nan,
        "output_tokens": 2,
        "success": False,
        "error": "interrupted: user stopped mid-stream",
    }
    cell.requests = pd.concat([cell.requests, _requests([cut])], ignore_index=True)
    row = cell_row(cell)
    assert row["failures"] == 1  # the real failure only
    assert row["interrupted"] == 1
    assert row["error_rate"] == pytest.approx(1 / 21)
