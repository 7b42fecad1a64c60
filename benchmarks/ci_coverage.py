"""Coverage of the cells' 95% CIs: how often a short cell's interval contains the long-run value.

One long closed-loop run of our chat user against the simulator (rtx2000-ada-16gb-bf16 profile) per
condition: `varied` output lengths (--output-range-ratio 0.5, independent users) and `waves` (equal
lengths: users phase-lock and finish together). The first half after the warm-up gives the long-run
"truth"; the second half is cut into consecutive short windows, each reduced exactly as a grid cell of
that length would be (its own batches, its own CI). Coverage = share of short windows whose CI contains
the truth, for throughput_tok_s, req_per_s and p95_latency_ms; windows without a CI (fewer than 5
batches) are counted apart. A benchmark, not a test: it asserts nothing.

    .venv/bin/python benchmarks/ci_coverage.py [--long-s 600] [--slice-s 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.adequacy import reasons  # noqa: E402
from analysis.capacity import CellData, cell_row  # noqa: E402
from analysis.tables import load_cells  # noqa: E402
from simulator.launch import running_simulator  # noqa: E402

USERS = 16
METRICS = ("throughput_tok_s", "req_per_s", "p95_latency_ms")
CONDITIONS = {"varied": ["--output-range-ratio", "0.5"], "waves": []}


def _locust(url: str, prefix: Path, seconds: float, extra: list[str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "locust", "-f", "locustfiles/chat.py", "--headless", "-u", str(USERS)]
    cmd += ["-r", str(USERS), "-t", f"{int(seconds)}s", "--host", url, "--csv", str(prefix), "--only-summary"]
    cmd += ["--max-new-tokens", "32", "--loglevel", "WARNING", "--stop-timeout", "5", *extra]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _window(cell: CellData, start_s: float, length_s: float) -> dict[str, Any]:
    """The cell reduced over [t0 + start_s, t0 + start_s + length_s], as a grid cell of that window."""
    meta = {"warmup_s": start_s, "duration_s": start_s + length_s, "users": USERS, "spawn_rate": USERS}
    row = cell_row(CellData(cell.name, meta, cell.requests, cell.tokens, cell.client))
    row["adequacy"] = "; ".join(reasons(row)) or "ok"
    return row


def _condition(name: str, opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    long_s, slice_s, warmup_s = opts.long_s, opts.slice_s, opts.warmup_s
    prefix = work / name
    with running_simulator(["--profile", "rtx2000-ada-16gb-bf16"]) as sim:
        proc = _locust(sim.url, prefix, warmup_s + 2 * long_s, CONDITIONS[name])
        proc.wait(timeout=warmup_s + 2 * long_s + 120)
    (cell,) = load_cells([prefix])
    truth = _window(cell, warmup_s, long_s)
    n_slices = int(long_s // slice_s)
    rows = [_window(cell, warmup_s + long_s + i * slice_s, slice_s) for i in range(n_slices)]
    out: dict[str, Any] = {"condition": name, "truth": {m: truth[m] for m in METRICS}, "slices": n_slices}
    for metric in METRICS:
        low = np.array([r[f"{metric}_ci95_low"] for r in rows], dtype=float)
        high = np.array([r[f"{metric}_ci95_high"] for r in rows], dtype=float)
        has = ~np.isnan(low)
        covered = has & (low <= truth[metric]) & (truth[metric] <= high)
        half = (high - low) / 2.0 / truth[metric] * 100.0
        out[metric] = {
            "with_ci": int(has.sum()),
            "covered": int(covered.sum()),
            "coverage": float(covered.sum() / has.sum()) if has.any() else None,
            "median_half_width_pct": float(np.nanmedian(half)) if has.any() else None,
        }
    out["adequate_slices"] = sum(r["adequacy"] == "ok" for r in rows)
    out["wave_flagged_slices"] = sum("closed-loop waves" in r["adequacy"] for r in rows)
    out["median_batches"] = float(np.median([r["ci_batches"] for r in rows]))
    out["p50_latency_ms"] = truth["p50_latency_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-s", type=float, default=600.0, help="length of the truth half and the sliced half")
    parser.add_argument("--slice-s", type=float, default=30.0, help="length of each short window")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="excluded from both halves")
    parser.add_argument("--json", type=Path, help="write the result here")
    opts = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ci-coverage-") as tmp:
        results = [_condition(name, opts, Path(tmp)) for name in CONDITIONS]
    report = {
        "users": USERS,
        "workload": "chat, max_new_tokens 32, rtx2000-ada-16gb-bf16 simulator",
        "long_s": opts.long_s,
        "slice_s": opts.slice_s,
        "warmup_s": opts.warmup_s,
        "conditions": results,
        "wall_s": round(time.time() - started, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(report, indent=2)
    if opts.json:
        opts.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
