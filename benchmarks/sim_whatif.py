"""What-if projection error where the truth is known: the simulator's GPU profiles.

Six simulated deployments — the RTX 2000 Ada pair (BF16, AWQ: the "measured" GPU) and the same two
models on the A100 and H100 profiles (the truth) — are measured by our load generator over HTTP, each
cell against a simulator started for it alone, cells alternating between targets. The step-time model is
fitted to the RTX cells only, projected onto a100-80gb and h100-80gb, and each projected cell compared
with the measured cell of the same model on that profile: throughput, TPOT p50, TTFT p50, whether the band
holds the truth (and whether it meets the truth's own 95 % CI), and the quant-vs-BF16 savings.

The truth must be the model's: the simulators run with anchored steps (the model's timeline; host time
shorter than a step is absorbed), and every cell records the simulator's own account from /metrics —
mean modelled step, mean overrun (how late back-to-back steps began) and the share of steps that fell off
the timeline. A truth cell with more than MAX_MISS_SHARE of its steps off the timeline did not keep the
model's schedule: it is listed, and left out of the summary (the count is shown). Each truth cell is
also set beside the model's own figure for it (the closed-loop engine at the profile's documented terms,
no host time), which shows what the HTTP measurement adds.

A benchmark, not a test: it asserts nothing. Both workloads (batch: 384-token prompts; chat: short ones)
at 4, 8 and 16 users take about 10 minutes of a 2-core machine; --run-dir compares existing runs again.

    .venv/bin/python benchmarks/sim_whatif.py [--duration-s 16] [--concurrency 4,8,16] [--schedule anchored]
        [--json OUT] [--fixture CSV] [--run-dir DIR ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.bundle import Options, analyse  # noqa: E402
from analysis.run import Run, load_run  # noqa: E402
from analysis.whatif import WhatIfInput, cell_observations, whatif  # noqa: E402
from analysis.whatif_model import doc_theta, run_closed_loop  # noqa: E402
from simulator.profiles import load_profiles  # noqa: E402

MEASURED = {"RTX-BF16": "rtx2000-ada-16gb-bf16", "RTX-AWQ": "rtx2000-ada-16gb-awq"}
TRUTH = {
    "A100-BF16": "a100-80gb-bf16",
    "A100-AWQ": "a100-80gb-awq",
    "H100-BF16": "h100-80gb-bf16",
    "H100-AWQ": "h100-80gb-awq",
}
GPUS = ["a100-80gb", "h100-80gb"]
# A cell whose simulator fell more than this far off the model's timeline did not keep the model's
# schedule: anchored, the share of steps that began later than their own duration; otherwise the share of
# the modelled time its overruns added (step_health).
MAX_MISS_SHARE = 0.02
FIXTURE_COLUMNS = [
    "target_label",
    "workload",
    "concurrency",
    "max_new_tokens",
    "repeat",
    "throughput_tok_s",
    "throughput_tok_s_ci95_low",
    "throughput_tok_s_ci95_high",
    "tpot_p50_ms",
    "ttft_p50_ms",
    "prompt_tokens_mean",
    "output_tokens_mean",
    "completion_sync_share",
    "ramp_s",
    "cell",
]


@contextlib.contextmanager
def simulator(profile: str, anchored: bool) -> Iterator[str]:
    """One simulator on a free port; its URL."""
    cmd = [sys.executable, "-m", "simulator", "--profile", profile, "--port", "0"]
    cmd += ["--anchored-steps"] if anchored else []
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("SIMULATOR READY "):
            raise RuntimeError(f"simulator {profile} did not start: {line!r}")
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def scenario(label: str, duration_s: int, warmup_s: int, concurrency: list[int]) -> str:
    """The grid of one target (each target's cells run against its own simulator, alone on the machine)."""
    gpu = {**MEASURED, **TRUTH}[label].rsplit("-", 1)[0]
    conc = ", ".join(map(str, concurrency))
    return f"""[scenario]
name = "whatif-validation"
duration_s = {duration_s}
warmup_s = {warmup_s}
spawn_rate = 50
stop_timeout_s = 20
request_timeout_s = 60

[[targets]]
label = "{label}"
url = "http://127.0.0.1:1"
gpu = "{gpu}"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [{conc}]
max_new_tokens = [64]
options = {{ prompt_tokens = 384, output_range_ratio = 0.5 }}

[[workloads]]
name = "chat"
locustfile = "locustfiles/chat.py"
concurrency = [{conc}]
max_new_tokens = [64]
options = {{ output_range_ratio = 0.5 }}
"""


def run_grid(work: Path, opts: argparse.Namespace) -> list[Path]:
    """Every cell as its own one-cell grid against a simulator started for it alone: no idle simulator
    shares the machine, and the targets alternate cell by cell so a drifting load touches all of them."""
    profiles = {**MEASURED, **TRUTH}
    paths = {}
    for label in profiles:
        paths[label] = work / f"{label}.toml"
        paths[label].write_text(scenario(label, opts.duration_s, opts.warmup_s, opts.concurrency))
    runs = []
    for workload in ("batch", "chat"):
        for users in opts.concurrency:
            for label, profile in profiles.items():
                with simulator(profile, opts.schedule == "anchored") as url:
                    cmd = [sys.executable, "-m", "loadgen", "grid", str(paths[label]), "--out", str(work / "runs")]
                    cmd += [
                        "--target-url",
                        f"{label}={url}",
                        "--only",
                        f"workload={workload}",
                        "--only",
                        f"users={users}",
                    ]
                    out = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
                runs.append(Path(out.stdout.strip().splitlines()[-1]))
    return runs


MEASUREMENT = "measurement.json"  # beside runs/: how and under what load the cells were measured


def measurement(run_dirs: list[Path]) -> dict[str, Any]:
    """The measurement record of existing run directories (WORK/runs/RUN → WORK/measurement.json)."""
    path = run_dirs[0].parent.parent / MEASUREMENT
    if not path.exists():
        raise SystemExit(f"{path}: not found; --run-dir takes the run directories this benchmark wrote under --work")
    return dict(json.loads(path.read_text()))


def merged_run(run_dirs: list[Path]) -> Run:
    """One-cell runs as one run: their targets (once each), cells, capacity rows and server metrics."""
    runs = [load_run(p) for p in run_dirs]
    targets = list({t.label: t for r in runs for t in r.targets}.values())
    capacity = pd.concat([r.capacity for r in runs], ignore_index=True)
    server = {k: v for r in runs for k, v in r.server_metrics.items()}
    cells = [c for r in runs for c in r.cells]
    return Run(run_dirs[0].parent, runs[0].scenario, targets, cells, capacity, server)


def step_health(frame: pd.DataFrame, anchored: bool) -> dict[str, float]:
    """The simulator's own account of a cell (deltas over its /metrics scrapes): mean modelled step, mean
    overrun between back-to-back steps, and how far it fell off the model's timeline (`miss_share`): with
    anchored steps the share of steps that dropped it; otherwise every overrun drops it, so the share of
    the modelled time added by overruns."""
    step, over, miss = "sim:engine_step_seconds", "sim:engine_step_overrun_seconds", "sim:engine_step_misses_total"
    need = [f"{c}_{s}" for c in (step, over) for s in ("sum", "count")]
    if len(frame) < 2 or not set(need) <= set(frame.columns):
        return {"step_ms": math.nan, "overrun_ms": math.nan, "miss_share": math.nan}
    d = {k: float(frame[k].iloc[-1] - frame[k].iloc[0]) for k in [*need, *([miss] if miss in frame else [])]}
    steps = d[f"{step}_count"]
    return {
        "step_ms": d[f"{step}_sum"] / steps * 1e3 if steps else math.nan,
        "overrun_ms": d[f"{over}_sum"] / d[f"{over}_count"] * 1e3 if d[f"{over}_count"] else math.nan,
        "miss_share": (d[miss] / steps if miss in d and steps else math.nan)
        if anchored
        else d[f"{over}_sum"] / d[f"{step}_sum"]
        if d[f"{step}_sum"]
        else math.nan,
    }


def _pct(projected: float, truth: float) -> float:
    return (projected / truth - 1.0) * 100.0


def _half(row: dict[str, Any]) -> float:
    """The band's half-width in % of the projection (the mean of its two sides)."""
    low, high = row["band_tok_s"]
    return (high - low) / 2.0 / row["projected_tok_s"] * 100.0


def _r(x: float, nd: int = 2) -> float | None:
    return None if not math.isfinite(x) else round(float(x), nd)


def _health(run: Run, anchored: bool) -> dict[tuple[str, str, int, int], dict[str, float]]:
    out = {}
    for r in run.capacity.itertuples(index=False):
        frame = run.server_metrics.get(str(r.cell), pd.DataFrame())
        out[(str(r.target_label), str(r.workload), int(r.concurrency), int(r.max_new_tokens))] = step_health(
            frame, anchored
        )
    return out


def _model_tok_s(run: Run, label: str, key: tuple[str, int, int]) -> float:
    """The model's own throughput for a cell: the closed-loop engine at the profile's documented terms."""
    profile = load_profiles()[{**MEASURED, **TRUTH}[label]]
    rows = run.capacity[(run.capacity["target_label"] == label) & (run.capacity["workload"] == key[0])]
    rows = rows[(rows["concurrency"] == key[1]) & (rows["max_new_tokens"] == key[2])]
    cell = cell_observations(rows, {}, profile)[0]
    coef = doc_theta(profile)
    return 1.0 / float(run_closed_loop(profile, cell.work).s_per_token_features() @ coef)


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"cells": 0}
    errs = {k: np.abs([r[f"{k}_err_pct"] for r in rows]) for k in ("throughput", "tpot", "ttft")}
    return {
        "cells": len(rows),
        **{
            f"{k}_abs_err_pct": {"median": round(float(np.median(v)), 2), "max": round(float(v.max()), 2)}
            for k, v in errs.items()
        },
        "band_coverage": f"{sum(r['in_band'] for r in rows)}/{len(rows)}",
        "band_meets_truth_ci": f"{sum(r['band_meets_truth_ci'] for r in rows)}/{len(rows)}",
        "band_median_half_pct": round(float(np.median([_half(r) for r in rows])), 1),
        "band_max_half_pct": round(float(np.max([_half(r) for r in rows])), 1),
    }


