"""Rate-grid runs in analysis: plots against offered load (achieved vs offered shown), the gate matching by rate."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from click.testing import CliRunner

from analysis import plots
from analysis.cli import main
from analysis.run import load_run
from tests.unit.analysis.runbuilder import BF16, QUANT, RateSpec, SteadySpec, build_rate_run, build_steady_run

POOL = 64


def _svg(plot: plots.Plot) -> str:
    return base64.b64decode(plot.uri.split(",", 1)[1]).decode("utf-8")


def _rates(e2e_ms: dict[float, float], seed: int = 0, drop_every: int = 0) -> list[RateSpec]:
    return [RateSpec(rate, POOL, e2e, seed=seed, drop_every=drop_every) for rate, e2e in e2e_ms.items()]


def test_rate_cells_are_plotted_against_offered_load_with_achieved_vs_offered(tmp_path: Path) -> None:
    run = load_run(build_rate_run(tmp_path, {(BF16, "chat"): _rates({10: 1000.0, 20: 1100.0}, drop_every=10)}))
    throughput, latency = plots.throughput_plot(run.capacity), plots.latency_plot(run.capacity)
    assert throughput.title == "Throughput vs offered load"
    for plot in (throughput, latency):
        svg = _svg(plot)
        assert "offered load, req/s" in svg and "concurrency (users)" not in svg and BF16 in svg
    rate = plots.rate_plot(run.capacity)
    assert rate is not None
    svg = _svg(rate)
    assert "achieved = offered" in svg and "achieved, req/s" in svg and BF16 in svg and "not sustained" in svg
    # every 10th arrival dropped: neither cell sustained its rate, both are marked
    assert not run.capacity["sustained"].any()
    assert f"{BF16} r10 m128" in _svg(plots.latency_cdf_plot(run.cells, run.capacity))


def test_closed_loop_cells_are_still_plotted_against_concurrency_and_have_no_rate_plot(tmp_path: Path) -> None:
    run = load_run(build_steady_run(tmp_path, {(BF16, "batch"): SteadySpec(32, 1200.0)}))
    svg = _svg(plots.throughput_plot(run.capacity))
    assert "concurrency (users)" in svg and BF16 in svg  # the target's line is drawn (its legend entry)
    assert plots.rate_plot(run.capacity) is None


def test_gate_matches_rate_cells_by_offered_rate_not_by_their_shared_pool(tmp_path: Path) -> None:
    base = build_rate_run(tmp_path / "a", {(BF16, "chat"): _rates({10: 1000.0, 20: 1000.0})})
    same = build_rate_run(tmp_path / "b", {(BF16, "chat"): _rates({10: 1000.0, 20: 1000.0}, seed=7)})
    # slower only at 20 req/s: with both rates pooled into one cell (same users) the breach would be diluted
    slow = build_rate_run(tmp_path / "c", {(BF16, "chat"): _rates({10: 1000.0, 20: 1400.0}, seed=8)})
    runner = CliRunner()
    result = runner.invoke(main, ["gate", str(base), str(same), "-o", str(tmp_path / "same.json")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "same.json").read_text())["rows"]
    assert sorted({r["offered_rate_req_s"] for r in rows}) == [10.0, 20.0]
    assert {r["concurrency"] for r in rows} == {POOL} and len(rows) == 2 * 3
    assert {r["outcome"] for r in rows} == {"pass"}

    result = runner.invoke(main, ["gate", str(base), str(slow), "-o", str(tmp_path / "slow.json")])
    assert result.exit_code == 1, result.output
    rows = json.loads((tmp_path / "slow.json").read_text())["rows"]
    failed = {(r["offered_rate_req_s"], r["metric"]) for r in rows if r["outcome"] == "FAIL"}
    assert (20.0, "p95_latency_ms") in failed and all(rate == 20.0 for rate, _ in failed)
    assert "| chat | 64 | 20 | 128 | p95_latency_ms |" in result.output

    other = build_rate_run(tmp_path / "d", {(BF16, "chat"): _rates({30: 1000.0})})
    result = runner.invoke(main, ["gate", str(base), str(other)])
    assert result.exit_code == 2 and "offered_rate_req_s" in result.output


def test_gate_does_not_match_a_rate_cell_with_a_closed_loop_cell_of_the_same_users(tmp_path: Path) -> None:
    closed = build_steady_run(tmp_path / "a", {(QUANT, "chat"): SteadySpec(POOL, 1000.0)})
    rates = build_rate_run(tmp_path / "b", {(QUANT, "chat"): _rates({10: 1000.0})})
    result = CliRunner().invoke(main, ["gate", str(closed), str(rates)])
    assert result.exit_code == 2 and "no cell of the candidate run matches" in result.output
    result = CliRunner().invoke(main, ["gate", str(closed), str(closed)])
    assert result.exit_code == 0 and "| chat | 64 | — | 128 |" in result.output
