"""Cost, comparison, SLO and roofline tables on a synthetic run whose numbers are known by construction."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.bundle import Options, analyse
from analysis.capacity import pooled_itl_ms
from analysis.catalog import load_catalog
from analysis.cost import HEADLINES, cost_table, headline_cell, resolve_prices
from analysis.errors import InputError
from analysis.run import Run, RunTarget, load_run, resolve_labels
from analysis.slo import SloSpec, attainment_table, slo_table
from tests.unit.analysis.runbuilder import BF16, QUANT, SteadySpec, build_run, build_steady_run


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return load_run(build_run(tmp_path))


def _row(table: pd.DataFrame, **key: object) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for col, value in key.items():
        mask &= table[col] == value
    assert mask.sum() == 1, key
    return table[mask].iloc[0]


def test_cost_formula_by_hand(run: Run) -> None:
    a = analyse(run, Options())
    chat = _row(a.cost, target_label=BF16, workload="chat", concurrency=16)
    assert chat["throughput_tok_s"] == pytest.approx(256.0)  # 20 requests × 128 tokens / 10 s
    assert chat["tokens_per_hour"] == pytest.approx(921_600)
    assert chat["usd_per_1m_tokens"] == pytest.approx(0.36 / 921_600 * 1e6)  # 0.390625
    savings = _row(a.savings, workload="chat", concurrency=16)
    assert savings["savings_pct"] == pytest.approx(20.0)  # (0.390625 − 0.3125) / 0.390625
    batch = _row(a.savings, workload="batch", concurrency=32)
    assert batch["savings_pct"] == pytest.approx((1 / 1024 - 1 / 921.6) / (1 / 1024) * 100)


def test_utilization_scales_tokens_per_hour(run: Run) -> None:
    a = analyse(run, Options(utilization=0.5))
    assert _row(a.cost, target_label=BF16, workload="chat", concurrency=16)["usd_per_1m_tokens"] == pytest.approx(
        0.78125
    )
    with pytest.raises(InputError, match="utilization"):
        analyse(run, Options(utilization=1.5))


def test_price_precedence_flag_then_scenario_then_catalog() -> None:
    catalog = load_catalog()
    targets = [
        RunTarget("A", hourly_price_usd=0.5, gpu="rtx2000-ada-16gb"),
        RunTarget("B", hourly_price_usd=0.5, gpu="rtx2000-ada-16gb"),
        RunTarget("C", gpu="rtx2000-ada-16gb"),
        RunTarget("D"),
    ]
    prices = resolve_prices(targets, catalog, {"A": 1.25}).set_index("target_label")
    assert prices.loc["A", "hourly_price_usd"] == 1.25 and prices.loc["A", "price_source"] == "--price flag"
    assert prices.loc["B", "hourly_price_usd"] == 0.5
    assert prices.loc["C", "hourly_price_usd"] == catalog.gpus["rtx2000-ada-16gb"].hourly_price_usd
    assert "catalog rtx2000-ada-16gb" in str(prices.loc["C", "price_source"])
    assert math.isnan(prices.loc["D", "hourly_price_usd"]) and "--price" in str(prices.loc["D", "price_source"])


def test_shipped_catalog_has_the_four_gpus_with_sources() -> None:
    catalog = load_catalog()
    for key in ("rtx2000-ada-16gb", "l4-24gb", "a100-80gb", "h100-80gb"):
        gpu = catalog.gpus[key]
        assert gpu.hourly_price_usd and gpu.price_source and gpu.price_date and gpu.spec_source
        assert gpu.memory_bandwidth_gb_s and gpu.memory_gb and gpu.peak_bf16_dense_tflops


def test_catalog_rejects_unknown_keys(tmp_path: Path) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text('[gpus.x]\nname = "X"\nprice = 1.0\n')
    with pytest.raises(InputError, match=r"prices.toml: \[gpus.x\] unknown key\(s\) price; allowed: name"):
        load_catalog(bad)


def test_headline_cell_exact_or_nearest(run: Run) -> None:
    cost = analyse(run, Options()).cost
    assert headline_cell(cost, HEADLINES[0]) == (16, 128)
    assert headline_cell(cost, HEADLINES[1]) == (32, 256)
    smaller = cost[cost["concurrency"] == 16]
    assert headline_cell(smaller, HEADLINES[1]) == (16, 256)


STEADY = {
    (BF16, "batch"): SteadySpec(32, 1200.0),
    (QUANT, "batch"): SteadySpec(32, 1500.0, seed=1),  # −20 % throughput, p95 +25 %
    (BF16, "chat"): SteadySpec(16, 1000.0, seed=2),
    (QUANT, "chat"): SteadySpec(16, 1000.0, seed=3),  # the same server: only noise differs
}


def test_compare_flags_only_significant_breaches(tmp_path: Path) -> None:
    a = analyse(load_run(build_steady_run(tmp_path, STEADY)), Options())
    batch = _row(a.compare, workload="batch", concurrency=32)
    assert batch["throughput_tok_s_change_pct"] == pytest.approx(-20.0, abs=2.0)
    assert batch["throughput_tok_s_change_ci95_low_pct"] < batch["throughput_tok_s_change_pct"]
    assert batch["throughput_tok_s_change_ci95_high_pct"] < 0  # the CI excludes 0
    assert batch["throughput_tok_s_verdict"] == "significant"
    assert batch["p95_latency_ms_verdict"] == "significant" and batch["p95_latency_ms_change_pct"] > 20
    assert "p95 blow-up" in batch["flags"] and "throughput regression" in batch["flags"]
    assert "[" in batch["flags"] and "significant" in batch["flags"]  # the interval travels with the flag
    assert batch["savings_pct"] < 0 and batch["savings_ci95_high_pct"] < 0
    chat = _row(a.compare, workload="chat", concurrency=16)
    assert chat["throughput_tok_s_verdict"] == "not distinguishable"
    assert chat["throughput_tok_s_change_ci95_low_pct"] < 0 < chat["throughput_tok_s_change_ci95_high_pct"]
    assert chat["flags"] == "" and chat["adequacy"] == "ok"
    looser = analyse(
        load_run(tmp_path / next(tmp_path.iterdir()).name), Options(p95_threshold_pct=30.0, throughput_drop_pct=25.0)
    )
    assert _row(looser.compare, workload="batch", concurrency=32)["flags"] == ""


def test_short_cells_give_inconclusive_verdicts_and_no_flags(run: Run) -> None:
    """Cells of one wave (20–40 requests, no CI) show their numbers but never raise a flag."""
    a = analyse(run, Options())
    batch32 = _row(a.compare, workload="batch", concurrency=32)
    p95_base, p95_cand = 1200 + 0.95 * 39, 1500 + 0.95 * 35
    assert batch32["baseline_p95_latency_ms"] == pytest.approx(p95_base)
    assert batch32["p95_latency_ms_change_pct"] == pytest.approx((p95_cand - p95_base) / p95_base * 100)
    assert batch32["throughput_tok_s_change_pct"] == pytest.approx(-10.0)
    assert batch32["throughput_tok_s_verdict"] == "inconclusive"
    assert batch32["throughput_tok_s_change"].endswith(", inconclusive")
    assert batch32["flags"] == ""
    assert "completed requests < 50" in batch32["adequacy"]


def test_compare_with_repeats_combines_run_to_run_spread(tmp_path: Path) -> None:
    a = analyse(load_run(build_run(tmp_path, repeats=3)), Options())
    chat = _row(a.compare, workload="chat", concurrency=16)
    # BF16: 20, 21, 22 requests × 128 / 10 s = 256, 268.8, 281.6 → mean 268.8, s = 12.8; the cells have no
    # within-run CI, so the run-to-run spread alone sets the interval
    assert chat["baseline_throughput_tok_s"] == pytest.approx(268.8)
    assert chat["baseline_throughput_tok_s_ci95"] == pytest.approx(4.30265 * 12.8 / math.sqrt(3), rel=1e-4)
    assert chat["baseline_run_to_run_cv_pct"] == pytest.approx(12.8 / 268.8 * 100)
    assert chat["candidate_throughput_tok_s"] == pytest.approx(332.8)
    # the candidate's cells do carry a within-run CI, wider than its repeats' spread: the larger one counts
    assert chat["candidate_throughput_tok_s_ci95"] > 4.30265 * 12.8 / math.sqrt(3)
    assert chat["throughput_tok_s_verdict"] == "inconclusive"  # ... but the cells are too short to be evidence
    assert chat["repeats_baseline"] == 3


def test_labels_inferred_and_unknown_label_lists_known_ones(run: Run) -> None:
    assert resolve_labels(run, None, None) == (BF16, QUANT)
    assert resolve_labels(run, QUANT, None) == (QUANT, BF16)
    with pytest.raises(InputError, match=f"unknown target label 'H100'; known labels: {BF16}, {QUANT}"):
        resolve_labels(run, "H100", None)


def test_slo_picks_highest_passing_concurrency(run: Run) -> None:
    a = analyse(run, Options())
    spec = SloSpec(1100.0)
    table = slo_table(run.capacity, a.cost, attainment_table(run.cells, spec), spec)
    assert _row(table, target_label=BF16, workload="chat")["best_concurrency"] == 16  # c32 p95 1237 > 1100
    assert _row(table, target_label=QUANT, workload="batch")["best_concurrency"] == 16
    best = _row(table, target_label=BF16, workload="chat")
    assert best["usd_per_1m_tokens"] == pytest.approx(0.390625)
    assert best["goodput_req_s"] == pytest.approx(2.0)  # all 20 requests meet it, in 10 s
    loose = SloSpec(1300.0)
    table = slo_table(run.capacity, a.cost, attainment_table(run.cells, loose), loose)
    assert _row(table, target_label=BF16, workload="batch")["best_concurrency"] == 32
    assert "test higher" in _row(table, target_label=BF16, workload="batch")["verdict"]
    assert _row(table, target_label=QUANT, workload="batch")["best_concurrency"] == 16  # c32 p95 1533
    strict = SloSpec(2000.0, ttft_p95_ms=110.0)  # TTFT p95 is 118.05 ms at c16
    table = slo_table(run.capacity, a.cost, attainment_table(run.cells, strict), strict)
    assert table["best_concurrency"].isna().all()
    assert set(table["verdict"]) == {"no tested concurrency meets the SLO"}


def test_slo_attainment_counts_requests_within_bounds(run: Run) -> None:
    att = attainment_table(run.cells, SloSpec(1010.0)).set_index("cell")
    name = next(
        c.name
        for c in run.cells
        if c.metadata["target_label"] == BF16 and c.metadata["users"] == 16 and c.metadata["workload"] == "chat"
    )
    # e2e = 1000 + i for i in 0..19: 11 of 20 are ≤ 1010 ms; 11 requests / 10 s
    assert att.loc[name, "slo_attainment"] == pytest.approx(11 / 20)
    assert att.loc[name, "goodput_req_s"] == pytest.approx(1.1)


def test_roofline_ceiling_by_hand(run: Run) -> None:
    roof = analyse(run, Options()).roofline
    row = _row(roof, target_label=BF16, workload="batch", concurrency=16)
    assert row["memory_ceiling_tok_s"] == pytest.approx(16 * 224 / 6.43)
    assert row["compute_ceiling_tok_s"] == pytest.approx(48e12 / (2 * 3.21e9))
    assert row["bound_by"] == "memory"
    assert row["pct_of_ceiling"] == pytest.approx(512 / (16 * 224 / 6.43) * 100)
    override = analyse(run, Options(weights_gb={QUANT: 4.48})).roofline
    assert _row(override, target_label=QUANT, workload="batch", concurrency=32)["memory_ceiling_tok_s"] == (
        pytest.approx(32 * 224 / 4.48)
    )


def test_cost_table_marks_missing_price_as_nan(run: Run) -> None:
    prices = resolve_prices([RunTarget(BF16), RunTarget(QUANT)], load_catalog(), {})
    cost = cost_table(run.capacity, prices)
    assert cost["usd_per_1m_tokens"].isna().all()


def test_pooled_itl_skips_empty_traces_and_splits_multi_token_events() -> None:
    traces = pd.DataFrame(
        {"request_id": ["a", "x", "b"], "arrivals_ms": ["10 30", "", "5 45"], "counts": ["", "", "1 4"]}
    )
    # a: one gap of 20; x: none; b: one gap of 40 carrying 4 tokens → four gaps of 10
    assert sorted(pooled_itl_ms(traces)) == [10, 10, 10, 10, 20]
    assert sorted(pooled_itl_ms(traces.assign(counts=""))) == [20, 40]


def test_gate_passes_a_run_against_itself_and_fails_a_slower_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from analysis.cli import main

    base = build_steady_run(tmp_path / "a", {(BF16, "batch"): SteadySpec(32, 1200.0)})
    same = build_steady_run(tmp_path / "b", {(BF16, "batch"): SteadySpec(32, 1200.0, seed=7)})
    slow = build_steady_run(tmp_path / "c", {(BF16, "batch"): SteadySpec(32, 1400.0, seed=8)})
    runner = CliRunner()
    assert runner.invoke(main, ["gate", str(base), str(base)]).exit_code == 0
    result = runner.invoke(main, ["gate", str(base), str(same), "-o", str(tmp_path / "g.json")])
    assert result.exit_code == 0, result.output
    assert "passed" in result.output
    result = runner.invoke(main, ["gate", str(base), str(slow), "-o", str(tmp_path / "g.md")])
    assert result.exit_code == 1, result.output
    md = (tmp_path / "g.md").read_text()
    assert "FAILED" in md and "| throughput_tok_s |" in md and "significant | FAIL |" in md
    # one-wave cells never fail the gate: they are inconclusive
    short = build_run(tmp_path / "d")
    result = runner.invoke(main, ["gate", str(short), str(short)])
    assert result.exit_code == 0 and "inconclusive" in result.output
    assert runner.invoke(main, ["gate", str(short), str(short), "--fail-on-inconclusive"]).exit_code == 1
    assert runner.invoke(main, ["gate", str(base), str(tmp_path / "nope")]).exit_code == 2
    other = build_steady_run(tmp_path / "e", {(BF16, "batch"): SteadySpec(8, 1200.0)})
    result = runner.invoke(main, ["gate", str(base), str(other)])
    assert result.exit_code == 2 and "no cell of the candidate run matches" in result.output