def compare(run: Run, anchored: bool) -> dict[str, Any]:
    run.capacity = run.capacity[run.capacity["status"] == "completed"]  # an interrupted grid: finished cells only
    a = analyse(run, Options(baseline="RTX-BF16", candidate="RTX-AWQ"))
    measured = [t for t in run.targets if t.label in MEASURED]
    cap = run.capacity[run.capacity["target_label"].isin(list(MEASURED))]
    inp = WhatIfInput(measured, cap, run.server_metrics, a.cost, baseline="RTX-BF16", candidate="RTX-AWQ")
    t0 = time.perf_counter()
    result = whatif(inp, GPUS, a.catalog, load_profiles())
    elapsed = time.perf_counter() - t0
    health = _health(run, anchored)
    truth = run.capacity.set_index(["target_label", "workload", "concurrency", "max_new_tokens"])
    rows = []
    for r in result.cells[result.cells["kind"] == "projected"].itertuples(index=False):
        label = f"{str(r.gpu)[:4].upper()}-{str(r.target_label).split('-')[1]}"
        key = (label, str(r.workload), int(r.concurrency), int(r.max_new_tokens))
        t = truth.loc[key]
        t = t.iloc[0] if isinstance(t, pd.DataFrame) else t
        h, hm = health[key], health[(str(r.target_label), *key[1:])]
        model = _model_tok_s(run, label, key[1:])
        rows.append(
            {
                "measured_target": r.target_label,
                "truth_target": label,
                "workload": r.workload,
                "concurrency": int(r.concurrency),
                "projected_tok_s": round(float(r.throughput_tok_s), 1),
                "band_tok_s": [round(float(r.throughput_tok_s_low), 1), round(float(r.throughput_tok_s_high), 1)],
                "truth_tok_s": round(float(t["throughput_tok_s"]), 1),
                "model_tok_s": round(model, 1),
                "truth_vs_model_pct": round(_pct(float(t["throughput_tok_s"]), model), 2),
                "throughput_err_pct": round(_pct(r.throughput_tok_s, t["throughput_tok_s"]), 2),
                "in_band": bool(r.throughput_tok_s_low <= t["throughput_tok_s"] <= r.throughput_tok_s_high),
                "band_meets_truth_ci": bool(
                    r.throughput_tok_s_low <= t["throughput_tok_s_ci95_high"]
                    and t["throughput_tok_s_ci95_low"] <= r.throughput_tok_s_high
                ),
                "tpot_err_pct": round(_pct(r.tpot_p50_ms, t["tpot_p50_ms"]), 2),
                "ttft_err_pct": round(_pct(r.ttft_p50_ms, t["ttft_p50_ms"]), 2),
                "truth_adequate": bool(t["adequate"]),
                "truth_step_ms": _r(h["step_ms"]),
                "truth_overrun_ms": _r(h["overrun_ms"], 3),
                "truth_miss_pct": _r(h["miss_share"] * 100, 1),
                "measured_overrun_ms": _r(hm["overrun_ms"], 3),
                "measured_miss_pct": _r(hm["miss_share"] * 100, 1),
                "kept_schedule": bool(h["miss_share"] <= MAX_MISS_SHARE and hm["miss_share"] <= MAX_MISS_SHARE),
            }
        )
    savings = []
    for s in result.savings[result.savings["kind"] == "projected"].itertuples(index=False):
        tb = truth.loc[(f"{str(s.gpu)[:4].upper()}-BF16", s.workload, s.concurrency, s.max_new_tokens)]
        tq = truth.loc[(f"{str(s.gpu)[:4].upper()}-AWQ", s.workload, s.concurrency, s.max_new_tokens)]
        true_savings = (1 - float(tb["throughput_tok_s"]) / float(tq["throughput_tok_s"])) * 100
        gpu = str(s.gpu)[:4].upper()
        kept = [
            c["kept_schedule"]
            for c in rows
            if c["truth_target"].startswith(gpu) and c["workload"] == s.workload and c["concurrency"] == s.concurrency
        ]
        savings.append(
            {
                "gpu": s.gpu,
                "workload": s.workload,
                "concurrency": int(s.concurrency),
                "projected_pct": round(float(s.savings_pct), 1),
                "band_pct": [round(float(s.savings_low_pct), 1), round(float(s.savings_high_pct), 1)],
                "truth_pct": round(true_savings, 1),
                "in_band": bool(s.savings_low_pct <= true_savings <= s.savings_high_pct),
                "kept_schedule": all(kept),
            }
        )
    kept = [r for r in rows if r["kept_schedule"]]
    return {
        "runs": str(run.path),
        "projection_s": round(elapsed, 2),
        "cells": rows,
        "summary": _summary(kept) | {"excluded": len(rows) - len(kept), "max_miss_pct": MAX_MISS_SHARE * 100},
        "summary_all": _summary(rows),
        "savings": savings,
        "params": json.loads(result.params.to_json(orient="records")),
        "notes": result.notes,
    }


