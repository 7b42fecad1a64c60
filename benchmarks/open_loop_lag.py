"""Where does open-loop scheduling lag (send − scheduled) come from? Attributes every late send.

Runs the chat user at 50 req/s (Poisson and constant) against the simulator in fixed-timing mode, as
`open_loop_truth.py` does, with `lag_probe.py` loaded beside it. Each send later than --late-ms is split
into: the dispatcher's timer firing after the arrival was due (the loop or the OS was busy elsewhere:
the greenlets that ran in that span, garbage collections, the OS run delay), the busy-wait being
preempted, and hand-over to send (the user preparing its request, CPU vs wall time).

    .venv/bin/python benchmarks/open_loop_lag.py --duration-s 20 --json reports/bench/open_loop_lag.json
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simulator.launch import start_simulator  # noqa: E402

LATE_MS = 1.0  # the scheduling-lag goal: a send later than this is attributed
WARMUP_S = 3.0  # late sends in the first seconds (the pool's first requests) are counted apart


def client_cpu_prefix(pin: bool) -> list[str]:
    """`taskset -c 0` when pinning (the simulator then runs on CPU 1, as in BENCHMARKS.md §1), else nothing."""
    return ["taskset", "-c", "0"] if pin and shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


def run(url: str, work: Path, name: str, duration_s: int, args: list[str], pin: bool = False) -> list[dict[str, Any]]:
    probe = work / name
    env = {**os.environ, "LAG_PROBE_OUT": str(probe)}
    cmd = [*client_cpu_prefix(pin), sys.executable, "-m", "locust",
           "-f", f"{REPO}/locustfiles/chat.py,{REPO}/benchmarks/lag_probe.py", "--headless",
           "-u", "64", "-r", "64", "-t", f"{duration_s}s", "--host", url,
           "--csv", str(work / name), "--only-summary", "--max-new-tokens", "16", "--stop-timeout", "10",
           "--arrival-rate", "50", "--arrival-seed", "11", *args]  # fmt: skip
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True, timeout=duration_s + 120, env=env)
    return [json.loads(p.read_text()) for p in work.glob(f"{name}.*.json")]


def _spans(sw: list[Any], sw_t: list[float], gcs: list[Any], lo: float, hi: float) -> dict[str, float]:
    """Milliseconds each greenlet ran (and collections took) within [lo, hi]."""
    i = max(0, bisect.bisect_right(sw_t, lo) - 1)
    spans: collections.Counter[str] = collections.Counter()
    while i < len(sw) and sw[i][0] < hi:
        end = min(hi, sw[i + 1][0] if i + 1 < len(sw) else hi)
        spans[sw[i][1]] += max(0.0, end - max(lo, sw[i][0])) * 1000
        i += 1
    gc_ms = sum(max(0.0, min(hi, e) - max(lo, s)) * 1000 for s, e, _g in gcs if e > lo and s < hi)
    if gc_ms > 0:
        spans["gc"] = gc_ms
    return dict(spans)


def cause(a: dict[str, Any], spans: dict[str, float], fire_late: float, handover: float) -> str:
    """The main reason one send was late."""
    if spans.get("gc", 0.0) >= 0.5 * max(fire_late, handover):
        return "garbage collection"
    if fire_late >= handover:
        os_ms = a["armed_delay_ns"] / 1e6
        if os_ms >= 0.5 * fire_late:
            return "timer late: process not running (OS run delay)"
        busy = {k: v for k, v in spans.items() if k != "hub"}
        if busy and max(busy.values()) >= 0.5 * fire_late:
            return f"timer late: loop held by {max(busy, key=busy.__getitem__)}"
        return "timer late: loop's own wake-up (epoll ms rounding / callbacks)"
    os_ms = (a["delay_send_ns"] - a["delay_fire_ns"]) / 1e6
    if os_ms >= 0.5 * handover:
        return "hand-over: process not running (OS run delay)"
    cpu_ms = (a["cpu_send"] - a["cpu_dispatch"]) * 1000
    if cpu_ms >= 0.5 * handover:
        return "hand-over: CPU in the user before send"
    return "hand-over: user yielded before send"


def attribute(probe: dict[str, Any], late_ms: float, warmup_s: float) -> dict[str, Any]:
    sw = probe["switches"]
    sw_t = [t for t, _ in sw]
    gcs = probe["collections"]
    arr = [a for a in probe["arrivals"] if a["sent"] == a["sent"]][1:]  # the first also asked for the model
    t0 = arr[0]["due"]
    lag = np.array([(a["sent"] - a["due"]) * 1000 for a in arr])
    fire_late = np.array([max(0.0, a["fired"] - a["due"]) * 1000 for a in arr])
    handover = np.array([(a["sent"] - max(a["dispatched"], a["due"])) * 1000 for a in arr])
    steady = np.array([a["due"] - t0 >= warmup_s for a in arr])
    causes: collections.Counter[str] = collections.Counter()
    examples: list[dict[str, Any]] = []
    for a, lg, fl, ho, st in zip(arr, lag, fire_late, handover, steady, strict=True):
        if lg <= late_ms or not st:
            continue
        lo, hi = (a["due"] - 0.001, a["fired"]) if fl >= ho else (a["dispatched"], a["sent"])
        spans = _spans(sw, sw_t, gcs, lo, hi)
        why = cause(a, spans, fl, ho)
        causes[why] += 1
        if len(examples) < 40:
            examples.append({
                "t_s": round(a["due"] - t0, 3), "lag_ms": round(float(lg), 3), "fire_late_ms": round(float(fl), 3),
                "handover_ms": round(float(ho), 3), "cause": why,
                "os_wait_ms": round(a["armed_delay_ns"] / 1e6, 3),
                "os_handover_ms": round((a["delay_send_ns"] - a["delay_fire_ns"]) / 1e6, 3),
                "spans_ms": {k: round(v, 3) for k, v in sorted(spans.items(), key=lambda kv: -kv[1])[:4]},
            })  # fmt: skip
    gc_ms = [(e - s) * 1000 for s, e, _g in gcs]
    ls = lag[steady]

    def q(v: np.ndarray, p: float) -> float:
        return round(float(np.percentile(v, p)), 3)

    return {
        "arrivals": len(arr),
        "lag_p50_ms": q(lag, 50), "lag_p99_ms": q(lag, 99), "lag_max_ms": round(float(lag.max()), 3),
        "steady_lag_p50_ms": q(ls, 50), "steady_lag_p99_ms": q(ls, 99), "steady_lag_max_ms": round(float(ls.max()), 3),
        "warmup_late": int(((lag > late_ms) & ~steady).sum()),
        "fire_late_p99_ms": q(fire_late, 99),
        "handover_p50_ms": q(handover, 50), "handover_p99_ms": q(handover, 99),
        "late_steady": int(((lag > late_ms) & steady).sum()),
        "causes": dict(causes.most_common()),
        "gc": {"count": len(gc_ms), "max_ms": round(max(gc_ms, default=0.0), 3),
               "over_0.5ms": sum(1 for g in gc_ms if g > 0.5)},
        "examples": examples,
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration-s", type=int, default=20)
    p.add_argument("--late-ms", type=float, default=LATE_MS)
    p.add_argument("--warmup-s", type=float, default=WARMUP_S, help="late sends before this are counted apart")
    p.add_argument("--runs", default="poisson,constant")
    p.add_argument("--itl-ms", type=float, default=10.0, help="the simulator's fixed inter-token time")
    p.add_argument("--json", type=Path)
    opts = p.parse_args()
    sim = start_simulator(["--fixed-ttft-ms", "20", "--fixed-itl-ms", f"{opts.itl_ms:g}"])
    out: dict[str, Any] = {"load_average_start": [round(x, 2) for x in os.getloadavg()], "itl_ms": opts.itl_ms}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in opts.runs.split(","):
                probes = run(sim.url, Path(tmp), name, opts.duration_s, ["--arrival", name])
                out[name] = [attribute(pr, opts.late_ms, opts.warmup_s) for pr in probes]
                for r in out[name]:
                    print(name, json.dumps({k: v for k, v in r.items() if k != "examples"}), flush=True)
                    for e in r["examples"][:12]:
                        print("   ", e)
    finally:
        sim.stop()
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
