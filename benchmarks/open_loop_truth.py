"""Open-loop timing truth: does the load generator send at the rate and on the schedule it claims?

Against the simulator in fixed-timing mode (20 ms to the first token, 10 ms per token, 16 tokens): Poisson
at 50 req/s on one process and with --processes 2, constant and gamma (burstiness 0.5) arrivals, and a
trace replay. Per run: achieved send rate vs the offered one over the run, KS p-values of the actual send
gaps against the arrival process's distribution, the CV of constant gaps, scheduling lag (send −
scheduled) percentiles, drops, and for the trace |send − timestamp|.

    .venv/bin/python benchmarks/open_loop_truth.py --duration-s 60 --json reports/bench/open_loop.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.kstest import exponential_cdf, gamma_cdf, ks_test  # noqa: E402
from simulator.launch import start_simulator  # noqa: E402

FIXED = ["--fixed-ttft-ms", "20", "--fixed-itl-ms", "10"]
RATE = 50.0
POOL = 64


def run_locust(url: str, prefix: Path, duration_s: int, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "locustfiles" / "chat.py"), "--headless",
           "-u", str(POOL), "-r", str(POOL), "-t", f"{duration_s}s", "--host", url, "--csv", str(prefix),
           "--only-summary", "--max-new-tokens", "16", "--stop-timeout", "10", *args]  # fmt: skip
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True, timeout=duration_s + 120)


def load(prefix: Path) -> tuple[pd.DataFrame, list[dict[str, Any]], int]:
    reqs = pd.concat([pd.read_csv(p) for p in prefix.parent.glob(f"{prefix.name}_requests_*.csv")])
    summaries = [json.loads(p.read_text()) for p in prefix.parent.glob(f"{prefix.name}_arrivals_*.json")]
    return reqs.sort_values("start_wall_s"), summaries, sum(int(s["dropped"]) for s in summaries)


def pct(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def measure(reqs: pd.DataFrame, summaries: list[dict[str, Any]], dropped: int, cdf: Any) -> dict[str, Any]:
    # The window: the run's seconds from the earliest process's schedule start, less the last second (stop).
    t0 = min(float(s["started_wall_s"]) for s in summaries)
    window_s = float(reqs.start_wall_s.max()) - t0
    sent = reqs.start_wall_s.to_numpy()
    gaps = np.diff(sent)
    lag = reqs.schedule_lag_ms.to_numpy()[1:]  # the first request also asked the server for its model
    out: dict[str, Any] = {
        "requests": len(reqs),
        "dropped": dropped,
        "processes": len(summaries),
        "window_s": round(window_s, 3),
        "achieved_rate_req_s": round(float(((sent >= t0) & (sent <= t0 + window_s)).sum()) / window_s, 3),
        "scheduled_rate_req_s": round((sum(int(s["scheduled"]) for s in summaries)) / window_s, 3),
        "gap_cv": round(float(gaps.std() / gaps.mean()), 4),
        "schedule_lag_p50_ms": pct(lag, 50),
        "schedule_lag_p99_ms": pct(lag, 99),
        "schedule_lag_max_ms": round(float(lag.max()), 3),
    }
    if cdf is not None:
        out["ks_d"], out["ks_p"] = (round(float(v), 4) for v in ks_test(list(gaps), cdf))
        scheduled = np.diff(np.sort(reqs.scheduled_wall_s.to_numpy()))
        out["ks_p_scheduled"] = round(ks_test(list(scheduled), cdf)[1], 4)
    return out


def trace_run(url: str, work: Path, duration_s: int) -> dict[str, Any]:
    rng = random.Random(5)
    t, rows = 0.0, []
    while t < duration_s * 1000 * 0.8:
        t += rng.expovariate(20.0) * 1000  # about 20 req/s, Poisson-spaced timestamps
        rows.append({"timestamp": round(t, 3), "input_length": rng.randint(32, 256), "output_length": 16})
    trace = work / "trace.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prefix = work / "trace"
    run_locust(url, prefix, duration_s, ["--trace", str(trace)])
    reqs, summaries, dropped = load(prefix)
    (summary,) = summaries
    stamps = np.array([r["timestamp"] for r in rows]) - rows[0]["timestamp"]
    sent_ms = np.sort((reqs.start_wall_s.to_numpy() - summary["started_wall_s"]) * 1000)
    error = np.abs(sent_ms[1:] - stamps[1 : len(sent_ms)])
    return {
        "rows": len(rows),
        "requests": len(reqs),
        "dropped": dropped,
        "send_error_p50_ms": pct(error, 50),
        "send_error_p99_ms": pct(error, 99),
        "send_error_max_ms": round(float(error.max()), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration-s", type=int, default=60)
    p.add_argument("--json", type=Path, required=True)
    opts = p.parse_args()
    d = opts.duration_s
    mean_gap = 1.0 / RATE
    runs = {
        "poisson_1p": (["--arrival-rate", f"{RATE:g}"], exponential_cdf(RATE)),
        "poisson_2p": (["--arrival-rate", f"{RATE:g}", "--processes", "2"], exponential_cdf(RATE)),
        "constant_1p": (["--arrival-rate", f"{RATE:g}", "--arrival", "constant"], None),
        "gamma_b0.5_1p": (
            ["--arrival-rate", f"{RATE:g}", "--arrival", "gamma", "--burstiness", "0.5"],
            gamma_cdf(0.5, mean_gap / 0.5),
        ),
    }
    sim = start_simulator(FIXED)
    results: dict[str, Any] = {"offered_rate_req_s": RATE, "duration_s": d, "pool": POOL}
    results["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for name, (args, cdf) in runs.items():
                run_locust(sim.url, work / name, d, [*args, "--arrival-seed", "11"])
                results[name] = measure(*load(work / name), cdf)
                print(name, results[name], flush=True)
            results["trace"] = trace_run(sim.url, work, max(10, d // 2))
            print("trace", results["trace"], flush=True)
    finally:
        sim.stop()
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()


def render_section(res: dict[str, Any]) -> list[str]:
    """§9 of BENCHMARKS.md from this benchmark's JSON."""
    rate, d = res["offered_rate_req_s"], res["duration_s"]
    sd_pct = 100.0 / (rate * d) ** 0.5
    lines = [
        "## 9. Open-loop arrivals: rate accuracy, distribution, scheduling lag",
        "",
        f"`benchmarks/open_loop_truth.py`: the chat user at {rate:g} req/s for {d} s per run against the simulator",
        "in fixed-timing mode (20 ms + 10 ms/token, 16 tokens), a pool of 64 users, seed 11. *Achieved* is requests",
        "sent per second from the schedule's start to the last send; *scheduled* is the arrivals the schedule",
        f"produced over the same span (a Poisson count itself varies by ±{sd_pct:.1f} % (1 sd) at this rate and",
        "length). KS: one-sample Kolmogorov–Smirnov p-value of the actual send gaps (all processes merged) against",
        "the arrival process's gap distribution (exponential, or gamma with shape 0.5), and of the scheduled gaps.",
        f"Load average at start: {res.get('load_average_start', '–')}.",
        "",
        "| run | requests | dropped | achieved req/s | vs offered | gap CV | KS p (sent) | KS p (scheduled) | lag p50 ms | lag p99 ms | lag max ms |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("poisson_1p", "poisson_2p", "constant_1p", "gamma_b0.5_1p"):
        r = res.get(name)
        if not r:
            continue
        dev = (r["achieved_rate_req_s"] / rate - 1) * 100
        lines.append(
            f"| {name} | {r['requests']} | {r['dropped']} | {r['achieved_rate_req_s']:.2f} | {dev:+.1f} % | "
            f"{r['gap_cv']:.3f} | {r.get('ks_p', '–')} | {r.get('ks_p_scheduled', '–')} | "
            f"{r['schedule_lag_p50_ms']:.2f} | {r['schedule_lag_p99_ms']:.2f} | {r['schedule_lag_max_ms']:.1f} |"
        )
    t = res.get("trace")
    if t:
        lines += [
            "",
            f"Trace replay ({t['rows']} rows, Poisson-spaced timestamps at ~20 req/s): {t['requests']} sent, "
            f"{t['dropped']} dropped; |send − timestamp| p50 {t['send_error_p50_ms']:.2f} ms, p99 "
            f"{t['send_error_p99_ms']:.2f} ms, max {t['send_error_max_ms']:.1f} ms.",
        ]
    return [*lines, ""]
