"""Open-loop timing truth: does the load generator send at the rate and on the schedule it claims?

Against the simulator in fixed-timing mode (20 ms to the first token, 10 ms per token, 16 tokens): Poisson
at 50 req/s on one process and with --processes 2, constant and gamma (burstiness 0.5) arrivals, and a
trace replay. Per run: achieved send rate vs the offered one over the run, KS p-values of the actual send
gaps against the arrival process's distribution, the CV of constant gaps, scheduling lag (send −
scheduled) percentiles, drops, and for the trace |send − timestamp|. With --before DIR each run is made
with DIR's code too (another checkout), alternating, on the same simulator. Then two shorter probed runs
(`open_loop_lag.py`) say what made each late send late.

    .venv/bin/python benchmarks/open_loop_truth.py --duration-s 60 --json benchmarks/results/open_loop.json
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
sys.path.insert(0, str(REPO / "benchmarks"))

from locust_cluster import free_port  # type: ignore[import-not-found]  # noqa: E402
from open_loop_lag import client_cpu_prefix  # type: ignore[import-not-found]  # noqa: E402

from analysis.kstest import exponential_cdf, gamma_cdf, ks_test  # noqa: E402
from simulator.launch import start_simulator  # noqa: E402

FIXED = ["--fixed-ttft-ms", "20", "--fixed-itl-ms", "10"]
RATE = 50.0
RESOLUTION_S = 0.001  # the gap length below which sent gaps are not tested for shape
POOL = 64


PIN = False  # --pin: the client on CPU 0, the simulator on CPU 1


def run_locust(url: str, prefix: Path, duration_s: int, args: list[str], tree: Path = REPO) -> None:
    """The chat user from `tree`'s checkout (its loadgen is imported from the working directory)."""
    if "--processes" in args:
        port = str(free_port())  # not Locust's default 5557: another multi-process run's worker could join
        args = [*args, "--master-bind-port", port, "--master-port", port]
    cmd = [*client_cpu_prefix(PIN), sys.executable, "-m", "locust", "-f", str(tree / "locustfiles" / "chat.py"),
           "--headless",
           "-u", str(POOL), "-r", str(POOL), "-t", f"{duration_s}s", "--host", url, "--csv", str(prefix),
           "--only-summary", "--max-new-tokens", "16", "--stop-timeout", "10", *args]  # fmt: skip
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=duration_s + 120)
    if done.returncode != 0:
        raise SystemExit(f"{prefix.name}: locust exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")


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
        "load_average_1m": round(os.getloadavg()[0], 2),
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
        # Sends are serial, a hand-over (~0.1 ms) apart at best, so gaps far below a millisecond cannot keep
        # their scheduled length; above RESOLUTION_S the sent gaps are tested against the same distribution
        # conditioned on a gap of at least that (the shape the client can reproduce).
        above = gaps[gaps >= RESOLUTION_S]
        floor = cdf(RESOLUTION_S)
        out["ks_p_sent_above"] = round(ks_test(list(above), lambda x: (cdf(x) - floor) / (1.0 - floor))[1], 4)
        out["scheduled_below_share"] = round(float((scheduled < RESOLUTION_S).mean()), 4)
    return out


