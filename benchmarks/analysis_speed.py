"""Analysis speed on a large synthetic run: 1M request records (plus token traces) → capacity table and report.

Writes a run in the grid runner's layout to a temp dir (8 cells: 2 targets × 2 workloads × 2 concurrency
levels, split evenly), then times `python -m analysis capacity RUN -o FILE` and `python -m analysis report
RUN -o DIR` as fresh processes (interpreter start and imports included). Prints one JSON object.

    .venv/bin/python benchmarks/analysis_speed.py [--records 1000000] [--tokens-per-request 16] [--no-traces]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("RTX2000-16GB-BF16", "RTX2000-16GB-QUANT")
CELLS = [(t, w, c) for t in TARGETS for w in ("chat", "batch") for c in (16, 32)]
DURATION_S = 600.0
WARMUP_S = 20.0


def _joined(values: np.ndarray) -> pa.Array:
    """Rows of a 2-D float array → space-separated strings, vectorised in Arrow."""
    n, k = values.shape
    text = pc.cast(pa.array(np.round(values, 3).ravel()), pa.string())
    lists = pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), text)
    return pc.binary_join(lists, " ")


def write_cell(
    cell_dir: Path, label: str, workload: str, users: int, n: int, tokens: int, seed: int, traces: bool = True
) -> None:
    rng = np.random.default_rng(seed)
    cell_dir.mkdir(parents=True)
    t0 = 1_700_000_000.0
    start = np.sort(t0 + rng.uniform(0, DURATION_S - 5, n))
    ttft = rng.gamma(4.0, 40.0, n)
    itl = rng.gamma(8.0, 2.5, (n, tokens - 1))
    arrivals = np.concatenate([ttft[:, None], ttft[:, None] + np.cumsum(itl, axis=1)], axis=1)
    e2e = arrivals[:, -1]
    ids = pc.binary_join_element_wise(
        pa.array(np.full(n, f"{label}-{workload}-{users}-")), pc.cast(pa.array(np.arange(n)), pa.string()), ""
    )
    requests = pa.table(
        {
            "request_id": ids,
            "target_label": pa.array(np.full(n, label)),
            "workload": pa.array(np.full(n, workload)),
            "api": pa.array(np.full(n, "completions")),
            "max_new_tokens": np.full(n, tokens),
            "start_wall_s": np.round(start, 6),
            "t_send_s": np.round(start - t0, 6),
            "ttft_ms": np.round(ttft, 3),
            "e2e_ms": np.round(e2e, 3),
            "tpot_ms": np.round((e2e - ttft) / (tokens - 1), 3),
            "itl_mean_ms": np.round(itl.mean(axis=1), 3),
            "itl_p99_ms": np.round(np.percentile(itl, 99, axis=1), 3),
            "prompt_tokens": rng.integers(200, 800, n),
            "output_tokens": np.full(n, tokens),
            "tokens_source": pa.array(np.full(n, "usage")),
            "finish_reason": pa.array(np.full(n, "length")),
            "http_status": np.full(n, 200),
            "success": (rng.random(n) > 0.001).astype(np.int64),
            "error": pa.array(np.full(n, "")),
            "user_id": rng.integers(0, users, n),
            "worker_id": pa.array(np.full(n, "bench-1")),
        }
    )
    options = pacsv.WriteOptions(quoting_style="needed")
    pacsv.write_csv(requests, cell_dir / "locust_requests_bench-1.csv", options)
    if traces:
        table = pa.table({"request_id": ids, "arrivals_ms": _joined(arrivals), "counts": pa.array(np.full(n, ""))})
        pacsv.write_csv(table, cell_dir / "locust_tokens_bench-1.csv", options)
    seconds = np.arange(int(DURATION_S))
    client = pa.table(
        {
            "wall_s": t0 + seconds,
            "cpu_pct": rng.uniform(20, 60, seconds.size),
            "dispatch_lag_p99_ms": rng.uniform(0.1, 2, seconds.size),
            "dispatch_lag_max_ms": rng.uniform(2, 5, seconds.size),
            "active_users": np.full(seconds.size, users),
        }
    )
    pacsv.write_csv(client, cell_dir / "locust_client_bench-1.csv", options)
    meta = {
        "scenario": "bench_analysis",
        "target_label": label,
        "gpu": "rtx2000-ada-16gb",
        "workload": workload,
        "users": users,
        "max_new_tokens": tokens,
        "repeat": 0,
        "duration_s": DURATION_S,
        "warmup_s": WARMUP_S,
        "csv_prefix": "locust",
        "status": "completed",
        "server_token_delta": None,
    }
    (cell_dir / "metadata.json").write_text(json.dumps(meta))
    (cell_dir / "COMPLETE").write_text("done\n")


def build(run: Path, records: int, tokens: int, traces: bool = True) -> None:
    per_cell = records // len(CELLS)
    for i, (label, workload, users) in enumerate(CELLS):
        cell_dir = run / label / workload / f"c{users}_m{tokens}"
        write_cell(cell_dir, label, workload, users, per_cell, tokens, seed=i, traces=traces)


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--tokens-per-request", type=int, default=16)
    parser.add_argument("--no-traces", action="store_true", help="request logs only (no token-arrival traces)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the capacity command (best is reported)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="analysis-speed-"))
    try:
        run = tmp / "bench_analysis-20250101T000000Z"
        t = time.perf_counter()
        build(run, args.records, args.tokens_per_request, traces=not args.no_traces)
        build_s = time.perf_counter() - t
        py = sys.executable
        load_before = os.getloadavg()[0]
        capacity = [
            timed([py, "-m", "analysis", "capacity", str(run), "-o", str(tmp / "cap.csv")]) for _ in range(args.repeats)
        ]
        report = timed([py, "-m", "analysis", "report", str(run), "-o", str(tmp / "report")])
        size = sum(p.stat().st_size for p in run.rglob("*.csv"))
        result = {
            "records": args.records,
            "cells": len(CELLS),
            "tokens_per_request": args.tokens_per_request,
            "token_traces": not args.no_traces,
            "input_mb": round(size / 1e6, 1),
            "generate_s": round(build_s, 2),
            "capacity_cli_wall_s": [round(w, 3) for w, _ in capacity],
            "capacity_cli_cpu_s": [round(c, 3) for _, c in capacity],
            "capacity_cli_best_wall_s": round(min(w for w, _ in capacity), 3),
            "report_cli_wall_s": round(report[0], 3),
            "report_cli_cpu_s": round(report[1], 3),
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "limit_s": 3.0,
            "cpu_count": os.cpu_count(),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
