"""What-if projections: fit the step-time model's efficiency terms to a target's measured cells, then
project every cell onto other GPUs (throughput, TPOT, TTFT, KV-limited concurrency, $/1M) with a band.

Pure: takes the run's tables, the catalog and the profiles; returns tables. See docs/WHATIF.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.catalog import Catalog
from analysis.errors import InputError
from analysis.run import RunTarget
from analysis.whatif_model import LoopTrace, LoopWorkload, compose, doc_theta, run_closed_loop
from simulator.profiles import Profile, load_profiles

__all__ = [
    "PARAMS",
    "TargetFit",
    "WhatIf",
    "fit_target",
    "project_cell",
    "resolve_hardware",
    "resolve_model",
    "whatif",
]

Z95 = 1.96
NO_CI_REL_SE = 0.10  # a cell without a throughput CI is weighted as if it had ±10 % (1 σ)
MIN_TPOT_REL_SE = 0.05  # TPOT p50 has no CI of its own: weighted like the cell's throughput, at least ±5 %
MIN_DOF_FOR_SCALE = 3  # without measured errors, residuals set the fit's scale only from this many dof
WAVES_SHARE = 0.5  # completion_sync_share at or above this: the users move in lockstep (METRICS.md)
# Every term has a weak Gaussian prior (docs/WHATIF.md "The fit"); the data move a term as far as they
# pin it down, and a direction they cannot see (host time per step vs weight streaming on a slow GPU)
# stays at the prior with the prior's σ, which bounds the band instead of letting the term run free.
# Efficiencies: the profile's documented assumption, ±25 % of 1/efficiency (1 σ).
EFF_PRIOR_REL = 0.25
# Host time (HTTP writes, detokenization, event-loop wake-ups, a loaded CPU) beyond the profile's
# documented per-step overhead, which a faster GPU does not shorten: per engine step and per emitted
# token. The documented overhead is the best guess, so the priors centre on no correction; their σ is
# the order of a Python server's work per step and per streamed event (docs/WHATIF.md).
HOST_STEP_MS, HOST_STEP_SIGMA_MS = 0.0, 0.5
HOST_TOKEN_US, HOST_TOKEN_SIGMA_US = 0.0, 50.0
HOST_DEFAULT = np.array([HOST_STEP_MS / 1e3, HOST_TOKEN_US / 1e6])
HOST_SIGMA = np.array([HOST_STEP_SIGMA_MS / 1e3, HOST_TOKEN_SIGMA_US / 1e6])
# A term counts as identified when the data cut its prior σ at least in half (carry ≥ 3× the prior's
# information); otherwise it is reported as staying at its prior.
IDENTIFIED_SHARE = 0.5
PARAMS = (
    ("bandwidth_efficiency", "achieved share of datasheet memory bandwidth (weights + KV-cache traffic)"),
    ("compute_efficiency", "achieved share of dense tensor peak (linear layers × dequant factor + attention)"),
    ("host_ms_per_step", "host time per engine step beyond (−: short of) the documented overhead; not GPU-scaled"),
    ("host_us_per_token", "host time per emitted token (HTTP write, detokenization); not GPU-scaled"),
)
GPU_OVERHEAD = (
    "step_overhead_ms",
    "GPU-side time per step (launches, sampling): the documented value, scaled per GPU; one GPU's cells "
    "cannot tell it from host time per step",
)


@dataclass(frozen=True)
class CellObs:
    """One measured cell as the fit sees it."""

    key: tuple[str, int, int]  # workload, concurrency, max_new_tokens
    work: LoopWorkload
    throughput_tok_s: float
    throughput_rel_se: float
    tpot_p50_ms: float
    kv_tokens_per_seq: float  # NaN without /metrics
    ttft_p50_ms: float = math.nan
    has_ci: bool = True


def _defaults(profile: Profile) -> np.ndarray:
    return np.concatenate([doc_theta(profile)[:2], HOST_DEFAULT])


def _prior_sigma(profile: Profile) -> np.ndarray:
    return np.concatenate([doc_theta(profile)[:2] * EFF_PRIOR_REL, HOST_SIGMA])


def coefficients(theta: np.ndarray, profile: Profile) -> np.ndarray:
    """Step coefficients (LoopTrace features) on `profile`: θ plus the GPU's documented per-step overhead."""
    coef = np.asarray(theta, dtype=float).copy()
    coef[2] += profile.step_overhead_ms / 1e3
    return coef