def trace_run(url: str, work: Path, duration_s: int, tree: Path = REPO) -> dict[str, Any]:
    rng = random.Random(5)
    t, rows = 0.0, []
    while t < duration_s * 1000 * 0.8:
        t += rng.expovariate(20.0) * 1000  # about 20 req/s, Poisson-spaced timestamps
        rows.append({"timestamp": round(t, 3), "input_length": rng.randint(32, 256), "output_length": 16})
    trace = work / "trace.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prefix = work / f"trace_{tree.name}"
    run_locust(url, prefix, duration_s, ["--trace", str(trace)], tree)
    reqs, summaries, dropped = load(prefix)
    (summary,) = summaries
    stamps = np.array([r["timestamp"] for r in rows]) - rows[0]["timestamp"]
    sent_ms = np.sort((reqs.start_wall_s.to_numpy() - summary["started_wall_s"]) * 1000)
    error = np.abs(sent_ms[1:] - stamps[1 : len(sent_ms)])
    return {
        "load_average_1m": round(os.getloadavg()[0], 2),
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
    p.add_argument("--before", type=Path, help="another checkout whose code is measured too, alternating")
    p.add_argument("--attribute-s", type=int, default=30, help="length of each probed run (0: none)")
    p.add_argument("--pin", action="store_true", help="client on CPU 0, simulator on CPU 1 (taskset), as in §1")
    opts = p.parse_args()
    if opts.before is not None and not (opts.before / "locustfiles" / "chat.py").is_file():
        p.error(f"--before: expected a checkout of this repository, no locustfiles/chat.py in {opts.before}")
    trees = {"before": opts.before.resolve(), "ours": REPO} if opts.before else {"ours": REPO}
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
    global PIN
    PIN = bool(opts.pin and client_cpu_prefix(True))
    sim = start_simulator(FIXED, cpu=1 if PIN else None)
    results: dict[str, Any] = {"offered_rate_req_s": RATE, "duration_s": d, "pool": POOL, "pinned": PIN}
    results["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    before: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for name, (args, cdf) in runs.items():
                for who, tree in trees.items():
                    run_locust(sim.url, work / f"{name}_{who}", d, [*args, "--arrival-seed", "11"], tree)
                    (before if who == "before" else results)[name] = measure(*load(work / f"{name}_{who}"), cdf)
                    print(who, name, results[name] if who == "ours" else before[name], flush=True)
            for who, tree in trees.items():
                (before if who == "before" else results)["trace"] = trace_run(sim.url, work, max(10, d // 2), tree)
            print("trace", results["trace"], flush=True)
            if opts.attribute_s > 0:
                results["attribution"] = attribution(sim.url, work, opts.attribute_s)
    finally:
        sim.stop()
    if before:
        results["before"] = before | {"tree": str(opts.before)}
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(results, indent=2) + "\n")


def attribution(url: str, work: Path, duration_s: int) -> dict[str, Any]:
    """Probed Poisson and constant runs of our code: why each send later than 1 ms was late."""
    from open_loop_lag import LATE_MS, WARMUP_S, attribute, run  # type: ignore[import-not-found]

    out: dict[str, Any] = {"duration_s": duration_s, "late_ms": LATE_MS, "warmup_s": WARMUP_S}
    for kind in ("poisson", "constant"):
        (probe,) = run(url, work, f"probed_{kind}", duration_s, ["--arrival", kind], pin=PIN)
        out[kind] = {k: v for k, v in attribute(probe, LATE_MS, WARMUP_S).items() if k != "examples"}
        out[kind]["load_average_1m"] = round(os.getloadavg()[0], 2)
        print("attribution", kind, out[kind], flush=True)
    return out


if __name__ == "__main__":
    main()


RUNS = ("poisson_1p", "poisson_2p", "constant_1p", "gamma_b0.5_1p")
LAG_P99_GOAL_MS, CV_GOAL, RATE_GOAL_PCT, TRACE_GOAL_MS, KS_ALPHA = 1.0, 0.05, 2.0, 5.0, 0.05


def _row(label: str, r: dict[str, Any], rate: float) -> str:
    dev = (r["achieved_rate_req_s"] / rate - 1) * 100
    return (
        f"| {label} | {r.get('load_average_1m', '–')} | {r['requests']} | {r['dropped']} | "
        f"{r['achieved_rate_req_s']:.2f} | {dev:+.1f} % | {r['gap_cv']:.3f} | {r.get('ks_p', '–')} | "
        f"{r.get('ks_p_sent_above', '–')} | {r.get('ks_p_scheduled', '–')} | "
        f"{r['schedule_lag_p50_ms']:.2f} | {r['schedule_lag_p99_ms']:.2f} | "
        f"{r['schedule_lag_max_ms']:.1f} |"
    )


def _trace_line(label: str, t: dict[str, Any]) -> str:
    return (
        f"{label} ({t['rows']} rows, Poisson-spaced timestamps at ~20 req/s, load {t.get('load_average_1m', '–')}): "
        f"{t['requests']} sent, {t['dropped']} dropped; |send − timestamp| p50 {t['send_error_p50_ms']:.2f} ms, "
        f"p99 {t['send_error_p99_ms']:.2f} ms, max {t['send_error_max_ms']:.1f} ms."
    )


def _goals(res: dict[str, Any]) -> list[str]:
    """Each measurement-truth goal, met or not, from our runs' figures."""
    rate = res["offered_rate_req_s"]
    runs = {n: res[n] for n in RUNS if n in res}
    p99 = [r["schedule_lag_p99_ms"] for r in runs.values()]
    devs = [abs(r["achieved_rate_req_s"] / rate - 1) * 100 for n, r in runs.items() if n.startswith("poisson")]
    cv = runs.get("constant_1p", {}).get("gap_cv")
    trace = res.get("trace", {})

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = [
        f"- Achieved rate within {RATE_GOAL_PCT:g} % of offered (Poisson, 1 and 2 processes): "
        f"{verdict(bool(devs) and max(devs) <= RATE_GOAL_PCT)} (worst {max(devs, default=float('nan')):.1f} %).",
        f"- Scheduling lag p99 ≤ {LAG_P99_GOAL_MS:g} ms: {verdict(bool(p99) and max(p99) <= LAG_P99_GOAL_MS)} "
        f"(p99 {min(p99, default=float('nan')):.2f}–{max(p99, default=float('nan')):.2f} ms across the runs).",
        f"- Constant-arrival gap CV < {CV_GOAL:g}: {verdict(cv is not None and cv < CV_GOAL)} (CV {cv}).",
    ]
    ks = {n: r for n, r in runs.items() if "ks_p" in r}
    if ks:
        sent_fail = [
            f"{n} (p {r['ks_p']}; gaps ≥ 1 ms p {r.get('ks_p_sent_above', '–')}, "
            f"{100 * r.get('scheduled_below_share', float('nan')):.1f} % of its scheduled gaps < 1 ms)"
            for n, r in ks.items()
            if r["ks_p"] < KS_ALPHA
        ]
        sched_fail = [n for n, r in ks.items() if r["ks_p_scheduled"] < KS_ALPHA]
        lines.append(
            f"- Gaps pass KS against their distribution (p ≥ {KS_ALPHA:g}): scheduled gaps "
            f"{verdict(not sched_fail)}{' (' + ', '.join(sched_fail) + ')' if sched_fail else ' in every run'}; "
            f"sent gaps {verdict(not sent_fail)}{' (' + ', '.join(sent_fail) + ')' if sent_fail else ' in every run'}."
        )
    if trace:
        lines.append(
            f"- Trace replay within {TRACE_GOAL_MS:g} ms of each timestamp: "
            f"{verdict(trace['send_error_max_ms'] <= TRACE_GOAL_MS)} (max {trace['send_error_max_ms']:.1f} ms)."
        )
    return lines


def _attribution(att: dict[str, Any]) -> list[str]:
    lines = [
        f"Why sends were late (`benchmarks/open_loop_lag.py`: our code with `benchmarks/lag_probe.py` loaded, "
        f"{att['duration_s']} s at 50 req/s per arrival process; a send more than {att['late_ms']:g} ms after its "
        f"scheduled time is attributed; the first {att['warmup_s']:g} s, the pool's first requests, apart):",
        "",
        "| arrivals | load | late / arrivals | alarm late p99 ms | hand-over p50 / p99 ms | GC max ms | causes |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("poisson", "constant"):
        a = att.get(kind)
        if not a:
            continue
        causes = "; ".join(f"{why}: {n}" for why, n in a["causes"].items()) or "–"
        lines.append(
            f"| {kind} | {a.get('load_average_1m', '–')} | {a['late_steady']} / {a['arrivals']} | "
            f"{a['fire_late_p99_ms']:.2f} | {a['handover_p50_ms']:.2f} / {a['handover_p99_ms']:.2f} | "
            f"{a['gc']['max_ms']:.2f} | {causes} |"
        )
    totals: dict[str, int] = {}
    for kind in ("poisson", "constant"):
        for why, n in att.get(kind, {}).get("causes", {}).items():
            totals[why] = totals.get(why, 0) + n
    late = sum(totals.values())
    if late:
        top = max(totals, key=totals.__getitem__)
        os_late = sum(n for why, n in totals.items() if "OS run delay" in why)
        lines += [
            "",
            f"Of {late} late sends, {os_late} ({100 * os_late / late:.0f} %) were the OS not running the process"
            f" when its send was due; the most frequent cause: {top} ({totals[top]}).",
        ]
    lines += [
        "",
        "*Alarm late*: the dispatcher's wake-up after the arrival was due. *Hand-over*: from handing the arrival",
        "to a user to that request's send stamp. A late send is put on its larger part (alarm or hand-over), then:",
        "*OS run delay*: the process's main thread was runnable but not running (`/proc/thread-self/schedstat`)",
        "for at least half that part (for the alarm, counted from when it was set, so it may include waits",
        "earlier in the gap); *loop held by*: a greenlet ran for at least half of it; *loop's own wake-up*:",
        "neither; *CPU in the user*: the user's own work before the send; *garbage collection*: a collection",
        "covered half of it.",
    ]
    return lines


def render_section(res: dict[str, Any]) -> list[str]:
    """§9 of BENCHMARKS.md from this benchmark's JSON."""
    rate, d = res["offered_rate_req_s"], res["duration_s"]
    sd_pct = 100.0 / (rate * d) ** 0.5
    before = res.get("before", {})
    lines = [
        "## 9. Open-loop arrivals: rate accuracy, distribution, scheduling lag",
        "",
        f"`benchmarks/open_loop_truth.py`: the chat user at {rate:g} req/s for {d} s per run against the simulator",
        "in fixed-timing mode (20 ms + 10 ms/token, 16 tokens), a pool of 64 users, seed 11. *Achieved* is requests",
        "sent per second from the schedule's start to the last send; *scheduled* is the arrivals the schedule",
        f"produced over the same span (a Poisson count itself varies by ±{sd_pct:.1f} % (1 sd) at this rate and",
        "length). KS: one-sample Kolmogorov–Smirnov p-value of the actual send gaps (all processes merged) against",
        "the arrival process's gap distribution (exponential, or gamma with shape 0.5), and of the scheduled gaps;",
        "*gaps ≥ 1 ms*: the sent gaps of at least 1 ms against that distribution conditioned on a gap of at least",
        "1 ms. One process sends one request at a time, a hand-over (~0.1 ms) apart at best, so gaps much shorter",
        "than a millisecond — frequent in gamma arrivals of shape 0.5 — cannot keep their scheduled length.",
        f"Load average at start: {res.get('load_average_start', '–')}; *load* is the 1-minute load average at",
        "the end of each run (the machine has 2 cores, shared with other work).",
        "Client on CPU 0 and simulator on CPU 1 (`taskset`, `--pin`), as in §1."
        if res.get("pinned")
        else "Not pinned: client and simulator share the machine's cores as the scheduler places them.",
    ]
    if before:
        lines += [
            "*before* rows: the previous code (`--before`, another checkout), run alternately with ours on the",
            "same simulator.",
        ]
    lines += [
        "",
        "| run | load | requests | dropped | achieved req/s | vs offered | gap CV | KS p (sent) | KS p (sent, gaps ≥ 1 ms) | KS p (scheduled) | lag p50 ms | lag p99 ms | lag max ms |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in RUNS:
        if name in before:
            lines.append(_row(f"{name}, before", before[name], rate))
        if name in res:
            lines.append(_row(name, res[name], rate))
    lines.append("")
    if "trace" in before:
        lines += [_trace_line("Trace replay, before", before["trace"]), ""]
    if "trace" in res:
        lines += [_trace_line("Trace replay", res["trace"]), ""]
    lines += ["Goals (our rows):", "", *_goals(res), ""]
    if "attribution" in res:
        lines += [*_attribution(res["attribution"]), ""]
    return lines
