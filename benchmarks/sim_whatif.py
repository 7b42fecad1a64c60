"""What-if projection error where the truth is known: the simulator's GPU profiles.

Runs one grid against six simulators — the RTX 2000 Ada pair (BF16, AWQ: the "measured" GPU) and the
same two models on the A100 and H100 profiles (the truth) — fits the step-time model to the RTX cells
only, projects them onto a100-80gb and h100-80gb, and compares each projected cell with the grid's
measured cell of the same model on that profile: throughput, TPOT p50, TTFT p50, whether the band holds
the truth (and whether it meets the truth's own 95 % CI), and the quant-vs-BF16 savings. A benchmark, not a
test: it asserts nothing. Both workloads (batch: 384-token prompts; chat: short ones) at 4, 8 and 16 users
take about 13 minutes of a 2-core machine; --run-dir compares an existing run again in seconds.

    .venv/bin/python benchmarks/sim_whatif.py [--duration-s 16] [--concurrency 4,8,16] [--json OUT] [--fixture CSV]
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
from analysis.run import load_run  # noqa: E402
from analysis.whatif import WhatIfInput, whatif  # noqa: E402
from simulator.profiles import load_profiles  # noqa: E402

MEASURED = {"RTX-BF16": "rtx2000-ada-16gb-bf16", "RTX-AWQ": "rtx2000-ada-16gb-awq"}
TRUTH = {
    "A100-BF16": "a100-80gb-bf16",
    "A100-AWQ": "a100-80gb-awq",
    "H100-BF16": "h100-80gb-bf16",
    "H100-AWQ": "h100-80gb-awq",
}
GPUS = ["a100-80gb", "h100-80gb"]
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
def simulators(profiles: dict[str, str]) -> Iterator[dict[str, str]]:
    procs, urls = [], {}
    try:
        for label, profile in profiles.items():
            cmd = [sys.executable, "-m", "simulator", "--profile", profile, "--port", "0"]
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("SIMULATOR READY "):
                raise RuntimeError(f"simulator {profile} did not start: {line!r}")
            urls[label] = line.split()[-1]
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def scenario(duration_s: int, warmup_s: int, concurrency: list[int]) -> str:
    gpu = {label: p.rsplit("-", 1)[0] for label, p in {**MEASURED, **TRUTH}.items()}
    targets = "".join(
        f'\n[[targets]]\nlabel = "{label}"\nurl = "http://127.0.0.1:1"\ngpu = "{gpu[label]}"\n' for label in gpu
    )
    conc = ", ".join(map(str, concurrency))
    return f"""[scenario]
name = "whatif-validation"
duration_s = {duration_s}
warmup_s = {warmup_s}
spawn_rate = 50
order = "interleaved"
stop_timeout_s = 20
request_timeout_s = 60
{targets}
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


def run_grid(work: Path, opts: argparse.Namespace) -> Path:
    path = work / "whatif.toml"
    path.write_text(scenario(opts.duration_s, opts.warmup_s, opts.concurrency))
    with simulators({**MEASURED, **TRUTH}) as urls:
        overrides = [a for label, url in urls.items() for a in ("--target-url", f"{label}={url}")]
        cmd = [sys.executable, "-m", "loadgen", "grid", str(path), "--out", str(work / "runs"), *overrides]
        out = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def _pct(projected: float, truth: float) -> float:
    return (projected / truth - 1.0) * 100.0


def _half(row: dict[str, Any]) -> float:
    """The band's half-width in % of the projection (the mean of its two sides)."""
    low, high = row["band_tok_s"]
    return (high - low) / 2.0 / row["projected_tok_s"] * 100.0