@dataclass
class TargetFit:
    """θ of one target (see HOST_DEFAULT), its covariance (the priors' σ included) and what the data pinned
    down: `fitted[j]` when they cut term j's prior σ at least in half (IDENTIFIED_SHARE)."""

    label: str
    profile: Profile
    theta: np.ndarray
    cov: np.ndarray
    fitted: tuple[bool, bool, bool, bool]
    rms_rel_residual: float  # per-cell model error: RMS relative residual over the fit's degrees of freedom
    cells: list[CellObs]
    notes: list[str] = field(default_factory=list)
    rms_step_residual_s: float = 0.0  # the same residuals as seconds per engine step (host noise stays absolute)
    held: tuple[bool, bool, bool, bool] = (False, False, False, False)  # fixed at its physical bound

    @property
    def status(self) -> list[str]:
        """Per term: how its value came about, in words (the parameter table's "status")."""
        out = []
        for j in range(4):
            if self.held[j]:
                out.append("held (the data pushed it past its physical range)")
            elif self.fitted[j]:
                out.append("fitted")
            else:
                out.append("prior ± its σ (not identifiable from these cells)")
        return out

    def param_rows(self) -> list[dict[str, object]]:
        doc = _defaults(self.profile)
        rows = []
        for j, (name, meaning) in enumerate(PARAMS):
            se = math.sqrt(max(self.cov[j, j], 0.0))
            lo, hi = self.theta[j] - Z95 * se, self.theta[j] + Z95 * se
            if j < 2:  # θ is 1/efficiency: invert, the interval flips
                value, low, high, prior = 1 / self.theta[j], 1 / hi, (1 / lo if lo > 0 else 1.0), 1 / doc[j]
                low, high = max(0.0, low), min(1.0, high)
            else:
                unit = 1e3 if j == 2 else 1e6
                value, low, high, prior = self.theta[j] * unit, max(0.0, lo * unit), hi * unit, doc[j] * unit
            rows.append(
                {
                    "target_label": self.label,
                    "parameter": name,
                    "meaning": meaning,
                    "value": value,
                    "ci95_low": low,
                    "ci95_high": high,
                    "documented": prior,
                    "status": self.status[j],
                }
            )
        overhead = self.profile.step_overhead_ms
        rows.append(
            {
                "target_label": self.label,
                "parameter": GPU_OVERHEAD[0],
                "meaning": GPU_OVERHEAD[1],
                "value": overhead,
                "ci95_low": math.nan,
                "ci95_high": math.nan,
                "documented": overhead,
                "status": "assumed (documented)",
            }
        )
        return rows


def resolve_hardware(gpu: str, catalog: Catalog, profiles: dict[str, Profile]) -> Profile:
    """The documented step-model profile of a catalog GPU (`<gpu>-bf16` in simulator/profiles.toml)."""
    if catalog.gpu(gpu) is None:
        raise InputError(f"GPU {gpu!r} is not in the catalog {catalog.path}; known GPUs: {', '.join(catalog.gpus)}")
    profile = profiles.get(f"{gpu}-bf16")
    if profile is None:
        known = sorted(k for k in catalog.gpus if f"{k}-bf16" in profiles)
        raise InputError(
            f"GPU {gpu!r} has no documented step-model profile ({gpu}-bf16 in simulator/profiles.toml); "
            f"GPUs with one: {', '.join(known)}"
        )
    return profile