def _pct_or_dash(x: float | None, sign: bool = False) -> str:
    return "–" if x is None else (f"{x:+.1f} %" if sign else f"{x:.1f} %")


def _run_row(w: dict[str, Any]) -> str:
    c, s = w["config"], w["summary"]
    if not s.get("cells"):
        errs = "– | – | – | –"
    else:
        t = s["throughput_abs_err_pct"]
        errs = f"{t['median']:.1f} % / {t['max']:.1f} % | {s['band_coverage']} | {s['band_meets_truth_ci']} | "
        errs += f"{s['band_median_half_pct']:.1f} % / {s['band_max_half_pct']:.1f} %"
    a = w["summary_all"]
    t_all = a["throughput_abs_err_pct"]
    gap = [x["truth_vs_model_pct"] for x in w["cells"]]
    return (
        f"| {c['started_utc']} | {c['schedule']} | {c['load_avg_start'][0]:.2f} → {c['load_avg_end'][0]:.2f} "
        f"| {min(gap):+.1f} % … {max(gap):+.1f} % (median {float(np.median(gap)):+.1f} %) "
        f"| {s['cells']} of {a['cells']} ({s['excluded']} left out) | {errs} "
        f"| {t_all['median']:.1f} % / {t_all['max']:.1f} % | {a['band_coverage']} |"
    )