def compare(run_dir: Path) -> dict[str, Any]:
    run = load_run(run_dir)
    run.capacity = run.capacity[run.capacity["status"] == "completed"]  # an interrupted grid: finished cells only
    a = analyse(run, Options(baseline="RTX-BF16", candidate="RTX-AWQ"))
    measured = [t for t in run.targets if t.label in MEASURED]
    cap = run.capacity[run.capacity["target_label"].isin(list(MEASURED))]
    inp = WhatIfInput(measured, cap, run.server_metrics, a.cost, baseline="RTX-BF16", candidate="RTX-AWQ")
    t0 = time.perf_counter()
    result = whatif(inp, GPUS, a.catalog, load_profiles())
    elapsed = time.perf_counter() - t0
    truth = run.capacity.set_index(["target_label", "workload", "concurrency", "max_new_tokens"])
    rows = []
    for r in result.cells[result.cells["kind"] == "projected"].itertuples(index=False):
        label = f"{str(r.gpu)[:4].upper()}-{str(r.target_label).split('-')[1]}"
        t = truth.loc[(label, r.workload, r.concurrency, r.max_new_tokens)]
        t = t.iloc[0] if isinstance(t, pd.DataFrame) else t
        rows.append(
            {
                "measured_target": r.target_label,
                "truth_target": label,
                "workload": r.workload,
                "concurrency": int(r.concurrency),
                "projected_tok_s": round(float(r.throughput_tok_s), 1),
                "band_tok_s": [round(float(r.throughput_tok_s_low), 1), round(float(r.throughput_tok_s_high), 1)],
                "truth_tok_s": round(float(t["throughput_tok_s"]), 1),
                "throughput_err_pct": round(_pct(r.throughput_tok_s, t["throughput_tok_s"]), 2),
                "in_band": bool(r.throughput_tok_s_low <= t["throughput_tok_s"] <= r.throughput_tok_s_high),
                "band_meets_truth_ci": bool(
                    r.throughput_tok_s_low <= t["throughput_tok_s_ci95_high"]
                    and t["throughput_tok_s_ci95_low"] <= r.throughput_tok_s_high
                ),
                "tpot_err_pct": round(_pct(r.tpot_p50_ms, t["tpot_p50_ms"]), 2),
                "ttft_err_pct": round(_pct(r.ttft_p50_ms, t["ttft_p50_ms"]), 2),
                "truth_adequate": bool(t["adequate"]),
            }
        )
    errs = {k: np.abs([r[f"{k}_err_pct"] for r in rows]) for k in ("throughput", "tpot", "ttft")}
    savings = []
    for s in result.savings[result.savings["kind"] == "projected"].itertuples(index=False):
        tb = truth.loc[(f"{str(s.gpu)[:4].upper()}-BF16", s.workload, s.concurrency, s.max_new_tokens)]
        tq = truth.loc[(f"{str(s.gpu)[:4].upper()}-AWQ", s.workload, s.concurrency, s.max_new_tokens)]
        true_savings = (1 - float(tb["throughput_tok_s"]) / float(tq["throughput_tok_s"])) * 100
        savings.append(
            {
                "gpu": s.gpu,
                "workload": s.workload,
                "concurrency": int(s.concurrency),
                "projected_pct": round(float(s.savings_pct), 1),
                "band_pct": [round(float(s.savings_low_pct), 1), round(float(s.savings_high_pct), 1)],
                "truth_pct": round(true_savings, 1),
            }
        )
    return {
        "run_dir": str(run_dir),
        "projection_s": round(elapsed, 2),
        "cells": rows,
        "summary": {
            f"{k}_abs_err_pct": {"median": round(float(np.median(v)), 2), "max": round(float(v.max()), 2)}
            for k, v in errs.items()
        }
        | {
            "band_coverage": f"{sum(r['in_band'] for r in rows)}/{len(rows)}",
            "band_meets_truth_ci": f"{sum(r['band_meets_truth_ci'] for r in rows)}/{len(rows)}",
            "band_median_half_pct": round(float(np.median([_half(r) for r in rows])), 1),
        },
        "savings": savings,
        "params": json.loads(result.params.to_json(orient="records")),
        "notes": result.notes,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration-s", type=int, default=16)
    p.add_argument("--warmup-s", type=int, default=4)
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[4, 8, 16])
    p.add_argument("--run-dir", type=Path, help="compare an existing run instead of running the grid")
    p.add_argument("--work", type=Path, help="keep the run directory here (default: a temporary one)")
    p.add_argument("--json", type=Path)
    p.add_argument("--fixture", type=Path, help="also write the run's capacity rows (for the unit test)")
    opts = p.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="whatif-") as tmp:
        work = opts.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run_dir = opts.run_dir or run_grid(work, opts)
        data = compare(run_dir)
        if opts.fixture is not None:
            cap = load_run(run_dir).capacity
            cap = cap[cap["status"] == "completed"][FIXTURE_COLUMNS].assign(cell="")
            cap.to_csv(opts.fixture, index=False, float_format="%.6g")
    data["config"] = {"duration_s": opts.duration_s, "warmup_s": opts.warmup_s, "concurrency": opts.concurrency}
    data["config"]["load_avg_start"] = [round(x, 2) for x in load_start]
    data["config"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    data["config"]["workloads"] = sorted({c["workload"] for c in data["cells"]})
    text = json.dumps(data, indent=2)
    if opts.json:
        opts.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