def resolve_model(target: RunTarget, profiles: dict[str, Profile], weight_gb: float | None) -> Profile:
    """The profile describing the model the target serves; `weight_gb` overrides the bytes read per step."""
    model = next((p for p in profiles.values() if p.model == target.model), None)
    if model is None:
        known = sorted({p.model for p in profiles.values()})
        raise InputError(
            f"target {target.label!r} serves {target.model or '(unknown model)'!r}, whose architecture the step "
            f"model does not know; known models: {', '.join(known)} (add a profile to simulator/profiles.toml)"
        )
    if weight_gb is None:
        return model
    quantized = (model.params_b - model.unquantized_params_b) * 1e9
    per_param = (weight_gb * 1e9 - model.unquantized_params_b * 1e9 * 2.0) / quantized
    if per_param <= 0:
        raise InputError(f"--model-bytes {target.label}={weight_gb:g}: smaller than the unquantized embedding alone")
    from dataclasses import replace

    return replace(model, weight_bytes_per_param=per_param)


def cell_observations(rows: pd.DataFrame, server: dict[str, pd.DataFrame], profile: Profile) -> list[CellObs]:
    """Cells with a throughput and a TPOT, as fit inputs; repeats of a cell are averaged."""
    cells = []
    usable = rows[(rows["throughput_tok_s"] > 0) & rows["tpot_p50_ms"].notna()]
    for raw, group in usable.groupby(["workload", "concurrency", "max_new_tokens"], sort=True):
        key = (str(raw[0]), int(raw[1]), int(raw[2]))  # type: ignore[call-overload]
        thr = float(group["throughput_tok_s"].mean())
        half = (group["throughput_tok_s_ci95_high"] - group["throughput_tok_s_ci95_low"]) / 2.0
        rel = float((half / 1.96 / group["throughput_tok_s"]).mean())
        has_ci = math.isfinite(rel) and rel > 0
        rel = rel / math.sqrt(len(group)) if has_ci else NO_CI_REL_SE
        tpot_s = float(group["tpot_p50_ms"].mean()) / 1e3
        ramp = float(group["ramp_s"].fillna(0.0).mean())
        sync = float(group["completion_sync_share"].fillna(0.0).mean()) >= WAVES_SHARE
        work = LoopWorkload(
            concurrency=key[1],
            prompt_tokens=max(1, round(float(group["prompt_tokens_mean"].fillna(1).mean()))),
            output_tokens=max(1, round(float(group["output_tokens_mean"].fillna(key[2]).mean()))),
            synchronized=sync,
            ramp_steps=int(ramp / tpot_s) if sync and tpot_s > 0 else 0,
        )
        kv = [_kv_per_seq(server.get(str(c), pd.DataFrame()), profile) for c in group["cell"]]
        kv = [v for v in kv if math.isfinite(v)]
        cells.append(
            CellObs(
                key,
                work,
                thr,
                rel,
                tpot_s * 1e3,
                float(np.mean(kv)) if kv else math.nan,
                float(group["ttft_p50_ms"].mean()),
                has_ci,
            )
        )
    return cells


def _kv_per_seq(frame: pd.DataFrame, profile: Profile) -> float:
    """KV-cache tokens one running request holds on average: usage × capacity ÷ running (from /metrics)."""
    if frame.empty or not {"running", "kv_cache_usage_perc"} <= set(frame.columns):
        return math.nan
    busy = frame[frame["running"] >= max(1.0, 0.5 * float(frame["running"].max()))]
    if busy.empty:
        return math.nan
    per_seq = busy["kv_cache_usage_perc"] * profile.kv_capacity_tokens / busy["running"]
    return float(per_seq.mean())


def _design(profile: Profile, cells: list[CellObs]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[LoopTrace]]:
    """Rows: seconds per token (1/throughput) and TPOT p50 of every cell, with their 1-σ errors."""
    a, y, sd, traces = [], [], [], []
    for c in cells:
        trace = run_closed_loop(profile, c.work)
        traces.append(trace)
        spt = 1.0 / c.throughput_tok_s
        a.append(trace.s_per_token_features())
        y.append(spt)
        sd.append(spt * c.throughput_rel_se)
        a.append(trace.tpot_features().mean(axis=0))
        y.append(c.tpot_p50_ms / 1e3)
        sd.append(c.tpot_p50_ms / 1e3 * max(MIN_TPOT_REL_SE, c.throughput_rel_se))
    return np.array(a), np.array(y), np.array(sd), traces