def render_section(w: dict[str, Any], history: list[dict[str, Any]] | None = None) -> list[str]:
    """§8 of BENCHMARKS.md, all of it, from this benchmark's JSON (`w`: the latest run; `history`: every
    run kept in benchmarks/results/sim_whatif_runs/, oldest first)."""
    cfg, s, a = w["config"], w["summary"], w["summary_all"]
    lines = [
        "## 8. What-if projections vs simulated A100/H100",
        "",
        "`benchmarks/sim_whatif.py`: six simulated deployments — the RTX 2000 Ada BF16/AWQ pair (the measured",
        "GPU) and the same models on the `a100-80gb-*` / `h100-80gb-*` profiles (the truth) — measured by our",
        f"load generator over HTTP, workloads {', '.join(cfg['workloads'])} (batch: 384-token prompts), 64 output",
        f"tokens ±50 %, {cfg['concurrency']} users, {cfg['duration_s']} s cells with {cfg['warmup_s']} s warm-up;",
        "each cell against a simulator started for it alone, cells alternating between targets. The RTX cells",
        "alone are fitted, projected onto A100/H100 and compared with the measured A100/H100 cells of the same",
        "model. The simulator is the step-time model, so this measures the fit, the closed-loop reconstruction",
        "and the calibration transfer through real HTTP measurement, not the physics (docs/WHATIF.md).",
        "",
        f"Simulator steps: **{cfg['schedule']}** (`--anchored-steps`: back-to-back steps follow the model's "
        "timeline, host time shorter than a step is absorbed). Each cell's simulator reports, from /metrics,",
        "its mean modelled step, the mean overrun (how late back-to-back steps began) and the share of steps",
        f"that fell off the timeline; a cell with more than {s['max_miss_pct']:.0f} % off (the truth cell or the",
        "RTX cell it is projected from) did not keep the model's schedule and is left out of the error summary",
        "(it stays in the table, marked). *Model* is the closed-loop engine's own figure for the truth cell (the",
        "profile's documented terms, no host time): truth vs model shows what the HTTP measurement on this",
        "machine adds.",
        "",
        f"Latest run: {cfg['started_utc']} UTC, {cfg['minutes']} min, nice {cfg['nice']}; load average (1, 5, "
        f"15 min) {cfg['load_avg_start']} at the start, {cfg['load_avg_end']} at the end. Cells kept: "
        f"{s['cells']} of {a['cells']} ({s['excluded']} left out).",
        "",
        "| | kept cells: median abs. error | max abs. error | all cells: median | max |",
        "|---|---|---|---|---|",
    ]
    for key, name in (("throughput", "throughput (tok/s)"), ("tpot", "TPOT p50"), ("ttft", "TTFT p50")):
        e, e_all = s.get(f"{key}_abs_err_pct"), a[f"{key}_abs_err_pct"]
        kept = f"{e['median']:.1f} % | {e['max']:.1f} %" if e else "– | –"
        lines.append(f"| {name} | {kept} | {e_all['median']:.1f} % | {e_all['max']:.1f} % |")
    if s.get("cells"):
        lines += [
            "",
            f"Kept cells: truth inside the projected 95 % throughput band {s['band_coverage']}; band meeting the "
            f"truth cell's own 95 % CI {s['band_meets_truth_ci']}; band half-width median "
            f"{s['band_median_half_pct']} %, max {s['band_max_half_pct']} %. All cells: in band "
            f"{a['band_coverage']}, meeting the CI "
            f"{a['band_meets_truth_ci']}. Projection time {w['projection_s']} s for the whole run.",
        ]
    for kept, name in ((True, "kept"), (False, "left-out")):
        gap = [c["truth_vs_model_pct"] for c in w["cells"] if c["kept_schedule"] is kept]
        if gap:
            lines += [
                "",
                f"Truth vs the model's own figure in the {name} cells: {min(gap):+.1f} % to {max(gap):+.1f} % "
                f"(median {float(np.median(gap)):+.1f} %).",
            ]
    lines += [
        "",
        "| measured → truth | workload | users | projected tok/s [band] | truth tok/s | error | model tok/s "
        "| truth vs model | TPOT err | TTFT err | truth step / overrun ms | off timeline (truth, RTX) | kept |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in w["cells"]:
        step = "–" if c["truth_step_ms"] is None else f"{c['truth_step_ms']:.2f} / {c['truth_overrun_ms']:.2f}"
        lines.append(
            f"| {c['measured_target']} → {c['truth_target']} | {c['workload']} | {c['concurrency']} "
            f"| {c['projected_tok_s']:,.1f} [{c['band_tok_s'][0]:,.1f}, {c['band_tok_s'][1]:,.1f}] "
            f"| {c['truth_tok_s']:,.1f} | {c['throughput_err_pct']:+.1f} % | {c['model_tok_s']:,.1f} "
            f"| {c['truth_vs_model_pct']:+.1f} % | {c['tpot_err_pct']:+.1f} % | {c['ttft_err_pct']:+.1f} % | {step} "
            f"| {_pct_or_dash(c['truth_miss_pct'])}, {_pct_or_dash(c['measured_miss_pct'])} "
            f"| {'yes' if c['kept_schedule'] else 'no'} |"
        )
    lines += ["", "Quant (AWQ) vs BF16 savings at one price per GPU, projected vs truth:", ""]
    lines += ["| GPU | workload | users | projected [band] | truth | in band | kept |", "|---|---|---|---|---|---|---|"]
    for v in w["savings"]:
        lines.append(
            f"| {v['gpu']} | {v['workload']} | {v['concurrency']} | {v['projected_pct']:+.1f} % "
            f"[{v['band_pct'][0]:+.1f}, {v['band_pct'][1]:+.1f}] | {v['truth_pct']:+.1f} % "
            f"| {'yes' if v['in_band'] else 'no'} | {'yes' if v['kept_schedule'] else 'no'} |"
        )
    lines += ["", "Fitted terms (RTX cells; *prior*: the cells could not pin the term down, docs/WHATIF.md):", ""]
    lines += ["| target | term | value [95 %] | prior centre | status |", "|---|---|---|---|---|"]
    for p in w["params"]:
        ci = "" if p["ci95_low"] is None else f" [{p['ci95_low']:.3g}, {p['ci95_high']:.3g}]"
        lines.append(
            f"| {p['target_label']} | {p['parameter']} | {p['value']:.3g}{ci} | {p['documented']:.3g} | {p['status']} |"
        )
    lines += ["", "Fit notes: " + "; ".join(w["notes"]), ""]
    if history:
        lines += [
            "Every run of this benchmark kept in `benchmarks/results/sim_whatif_runs/` (throughput error median / max;",
            "band half-width median / max; load average is the 1-minute figure at start → end; truth vs model over",
            "all 24 truth cells). Steps *start*: each step begins after the last one's writes, so every overrun",
            "takes the simulator off the model's timeline (the share of modelled time the overruns added is its",
            "off-timeline figure).",
            "",
            "| run (UTC) | steps | load | truth vs model | cells kept | kept: error | in band | band meets CI "
            "| band half-width | all: error | all: in band |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *[_run_row(h) for h in history],
            "",
        ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration-s", type=int, default=16)
    p.add_argument("--warmup-s", type=int, default=4)
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[4, 8, 16])
    p.add_argument(
        "--schedule",
        choices=["anchored", "start"],
        default="anchored",
        help="simulator steps on the model's timeline (anchored) or each after the last one's writes (start)",
    )
    p.add_argument("--run-dir", type=Path, nargs="+", help="compare existing run directories instead of measuring")
    p.add_argument("--work", type=Path, help="keep the run directories here (default: a temporary one)")
    p.add_argument("--json", type=Path)
    p.add_argument("--fixture", type=Path, help="also write the run's capacity rows (for the unit test)")
    opts = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="whatif-") as tmp:
        work = opts.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if opts.run_dir:
            run_dirs, config = opts.run_dir, measurement(opts.run_dir)
        else:
            load_start, started = os.getloadavg(), time.time()
            run_dirs = run_grid(work, opts)
            config = {
                "duration_s": opts.duration_s,
                "warmup_s": opts.warmup_s,
                "concurrency": opts.concurrency,
                "schedule": opts.schedule,
                "load_avg_start": [round(x, 2) for x in load_start],
                "load_avg_end": [round(x, 2) for x in os.getloadavg()],
                "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
                "minutes": round((time.time() - started) / 60, 1),
                "nice": os.nice(0),
            }
            (work / MEASUREMENT).write_text(json.dumps(config, indent=2) + "\n")
        run = merged_run(run_dirs)
        anchored = config["schedule"] == "anchored"
        data = compare(run, anchored)
        if opts.fixture is not None:
            health = _health(run, anchored)
            keys = zip(
                run.capacity["target_label"],
                run.capacity["workload"],
                run.capacity["concurrency"],
                run.capacity["max_new_tokens"],
                strict=True,
            )
            miss = [health[(str(t), str(w), int(c), int(m))]["miss_share"] for t, w, c, m in keys]
            cap = run.capacity[FIXTURE_COLUMNS].assign(cell="", sim_miss_share=miss)
            tmp_csv = opts.fixture.with_suffix(".tmp")
            cap.to_csv(tmp_csv, index=False, float_format="%.6g")
            tmp_csv.replace(opts.fixture)
    data["config"] = config | {"workloads": sorted({c["workload"] for c in data["cells"]})}
    text = json.dumps(data, indent=2)
    if opts.json:
        tmp_json = opts.json.with_suffix(".tmp")
        tmp_json.write_text(text + "\n")
        tmp_json.replace(opts.json)
    print(text)


if __name__ == "__main__":
    main()
