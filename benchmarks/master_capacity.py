"""Master capacity: what taking the workers' request records costs a distributed run's master.

A headless master and N local workers (`locust --worker`, separately started processes, explicit free
ports) run locustfiles/batch.py against the simulator in fixed-timing mode, at each stream count of a
ladder. Over a steady window: the records that reached the master (rows of the request files it writes),
the master's CPU time (psutil), hence its CPU µs per record and CPU %; from the master's
PREFIX_workers.json, the compressed bytes per record and the time spent inside the batch handler per
record. The largest stream count one master handles is where its CPU would reach 90 % of a core:
measured directly up the ladder, and extrapolated from its cost per record (a small machine's workers
cannot make records fast enough to load it).

    .venv/bin/python benchmarks/master_capacity.py [--workers 2] [--streams 8,32] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simulator.launch import start_simulator  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from locust_cluster import free_port  # noqa: E402

MASTER_CPU_LIMIT_PCT = 90.0
SECTION1_REQUEST_S = 0.2 + 200 * 0.02  # BENCHMARKS.md §1's pacing: TTFT 200 ms + 200 tokens at 20 ms


def _cpu_s(ps: psutil.Process) -> float:
    t = ps.cpu_times()
    return t.user + t.system


def _rows(prefix: Path) -> int:
    """Request rows the master has written so far (its files flush about once a second)."""
    total = 0
    for path in prefix.parent.glob(f"{prefix.name}_requests_*.csv"):
        with path.open("rb") as fh:
            total += max(0, sum(1 for _ in fh) - 1)
    return total


def _token_events_per_record(prefix: Path) -> float | None:
    """Mean token events (arrival stamps) per record in the master's token traces: what a record's size
    grows with."""
    events = records = 0
    for path in prefix.parent.glob(f"{prefix.name}_tokens_*.csv"):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                events += len((row.get("arrivals_ms") or "").split())
                records += 1
    return round(events / records, 1) if records else None


def _wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def measure(url: str, streams: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One master + args.workers workers at `streams` users; figures over the steady window."""
    prefix = work / f"s{streams}"
    port = free_port()
    base = [sys.executable, "-m", "locust", "-f", str(REPO / "locustfiles" / "batch.py"), "--loglevel", "WARNING"]
    run_s = args.settle_s + args.window_s + 5
    master_cmd = [
        *base, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--expect-workers", str(args.workers), "--headless", "-u", str(streams), "-r", str(streams),
        "-t", f"{run_s:g}s", "--stop-timeout", "10", "--host", url, "--csv", str(prefix), "--only-summary",
        "--max-new-tokens", str(args.tokens), "--prompt-tokens", "64",
    ]  # fmt: skip
    worker_cmd = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    log = (work / f"s{streams}.log").open("wb")
    procs = [subprocess.Popen(master_cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)]
    procs += [
        subprocess.Popen(worker_cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(args.workers)
    ]
    try:
        master, workers = psutil.Process(procs[0].pid), [psutil.Process(p.pid) for p in procs[1:]]
        _wait_for(lambda: _rows(prefix) > 0, 120, "the master's first request records")
        time.sleep(args.settle_s)
        load = [round(x, 2) for x in os.getloadavg()]
        rows0, cpu0, wcpu0, t0 = _rows(prefix), _cpu_s(master), sum(map(_cpu_s, workers)), time.monotonic()
        time.sleep(args.window_s)
        rows1, cpu1, wcpu1, t1 = _rows(prefix), _cpu_s(master), sum(map(_cpu_s, workers)), time.monotonic()
        rc = procs[0].wait(timeout=run_s + 120)
        for p in procs[1:]:
            p.wait(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        log.close()
    delivery = json.loads(Path(f"{prefix}_workers.json").read_text())
    records, window_s = rows1 - rows0, t1 - t0
    all_records = max(1, int(delivery["records"]))
    wire_bytes = sum(int(w["compressed_bytes"]) for w in delivery["workers"])
    master_cpu_s = cpu1 - cpu0
    return {
        "streams": streams,
        "master_exit_code": rc,
        "window_s": round(window_s, 3),
        "records_in_window": records,
        "records_per_s": round(records / window_s, 1),
        "master_cpu_pct": round(master_cpu_s / window_s * 100, 1),
        "master_cpu_us_per_record": round(master_cpu_s / records * 1e6, 1) if records else None,
        "worker_cpu_pct_total": round((wcpu1 - wcpu0) / window_s * 100, 1),
        "batch_handler_us_per_record": round(float(delivery["master_busy_s"]) / all_records * 1e6, 1),
        "compressed_bytes_per_record": round(wire_bytes / all_records, 1),
        "token_events_per_record": _token_events_per_record(prefix),
        "records_total": int(delivery["records"]),
        "lost_records": int(delivery["lost_records"]),
        "gap_records": int(delivery["gap_records"]),
        "load_average_1m_start": load[0],
    }


def summarize(steps: list[dict[str, Any]], request_s: float) -> dict[str, Any]:
    """The largest measured stream count within the master CPU limit, and where the limit falls.

    The master's CPU is a fixed part (heartbeats, stats, CSV writers) plus a cost per record: the marginal
    cost is the slope of CPU % against records/s between the smallest and largest step. The limit is
    extrapolated at the larger of that slope and the batch handler's own time per record (timed inside the
    master, so finer than CPU-time ticks); with neither, at the whole CPU per record of the largest step."""
    ok = [s["streams"] for s in steps if s["master_cpu_pct"] < MASTER_CPU_LIMIT_PCT and s["master_exit_code"] == 0]
    low, top = min(steps, key=lambda s: s["records_per_s"]), max(steps, key=lambda s: s["records_per_s"])
    marginal_us, fixed_pct = None, 0.0
    if top["records_per_s"] > low["records_per_s"] and top["master_cpu_pct"] > low["master_cpu_pct"]:
        marginal_us = (
            (top["master_cpu_pct"] - low["master_cpu_pct"]) * 1e4 / (top["records_per_s"] - low["records_per_s"])
        )
        fixed_pct = max(0.0, low["master_cpu_pct"] - low["records_per_s"] * marginal_us / 1e4)
    us = max((x for x in (marginal_us, top["batch_handler_us_per_record"]) if x), default=None)
    us = us or top["master_cpu_us_per_record"]
    at_limit = (MASTER_CPU_LIMIT_PCT - fixed_pct) * 1e4 / us if us else None
    return {
        "largest_measured_streams_within_limit": max(ok) if ok else None,
        "marginal_master_cpu_us_per_record": round(marginal_us, 1) if marginal_us else None,
        "fixed_master_cpu_pct": round(fixed_pct, 2),
        "us_per_record_at_limit": round(us, 1) if us else None,
        "records_per_s_at_limit": round(at_limit) if at_limit else None,
        "request_s_this_pacing": round(request_s, 3),
        "streams_at_limit_this_pacing": round(at_limit * request_s) if at_limit else None,
        "streams_at_limit_section1_pacing": round(at_limit * SECTION1_REQUEST_S) if at_limit else None,
    }


def render_section(res: dict[str, Any]) -> list[str]:
    """BENCHMARKS.md's master-capacity section from this benchmark's JSON."""
    s, summary = res["setup"], res["summary"]
    lines = [
        "## 11. Distributed runs: the master's cost per record",
        "",
        f"`benchmarks/master_capacity.py`: one headless master and {s['workers']} separately started local workers "
        f"(locustfiles/batch.py), records shipped to the master; the simulator in fixed-timing mode (TTFT "
        f"{s['ttft_ms']:g} ms, ITL {s['itl_ms']:g} ms, {s['tokens']} tokens per request, so each record carries a "
        f"{s['tokens']}-arrival token trace as at §1). Master CPU from psutil over a {s['window_s']:g} s window after "
        f"{s['settle_s']:g} s of settling; records = rows the master wrote in the window; bytes and batch-handler time "
        "per record from the master's `PREFIX_workers.json` (whole run). Nothing was pinned; the machine is shared.",
        "",
        "| streams | records/s | master CPU % | master CPU µs/record | batch handler µs/record "
        "| compressed bytes/record | token events/record | workers' CPU % (sum) | lost | load avg 1m |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["steps"]:
        lines.append(
            f"| {r['streams']} | {r['records_per_s']:,.1f} | {r['master_cpu_pct']:.1f} "
            f"| {r['master_cpu_us_per_record']} | {r['batch_handler_us_per_record']} "
            f"| {r['compressed_bytes_per_record']:,.0f} | {r['token_events_per_record']} "
            f"| {r['worker_cpu_pct_total']:.1f} | {r['lost_records']} | {r['load_average_1m_start']} |"
        )
    marginal = summary["marginal_master_cpu_us_per_record"]
    cost = (
        f"{summary['us_per_record_at_limit']} µs per record (the larger of the marginal master CPU per record, "
        f"{marginal} µs — the slope between the steps, fixed part {summary['fixed_master_cpu_pct']} % of a core — "
        "and the batch handler's time per record at the largest step)"
        if marginal
        else f"{summary['us_per_record_at_limit']} µs per record (no usable slope between the steps)"
    )
    lines += [
        "",
        f"Largest measured stream count with the master under {MASTER_CPU_LIMIT_PCT:g} % of a core: "
        f"{summary['largest_measured_streams_within_limit']} of {max(r['streams'] for r in res['steps'])} "
        f"measured. At {cost}, the master reaches {MASTER_CPU_LIMIT_PCT:g} % at about "
        f"{_n(summary['records_per_s_at_limit'])} records/s: {_n(summary['streams_at_limit_this_pacing'])} streams "
        f"at this benchmark's pacing ({summary['request_s_this_pacing']:g} s per request), or "
        f"{_n(summary['streams_at_limit_section1_pacing'])} streams at §1's (4.2 s per request) if its records cost "
        "the same. A record's size and cost grow with its token events (one arrival stamp each, the column "
        "above); §1's records carry one per token, 200.",
        "",
    ]
    return lines


def _n(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2, help="local worker processes")
    p.add_argument("--streams", default="8,32", help="comma list of total stream counts (users)")
    p.add_argument("--tokens", type=int, default=200, help="output tokens per request")
    p.add_argument("--ttft-ms", type=float, default=10.0, help="simulator's fixed time to first token")
    p.add_argument("--itl-ms", type=float, default=1.0, help="simulator's fixed inter-token latency")
    p.add_argument("--settle-s", type=float, default=3.0, help="after the first records, before the window")
    p.add_argument("--window-s", type=float, default=10.0, help="measurement window")
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = p.parse_args()
    sim = start_simulator(["--fixed-ttft-ms", f"{args.ttft_ms:g}", "--fixed-itl-ms", f"{args.itl_ms:g}"])
    try:
        with tempfile.TemporaryDirectory(prefix="master-capacity-") as tmp:
            steps = [measure(sim.url, int(n), args, Path(tmp)) for n in str(args.streams).split(",")]
    finally:
        sim.stop(timeout_s=30)
    setup = {k: getattr(args, k) for k in ("workers", "tokens", "ttft_ms", "itl_ms", "settle_s", "window_s")}
    request_s = (args.ttft_ms + args.tokens * args.itl_ms) / 1e3
    result = {"setup": setup, "steps": steps, "summary": summarize(steps, request_s)}
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