def _solve(
    a: np.ndarray,
    y: np.ndarray,
    sd: np.ndarray,
    free: list[int],
    value: np.ndarray,
    sigma: np.ndarray,
    measured_errors: bool = True,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Maximum a posteriori θ: weighted least squares for the `free` terms with Gaussian priors
    N(value, sigma²); the other terms fixed at `value`.

    The rows' errors are scaled by the residuals where these exceed them (when no input has a measured
    error, `sd` only weighs the rows and the residuals set the scale outright) and the fit is redone at that
    scale, so the priors weigh against the data as they really are; the prior itself is never scaled, so a
    direction the data cannot see keeps exactly the prior's σ. Covariance: the posterior's, plus each fixed
    term's σ carried through the fit's sensitivity to it. Returns θ, its covariance and the effective
    number of parameters the data determine (the trace of the hat matrix).
    """
    n = len(value)
    held = [j for j in range(n) if j not in free]
    theta = value.copy()
    w = 1.0 / sd**2
    af, ah = a[:, free], a[:, held]
    precision = np.diag(1.0 / sigma[free] ** 2)
    rhs = y - ah @ value[held]
    scale, used = 1.0, 0.0
    for attempt in range(2):  # at the inputs' errors, then at the scale their residuals showed
        ws = w / scale
        info = af.T @ (af * ws[:, None])
        inv = np.linalg.inv(info + precision)
        theta[free] = inv @ (af.T @ (ws * rhs) + precision @ value[free])
        used = float(np.trace(inv @ info))
        resid = (y - a @ theta) / sd
        dof = len(y) - used
        if attempt == 1 or dof < 1.0:
            break
        chi2 = float(resid @ resid) / dof
        scale = max(1.0, chi2) if measured_errors or dof < MIN_DOF_FOR_SCALE else chi2
    sens = np.zeros((n, n))  # dθ / dθ_held
    sens[held, held] = 1.0
    cov = np.zeros((n, n))
    cov[np.ix_(free, free)] = inv
    sens[np.ix_(free, held)] = -inv @ af.T @ (ah * (w / scale)[:, None])
    cov += sens @ np.diag(sigma**2) @ sens.T
    return theta, cov, used


def fit_target(label: str, profile: Profile, cells: list[CellObs]) -> TargetFit:
    """Every term fitted against its prior (see EFF_PRIOR_REL, HOST_DEFAULT); the output says which the
    data pinned down and which stayed at the prior.

    The GPU's documented per-step overhead is an offset (it cannot be told apart from host time per step
    on one GPU); host time per step and per emitted token are fitted on top of it. A term the data push
    past its physical range is held there: an efficiency at the profile's assumption (not above 100 %),
    host time per step at minus the documented overhead (no step without overhead), per token at zero.
    """
    concurrencies = sorted({c.key[1] for c in cells})
    if len(concurrencies) < 2:
        raise InputError(
            f"target {label!r}: too few cells to fit — need completed cells at two or more concurrencies, "
            f"found {', '.join(map(str, concurrencies)) or 'none'}"
        )
    a, measured, sd, _ = _design(profile, cells)
    y = measured - a[:, 2] * profile.step_overhead_ms / 1e3  # the GPU's documented overhead is an offset
    value, sigma = _defaults(profile), _prior_sigma(profile)
    low = np.array([1.0, 1.0, -profile.step_overhead_ms / 1e3, 0.0])
    free = [0, 1, 2, 3]
    notes: list[str] = []
    while True:
        theta, cov, used = _solve(a, y, sd, free, value, sigma, any(c.has_ci for c in cells))
        out = [j for j in free if theta[j] < low[j] - 1e-9]  # 1 ns of slack: exact data lands on the bound
        if not out:
            break
        j = out[0]
        free.remove(j)
        if j >= 2:
            value[j] = low[j]
        notes.append(f"{PARAMS[j][0]}: the cells push it past its physical range; held at {_show(j, value[j])}")
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    fitted = tuple(j in free and se[j] <= IDENTIFIED_SHARE * sigma[j] for j in range(4))
    for j in free:
        if not fitted[j]:
            notes.append(
                f"{PARAMS[j][0]} is not identifiable from these cells: stays at its prior "
                f"{_show(j, _defaults(profile)[j])} ± {_show(j, sigma[j], sigma=True)}, which widens the band"
            )
    resid, dof = y - a @ theta, max(1.0, len(y) - used)
    rel, per_step = resid / measured, resid / a[:, 2]  # a row's constant column is its steps per token
    rms, rms_step = math.sqrt(float(rel @ rel) / dof), math.sqrt(float(per_step @ per_step) / dof)
    held = tuple(j not in free for j in range(4))
    return TargetFit(label, profile, theta, cov, fitted, rms, cells, notes, rms_step, held)  # type: ignore[arg-type]


def _show(j: int, v: float, sigma: bool = False) -> str:
    """Term j's value (or prior σ) in its reporting unit: an efficiency, ms or µs."""
    if j < 2:
        return f"{EFF_PRIOR_REL * 100:.0f} % (of 1/efficiency)" if sigma else f"{1 / v:.2f}"
    return f"{v * 1e3:g} ms" if j == 2 else f"{v * 1e6:g} µs"


