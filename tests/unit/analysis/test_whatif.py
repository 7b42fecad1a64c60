"""What-if projections: the fit's algebra, bad input, and the error against simulated A100/H100 cells."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.catalog import load_catalog
from analysis.cost import KEY
from analysis.errors import InputError
from analysis.run import RunTarget
from analysis.whatif import (
    CellObs,
    WhatIfInput,
    coefficients,
    fit_target,
    project_cell,
    resolve_hardware,
    whatif,
)
from analysis.whatif_model import LoopWorkload, compose, doc_theta, run_closed_loop
from simulator.profiles import load_profiles

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "whatif" / "cells.csv"
PROFILES = load_profiles()
CATALOG = load_catalog()
RTX = PROFILES["rtx2000-ada-16gb-bf16"]
SHAPES = [(4, 384, 64), (16, 384, 64), (32, 384, 64), (4, 20, 64), (16, 20, 64)]


HOST = np.array([0.0008, 30e-6])  # host s per step and per emitted token the model cells are made with


def _coef(profile: object, theta: np.ndarray) -> np.ndarray:
    return coefficients(theta, profile)  # type: ignore[arg-type]


def _model_cells(coef: np.ndarray, rel_se: float = 1e-4) -> list[CellObs]:
    """Cells as the step-time model itself would measure them at step coefficients `coef` (exact), stated as
    ± `rel_se`."""
    cells = []
    for n, prompt, out in SHAPES:
        work = LoopWorkload(n, prompt, out, synchronized=False)
        trace = run_closed_loop(RTX, work)
        spt = float(trace.s_per_token_features() @ coef)
        tpot_ms = float(trace.tpot_features().mean(axis=0) @ coef) * 1e3
        cells.append(CellObs(("batch" if prompt > 100 else "chat", n, out), work, 1 / spt, rel_se, tpot_ms, math.nan))
    return cells


def test_fit_recovers_the_efficiencies_and_host_time_the_cells_were_made_with() -> None:
    """Exact cells stated at ±1e-6: the data outweigh the priors, which still pull host time per step (the
    direction weight streaming nearly shares) toward its prior centre, 0, by 1.1 %; 2 % bounds that pull."""
    truth = np.array([1 / 0.7, 1 / 0.45, *HOST])
    fit = fit_target("T", RTX, _model_cells(_coef(RTX, truth), rel_se=1e-6))
    assert fit.fitted == (True, True, True, True)
    np.testing.assert_allclose(fit.theta, truth, rtol=0.02)
    assert fit.rms_rel_residual < 1e-4


def _collinear_cells(theta: np.ndarray) -> list[CellObs]:
    """Chat cells with 8-token prompts and 16-token outputs at ±2 %: KV traffic is 0.3 % of the weights
    streamed per step and there is no prefill to speak of, so host time per step moves exactly like weight
    streaming (1/bandwidth efficiency) and host time per token like the decode FLOPs."""
    cells = []
    for n in (2, 4, 8):
        work = LoopWorkload(n, 8, 16, synchronized=False)
        trace = run_closed_loop(RTX, work)
        coef = _coef(RTX, theta)
        tpot_ms = float(trace.tpot_features().mean(axis=0) @ coef) * 1e3
        cells.append(
            CellObs(("chat", n, 16), work, 1 / float(trace.s_per_token_features() @ coef), 0.02, tpot_ms, math.nan)
        )
    return cells


def test_host_terms_collinear_with_the_gpu_terms_stay_at_their_prior_and_the_band_stays_bounded() -> None:
    """The cells were made with 0.5 ms of host time per step (1 σ of its prior) that they cannot tell from
    weight streaming. The fit says so, the host terms keep their prior, and the projection onto H100 is
    off by what 1 σ of host time is worth there: 0.5 ms on this model's ~4 ms H100 decode step, 12.5 %;
    15 % bounds it. The band must hold the truth and stay bounded by the priors' σ: 1.96 × 0.5 ms over
    ~4 ms is 25 %, plus the efficiencies' and per-token σ in quadrature; 35 % bounds it (a fit that let the
    host terms run free gave ±162 % here)."""
    host = np.array([0.0005, 0.0])
    theta = np.array([*doc_theta(RTX)[:2], *host])
    fit = fit_target("T", RTX, _collinear_cells(theta))
    assert fit.fitted[2:] == (False, False)
    assert any(n.startswith("host_ms_per_step is not identifiable") and "0 ms ± 0.5 ms" in n for n in fit.notes)
    rows = {r["parameter"]: r for r in fit.param_rows()}
    assert rows["host_ms_per_step"]["status"] == "prior ± its σ (not identifiable from these cells)"
    assert rows["step_overhead_ms"]["value"] == RTX.step_overhead_ms
    h100 = compose(resolve_hardware("h100-80gb", CATALOG, PROFILES), RTX)
    for cell in fit.cells:
        projected = project_cell(fit, cell, h100)
        true_coef = _coef(h100, np.array([*doc_theta(h100)[:2], *host]))
        truth = 1 / float(run_closed_loop(h100, cell.work).s_per_token_features() @ true_coef)
        assert abs(projected.throughput_tok_s / truth - 1) <= 0.15
        assert projected.throughput_low <= truth <= projected.throughput_high
        assert projected.rel_half <= 0.35


def test_host_time_carries_over_unchanged_and_the_gpu_terms_take_the_other_profile() -> None:
    """Cells made at RTX's documented θ plus host time: on A100, A100's documented θ plus the same host time
    (within 0.5 %: at ±1e-6 the priors still pull host time per step by 1.1 %, see the first test)."""
    theta = np.array([*doc_theta(RTX)[:2], *HOST])
    fit = fit_target("T", RTX, _model_cells(_coef(RTX, theta), rel_se=1e-6))
    a100 = PROFILES["a100-80gb-bf16"]
    target = compose(resolve_hardware("a100-80gb", CATALOG, PROFILES), RTX)
    for cell in fit.cells:
        projected = project_cell(fit, cell, target)
        trace = run_closed_loop(a100, cell.work)
        truth = 1 / float(trace.s_per_token_features() @ _coef(a100, np.array([*doc_theta(a100)[:2], *HOST])))
        assert projected.throughput_tok_s == pytest.approx(truth, rel=0.005)
        assert projected.throughput_low < truth < projected.throughput_high


def test_the_band_carries_the_fit_residuals_as_host_seconds_per_step_onto_a_faster_gpu() -> None:
    """Host time that wanders by ±0.6 ms between cells is a few % of an RTX step but tens of % of an H100
    step: the band on H100 is at least that wander, not the RTX-relative residual."""
    cells = []
    for i, cell in enumerate(_model_cells(_coef(RTX, np.array([*doc_theta(RTX)[:2], *HOST])))):
        trace = run_closed_loop(RTX, cell.work)
        wander = np.array([0.0, 0.0, 0.0006 if i % 2 else -0.0006, 0.0])
        spt = 1 / cell.throughput_tok_s + float(trace.s_per_token_features() @ wander)
        cells.append(
            CellObs(cell.key, cell.work, 1 / spt, 0.01, cell.tpot_p50_ms + 0.6 * (1 if i % 2 else -1), math.nan)
        )
    fit = fit_target("T", RTX, cells)
    assert fit.rms_step_residual_s > 0.0003
    target = compose(resolve_hardware("h100-80gb", CATALOG, PROFILES), RTX)
    cell = fit.cells[0]
    projected = project_cell(fit, cell, target)
    steps_per_token = float(run_closed_loop(target, cell.work).s_per_token_features()[2])
    host_half = 1.96 * fit.rms_step_residual_s * steps_per_token * projected.throughput_tok_s
    assert projected.rel_half >= host_half > 1.96 * fit.rms_rel_residual


def test_one_concurrency_is_too_few_to_fit() -> None:
    cells = [c for c in _model_cells(doc_theta(RTX)) if c.key[1] == 16]
    with pytest.raises(InputError, match="two or more concurrencies, found 16"):
        fit_target("T", RTX, cells)


COST_COLUMNS_ONLY = pd.DataFrame(columns=["target_label", *KEY, "hourly_price_usd", "usd_per_1m_tokens"])


def _fixture() -> pd.DataFrame:
    return pd.read_csv(FIXTURE).assign(cell="")


def _targets(labels: list[str]) -> list[RunTarget]:
    models = {"BF16": "meta-llama/Llama-3.2-3B-Instruct", "AWQ": "meta-llama/Llama-3.2-3B-Instruct-AWQ"}
    return [RunTarget(lb, gpu="rtx2000-ada-16gb", model=models[lb.split("-")[1]]) for lb in labels]


def _measured_whatif(gpus: list[str]) -> tuple[pd.DataFrame, object]:
    cap = _fixture()
    rtx = cap[cap["target_label"].str.startswith("RTX")]
    inp = WhatIfInput(_targets(["RTX-BF16", "RTX-AWQ"]), rtx, {}, COST_COLUMNS_ONLY)
    return cap, whatif(inp, gpus, CATALOG, PROFILES)


def test_unknown_gpu_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"'b200' is not in the catalog.*known GPUs: rtx2000-ada-16gb, l4-24gb"):
        _measured_whatif(["b200"])


def test_unknown_model_lists_the_known_ones() -> None:
    cap = _fixture()
    target = RunTarget("RTX-BF16", gpu="rtx2000-ada-16gb", model="tiny-llama")
    inp = WhatIfInput([target], cap[cap["target_label"] == "RTX-BF16"], {}, COST_COLUMNS_ONLY)
    with pytest.raises(InputError, match=r"'tiny-llama'.*known models: meta-llama/Llama-3.2-3B-Instruct"):
        whatif(inp, ["a100-80gb"], CATALOG, PROFILES)


def test_projection_of_rtx_cells_matches_the_simulated_a100_and_h100_grid() -> None:
    """Fixture: benchmarks/sim_whatif.py --fixture, the run of 2026-12-05 08:59 UTC (BENCHMARKS.md §8):
    anchored simulator steps, each cell against its own simulator, RTX pair measured, the same models on
    the A100/H100 profiles as truth, batch and chat at 4, 8 and 16 users. `sim_miss_share` is each cell's
    share of steps the simulator could not keep on the model's timeline; a projection whose truth or RTX
    cell exceeds 2 % did not measure the model and is left out of the kept-cell bounds, as in §8.
    """
    cap, result = _measured_whatif(["a100-80gb", "h100-80gb"])
    assert any("no /metrics" in n for n in result.notes)  # type: ignore[attr-defined]
    truth = cap.set_index(["target_label", "workload", "concurrency", "max_new_tokens"])
    cells = result.cells  # type: ignore[attr-defined]
    projected = cells[cells["kind"] == "projected"]
    assert len(projected) == 2 * len(cells[cells["kind"] == "measured"]) == 24
    errors, kept, in_band, halves = [], [], 0, []
    for r in projected.itertuples(index=False):
        label = f"{r.gpu[:4].upper()}-{r.target_label.split('-')[1]}"
        t = truth.loc[(label, r.workload, r.concurrency, r.max_new_tokens)]
        m = truth.loc[(r.target_label, r.workload, r.concurrency, r.max_new_tokens)]
        err = abs(r.throughput_tok_s / float(t["throughput_tok_s"]) - 1)
        errors.append(err)
        if max(float(t["sim_miss_share"]), float(m["sim_miss_share"])) <= 0.02:
            kept.append(err)
        in_band += r.throughput_tok_s_low <= t["throughput_tok_s"] <= r.throughput_tok_s_high
        halves.append((r.throughput_tok_s_high - r.throughput_tok_s_low) / 2 / r.throughput_tok_s)
    assert len(kept) == KEPT_CELLS
    assert float(np.median(kept)) <= KEPT_MEDIAN and max(kept) <= KEPT_MAX, kept
    assert float(np.median(errors)) <= ALL_MEDIAN and max(errors) <= ALL_MAX, errors
    assert in_band == 24, in_band
    assert float(np.median(halves)) <= BAND_MEDIAN_HALF and max(halves) <= BAND_MAX_HALF, halves


# That run (BENCHMARKS.md §8, load average 1.25 → 3.67): 20 of 24 projections kept, throughput error median
# 1.7 %, max 4.6 %; all 24: median 2.2 %, max 22.6 %, every truth inside its 95 % band; band half-width
# median 43.8 %, max 108.4 %. The fit and projection are deterministic, so the bounds are those figures
# rounded up, not a margin for noise. The cells left out are those whose simulator fell off the model's
# timeline (truth 8.0–20.6 % below the model's own figure there, +0.1 to −6.2 % in the kept cells). The
# band is wide on H100 because host time per step and per token stay at their priors (0 ± 0.5 ms,
# 0 ± 50 µs) — RTX cells cannot tell them from the GPU terms — and H100-AWQ emits a token every ~0.2 ms;
# its upper edge is capped at the roofline, which keeps the max bounded.
KEPT_CELLS = 20
KEPT_MEDIAN = 0.017
KEPT_MAX = 0.047
ALL_MEDIAN = 0.023
ALL_MAX = 0.227
BAND_MEDIAN_HALF = 0.44
BAND_MAX_HALF = 1.09