@dataclass(frozen=True)
class Projected:
    throughput_tok_s: float
    throughput_low: float
    throughput_high: float
    tpot_p50_ms: float
    ttft_p50_ms: float
    rel_half: float  # 95 % relative half-width applied to TPOT and TTFT
    kv_max_concurrency: float
    kv_limit: str


def project_cell(fit: TargetFit, cell: CellObs, target: Profile) -> Projected:
    """One measured cell on `target` (the other GPU serving the same model).

    The efficiencies' fitted ÷ documented ratios carry over; host time per step and per token carries
    over unchanged (a faster GPU does not speed up the host); the GPU overhead is `target`'s documented one.
    """
    scale = np.ones(4)
    scale[:2] = doc_theta(target)[:2] / doc_theta(fit.profile)[:2]
    theta = fit.theta * scale
    theta[:2] = np.maximum(theta[:2], 1.0)  # no efficiency above 100 %
    coef = coefficients(theta, target)
    cov = fit.cov * np.outer(scale, scale)
    est = run_closed_loop(target, cell.work)
    work = cell.work
    if work.synchronized and work.ramp_steps:
        step_s = float(np.median(est.tpot_features() @ coef))
        ramp_s = work.ramp_steps * cell.tpot_p50_ms / 1e3
        work = LoopWorkload(work.concurrency, work.prompt_tokens, work.output_tokens, True, int(ramp_s / step_s))
        est = run_closed_loop(target, work)
    g = est.s_per_token_features()
    spt = float(g @ coef)
    # per-cell model error: the fit's residuals, relative (a GPU-side misfit scales with the step) or as
    # seconds per step (host noise does not shrink on a faster GPU), whichever is larger here
    model_sd = max(fit.rms_rel_residual * spt, fit.rms_step_residual_s * float(g[2]))
    sd = math.sqrt(float(g @ cov @ g) + model_sd**2)
    kv = cell.kv_tokens_per_seq
    if not math.isfinite(kv):
        kv = work.prompt_tokens + work.output_tokens / 2.0
    kv_max = target.kv_capacity_tokens / kv
    limit = "KV cache" if kv_max < target.max_num_seqs else "max_num_seqs"
    # no band reaches past the roofline: every efficiency at 100 %, no overhead, no host time
    roofline_spt = float(g[0] + g[1])
    return Projected(
        throughput_tok_s=1.0 / spt,
        throughput_low=1.0 / (spt + Z95 * sd),
        throughput_high=1.0 / max(spt - Z95 * sd, roofline_spt),
        tpot_p50_ms=float(np.median(est.tpot_features() @ coef)) * 1e3,
        ttft_p50_ms=float(np.median(est.ttft_features() @ coef)) * 1e3,
        rel_half=Z95 * sd / spt,
        kv_max_concurrency=float(min(kv_max, target.max_num_seqs)),
        kv_limit=limit,
    )


@dataclass
class WhatIf:
    """The projection of one run: fitted parameters, per-cell projections, quant-vs-BF16 savings, notes."""

    gpus: list[str]
    params: pd.DataFrame
    cells: pd.DataFrame
    savings: pd.DataFrame
    notes: list[str]


def _price(catalog: Catalog, gpu: str) -> float:
    spec = catalog.gpu(gpu)
    return spec.hourly_price_usd if spec is not None and spec.hourly_price_usd is not None else math.nan


def _target_rows(
    target: RunTarget,
    fit: TargetFit,
    gpus: list[str],
    catalog: Catalog,
    profiles: dict[str, Profile],
    cost: pd.DataFrame,
    utilization: float,
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    measured_gpu = target.gpu or ""
    for cell in fit.cells:
        workload, conc, mnt = cell.key
        base = {"target_label": target.label, "workload": workload, "concurrency": conc, "max_new_tokens": mnt}
        match = cost[(cost["target_label"] == target.label) & (cost["workload"] == workload)]
        match = match[(match["concurrency"] == conc) & (match["max_new_tokens"] == mnt)]
        usd = float(match["usd_per_1m_tokens"].iloc[0]) if len(match) else math.nan
        price = float(match["hourly_price_usd"].iloc[0]) if len(match) else _price(catalog, measured_gpu)
        kv = (
            cell.kv_tokens_per_seq
            if math.isfinite(cell.kv_tokens_per_seq)
            else cell.work.prompt_tokens + cell.work.output_tokens / 2.0
        )
        rel = Z95 * cell.throughput_rel_se if cell.has_ci else math.nan
        rows.append(
            {
                **base,
                "gpu": measured_gpu,
                "kind": "measured",
                "throughput_tok_s": cell.throughput_tok_s,
                "throughput_tok_s_low": cell.throughput_tok_s * (1 - rel),
                "throughput_tok_s_high": cell.throughput_tok_s * (1 + rel),
                "tpot_p50_ms": cell.tpot_p50_ms,
                "ttft_p50_ms": cell.ttft_p50_ms,
                "rel_half_pct": rel * 100,
                "kv_max_concurrency": min(fit.profile.kv_capacity_tokens / kv, fit.profile.max_num_seqs),
                "hourly_price_usd": price,
                "usd_per_1m_tokens": usd,
            }
        )
        for gpu in gpus:
            other = compose(resolve_hardware(gpu, catalog, profiles), fit.profile)
            p = project_cell(fit, cell, other)
            gpu_price = _price(catalog, gpu)
            per_1m = 1e6 / 3600.0 / utilization * gpu_price
            rows.append(
                {
                    **base,
                    "gpu": gpu,
                    "kind": "projected",
                    "throughput_tok_s": p.throughput_tok_s,
                    "throughput_tok_s_low": p.throughput_low,
                    "throughput_tok_s_high": p.throughput_high,
                    "tpot_p50_ms": p.tpot_p50_ms,
                    "ttft_p50_ms": p.ttft_p50_ms,
                    "rel_half_pct": p.rel_half * 100,
                    "kv_max_concurrency": p.kv_max_concurrency,
                    "hourly_price_usd": gpu_price,
                    "usd_per_1m_tokens": per_1m / p.throughput_tok_s,
                }
            )
    return rows


CELL_COLUMNS = [
    "target_label",
    "workload",
    "concurrency",
    "max_new_tokens",
    "gpu",
    "kind",
    "throughput_tok_s",
    "throughput_tok_s_low",
    "throughput_tok_s_high",
    "tpot_p50_ms",
    "ttft_p50_ms",
    "rel_half_pct",
    "kv_max_concurrency",
    "hourly_price_usd",
    "usd_per_1m_tokens",
]
SAVINGS_COLUMNS = [
    "workload",
    "concurrency",
    "max_new_tokens",
    "gpu",
    "kind",
    "savings_pct",
    "savings_low_pct",
    "savings_high_pct",
]


def savings_by_gpu(cells: pd.DataFrame, baseline: str, candidate: str) -> pd.DataFrame:
    """Quant-vs-BF16 savings per cell and GPU at one price per GPU: 1 − throughput_b / throughput_c.

    Measured rows pair with measured rows (each target on its own GPU), projected rows by GPU.
    """
    keys = ["workload", "concurrency", "max_new_tokens", "slot"]

    def side(label: str) -> pd.DataFrame:
        rows = cells[cells["target_label"] == label]
        return rows.assign(slot=np.where(rows["kind"] == "measured", "measured", rows["gpu"]))

    pair = side(baseline).merge(side(candidate), on=keys, suffixes=("_b", "_c"))
    if pair.empty:
        return pd.DataFrame(columns=SAVINGS_COLUMNS)
    ratio = pair["throughput_tok_s_b"] / pair["throughput_tok_s_c"]
    rse = np.sqrt((pair["rel_half_pct_b"] / 100 / Z95) ** 2 + (pair["rel_half_pct_c"] / 100 / Z95) ** 2)
    out = pair[keys[:3]].copy()
    out["gpu"] = pair["gpu_b"]
    out["kind"] = pair["kind_b"]
    out["savings_pct"] = (1 - ratio) * 100
    out["savings_low_pct"] = (1 - ratio * np.exp(Z95 * rse)) * 100
    out["savings_high_pct"] = (1 - ratio * np.exp(-Z95 * rse)) * 100
    return out[SAVINGS_COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class WhatIfInput:
    """A run's tables and the knobs of a projection."""

    targets: list[RunTarget]
    capacity: pd.DataFrame
    server_metrics: dict[str, pd.DataFrame]
    cost: pd.DataFrame
    utilization: float = 1.0
    model_weight_gb: dict[str, float] = field(default_factory=dict)
    baseline: str | None = None
    candidate: str | None = None


def whatif(inp: WhatIfInput, gpus: list[str], catalog: Catalog, profiles: dict[str, Profile] | None = None) -> WhatIf:
    """Fit every target of the run and project its cells onto `gpus` (catalog keys); `profiles` default to
    the simulator's documented ones (simulator/profiles.toml)."""
    profiles = profiles if profiles is not None else load_profiles()
    if not gpus:
        raise InputError(f"name at least one GPU to project onto (--gpu); known GPUs: {', '.join(catalog.gpus)}")
    for gpu in gpus:
        resolve_hardware(gpu, catalog, profiles)
    params, rows, notes = [], [], []
    for target in inp.targets:
        if target.gpu is None:
            raise InputError(
                f"target {target.label!r} names no GPU (set gpu = ... in the scenario); "
                f"known GPUs: {', '.join(catalog.gpus)}"
            )
        source = compose(
            resolve_hardware(target.gpu, catalog, profiles),
            resolve_model(target, profiles, inp.model_weight_gb.get(target.label)),
        )
        mine = inp.capacity[inp.capacity["target_label"] == target.label]
        cells = cell_observations(mine, inp.server_metrics, source)
        fit = fit_target(target.label, source, cells)
        if all(not math.isfinite(c.kv_tokens_per_seq) for c in cells):
            fit.notes.append("no /metrics: fitted from client data only; KV per request = prompt + output/2 tokens")
        notes += [f"{target.label}: {n}" for n in fit.notes]
        notes.append(f"{target.label}: fit residual {fit.rms_rel_residual * 100:.1f} % RMS over {len(cells)} cells")
        params += fit.param_rows()
        rows += _target_rows(target, fit, gpus, catalog, profiles, inp.cost, inp.utilization)
    table = pd.DataFrame(rows, columns=CELL_COLUMNS)
    savings = pd.DataFrame(columns=SAVINGS_COLUMNS)
    if inp.baseline and inp.candidate:
        savings = savings_by_gpu(table, inp.baseline, inp.candidate)
    return WhatIf(gpus, pd.DataFrame(params), table, savings, notes)
