"""`make bench`: the measurements of BENCHMARKS.md, raw JSON to benchmarks/results/, then BENCHMARKS.md.

1. Load-generator capacity at realistic pacing: the simulator in fixed-timing mode (one token per stream
   every 20 ms) pinned to CPU 1, each client pinned to CPU 0, for our Locust user (locustfiles/batch.py),
   `vllm bench serve` (benchmarks/vllm_peer.py, from .venv-vllm), GuideLLM and AIPerf (benchmarks/peers.py,
   from their venvs under .cache/peers) and a naive Locust user (benchmarks/naive_locustfile.py),
   alternating at each stream count. Events per client CPU-second come
   from the server's token counter over a steady window divided by the client's CPU time in it. Plus the
   firehose figure (simulator --firehose).
2. Timing truth: the same runs (TTFT 200 ms, ITL 20 ms): client delay (client arrival − `sim_emit_ns`)
   for first and later tokens, and |measured − configured| TTFT/ITL as each tool reports them.
3. Client cost: CPU-s per 1,000 output tokens, RSS per 1,000 users (slope between stream counts).
4. Analysis speed: benchmarks/analysis_speed.py.  5. Simulator capacity: benchmarks/sim_capacity.py.
6. CI coverage: benchmarks/ci_coverage.py (how often a short cell's 95% CI holds the long-run value).
7. Real vLLM with prefix caching on (its default): our batch user vs `vllm bench serve` at the same
   lengths, and the prefix-cache hit rate each gets (benchmarks/vllm_prefix_cache.py; needs .venv-vllm).
8. What-if projections: RTX cells projected onto A100/H100 vs simulated A100/H100 (benchmarks/sim_whatif.py).
10. Real vLLM peer check (`--only vllm_peer`): our batch user vs `vllm bench serve`, 8 users, ~165-token
   prompts, 64-192 output tokens, four alternating attempts (benchmarks/vllm_prefix_cache.py --no-resend).
11. Distributed runs: the master's CPU and bytes per record, streams per master (benchmarks/master_capacity.py).

    .venv/bin/python benchmarks/run_all.py [--quick] [--only capacity,...,whatif]
    .venv/bin/python benchmarks/run_all.py --render-only   # BENCHMARKS.md from benchmarks/results/*.json

The JSON is committed: a partial run (`--only capacity`) replaces its own files and sections, and the other
sections render from the files already there (or, without them, keep their text from BENCHMARKS.md).
Raw py-spy profiles go to reports/bench/.

Benchmarks, not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from runformat.batchmeans import percentile
from simulator.launch import start_simulator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # benchmarks/peers.py
from locust_cluster import free_port  # benchmarks/locust_cluster.py

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "benchmarks" / "results"
PROFILE_DIR = REPO / "reports" / "bench"
VLLM_PY = REPO / ".venv-vllm" / "bin" / "python"
TOKENIZER = REPO / ".cache" / "tinymodels" / "tiny-llama-bf16"
PY = sys.executable
CLIENTS = ("ours", "vllm", "guidellm", "aiperf", "naive")
# Scale-out of ours, not peers: `--processes 2` (Locust forks two workers) and a master with two separately
# started worker processes (benchmarks/locust_cluster.py). Every process is pinned to the client's CPU, so
# events per CPU-s (summed over the process tree) show what a second process costs, not what a second core adds.
SCALE_OUT = ("ours_p2", "ours_mw2")
CLIENT_NAMES = {
    "before": "our Locust user from --before DIR",
    "ours": "our Locust user (locustfiles/batch.py)",
    "vllm": "`vllm bench serve`",
    "naive": "naive Locust user (readline + json.loads)",
    "ours_p2": "our Locust user, --processes 2",
    "ours_mw2": "our Locust user, master + 2 worker processes",
} | {name: peer.title for name, peer in peers.PEERS.items()}
PROMPT_TOKENS = 256
PLATEAU_S = 10.0  # streams running that stop growing for this long: the most this client holds
BEFORE_DIR = REPO


def _pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None else cmd


def pyspy() -> str:
    """py-spy next to this interpreter (the dev extras install it), else on PATH; "" when absent."""
    local = Path(PY).parent / "py-spy"
    return str(local) if local.exists() else (shutil.which("py-spy") or "")


def can_pin() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def pct(values: list[float], q: float) -> float | None:
    """Percentile q in [0, 100] (the suite's one rule, linear interpolation); None without values."""
    return percentile(values, q) if values else None


def r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, nd)


# -- the simulator ------------------------------------------------------------------------------------


class Sim:
    def __init__(self, args: list[str], cpu: int | None) -> None:
        self.lag_path = Path(tempfile.mkstemp(prefix="simlag-", suffix=".txt")[1])
        if "--firehose" not in args:
            args = [*args, "--emission-lag-log", str(self.lag_path)]
        self.sim = start_simulator(args, cpu=cpu if cpu is not None and can_pin() else None)
        self.proc = self.sim.proc
        self.url = self.sim.url
        self.ps = psutil.Process(self.proc.pid)
        with urllib.request.urlopen(self.url + "/v1/models") as resp:
            self.model = json.load(resp)["data"][0]["id"]

    def metrics(self) -> dict[str, float]:
        # A simulator at its limit may answer late: three tries (10 s each) before the run is given up.
        for attempt in range(3):
            try:
                with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
                    text = resp.read().decode()
                break
            except (TimeoutError, urllib.error.URLError):
                if attempt == 2:
                    raise
                time.sleep(1.0)
        out = {}
        for name in ("vllm:num_requests_running", "vllm:generation_tokens_total"):
            m = re.search(rf"^{re.escape(name)}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M)
            out[name.split(":")[1]] = float(m.group(1)) if m else 0.0
        return out

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self) -> list[tuple[int, int]]:
        """Stop; returns the emission-lag log's (due_ns, lag_ns) rows (empty in firehose mode)."""
        self.sim.stop(timeout_s=60)
        rows = []
        if self.lag_path.exists():
            for line in self.lag_path.read_text().splitlines():
                due, lag = line.split()
                rows.append((int(due), int(lag)))
            self.lag_path.unlink()
        return rows


# -- the clients ----------------------------------------------------------------------------------------


def client_cmd(
    kind: str,
    sim: Sim,
    streams: int,
    tokens: int,
    work: Path,
    ramp_s: float,
    request_s: float,
    measured_s: float = 60.0,
) -> tuple[list[str], dict]:
    """`measured_s`: how long the client must keep going once every stream runs (settle + window)."""
    env = dict(os.environ)
    # Users start over ramp_s. `vllm bench serve` issues requests at this rate (Poisson) behind its
    # --max-concurrency; at twice streams/request duration its concurrency stays at the cap after the ramp.
    rate = max(1.0, streams / ramp_s, 2 * streams / request_s)
    if kind in ("ours", "before", *SCALE_OUT):
        # "before": the same user from another checkout (--before DIR), for before/after comparisons.
        root = BEFORE_DIR if kind == "before" else REPO
        if kind == "before":
            env["PYTHONPATH"] = str(root)
        locust = [PY, "-m", "locust"]
        if kind == "ours_mw2":
            locust = [PY, str(REPO / "benchmarks" / "locust_cluster.py"), "--workers", "2", "--"]
        cmd = [*locust, "-f", str(root / "locustfiles" / "batch.py"), "--headless"]
        cmd += ["-u", str(streams), "-r", f"{rate:g}", "-t", "900s", "--host", sim.url, "--only-summary"]
        cmd += ["--csv", str(work / "ours"), "--record-emit-lag", "--max-new-tokens", str(tokens)]
        cmd += ["--prompt-tokens", str(PROMPT_TOKENS), "--loglevel", "WARNING", "--stop-timeout", "0"]
        if kind == "ours_p2":
            # Its own master port: Locust's default (5557) may be taken by another run on the machine.
            port = str(free_port())
            cmd += ["--processes", "2", "--master-bind-port", port, "--master-port", port]
    elif kind == "naive":
        cmd = [PY, "-m", "locust", "-f", str(REPO / "benchmarks" / "naive_locustfile.py"), "--headless"]
        cmd += ["-u", str(streams), "-r", f"{rate:g}", "-t", "900s", "--host", sim.url, "--only-summary"]
        cmd += ["--loglevel", "WARNING", "--stop-timeout", "0"]
        env |= {"NAIVE_OUT": str(work / "naive.json"), "NAIVE_MAX_TOKENS": str(tokens)}
    elif kind == "vllm":
        cmd = [str(VLLM_PY), str(REPO / "benchmarks" / "vllm_peer.py"), str(work / "vllm.json")]
        cmd += ["--backend", "openai", "--base-url", sim.url, "--endpoint", "/v1/completions"]
        cmd += ["--model", sim.model, "--tokenizer", str(TOKENIZER), "--dataset-name", "random"]
        cmd += ["--random-input-len", str(PROMPT_TOKENS), "--random-output-len", str(tokens), "--ignore-eos"]
        # Enough prompts to outlast ramp + settle + window (the client is stopped after the window);
        # every prompt is tokenized up front, so not many more.
        rounds = max(4, math.ceil((ramp_s + 40.0) / request_s) + 2)
        cmd += ["--num-prompts", str(streams * rounds), "--max-concurrency", str(streams)]
        cmd += ["--request-rate", f"{rate:g}", "--disable-tqdm", "--seed", "0", "--ready-check-timeout-sec", "0"]
    elif kind in peers.PEERS:
        # The peer bounds its own run (its results are written when it ends): past ramp, settle and window.
        duration_s = ramp_s + measured_s + peers.MARGIN_S
        shape = (PROMPT_TOKENS, tokens)
        return peers.command(kind, sim.url, sim.model, TOKENIZER, streams, shape, duration_s, work)
    else:
        raise ValueError(kind)
    return cmd, env


def host_steal_s() -> float:
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


def session_members(sid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


def stop_tree(proc: subprocess.Popen, grace_s: float = 60.0) -> int:
    """SIGTERM to the client's session, SIGKILL to what is left after `grace_s`; returns how many processes
    had to be killed. A process left running (a peer's worker that outlives its parent) would take the
    next client's core and skew its figures."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    while (left := session_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(left, timeout=10)
    return len(left)


def proc_cpu_s(ps: psutil.Process, *, system_only: bool = False) -> float:
    """CPU seconds of the client's whole tree so far: every live process's own time plus what its exited,
    reaped children used (`children_*`), so a worker that ends between two readings keeps its share
    instead of taking it out of the sum (which once made a window's CPU negative)."""
    total = 0.0
    for p in [ps, *ps.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            own = t.system if system_only else t.user + t.system
            reaped = t.children_system if system_only else t.children_user + t.children_system
            total += own + reaped
    return total


def proc_sys_s(ps: psutil.Process) -> float:
    return proc_cpu_s(ps, system_only=True)


def proc_rss(ps: psutil.Process) -> int:
    total = 0
    for p in [ps, *ps.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def measure_client(
    kind: str,
    sim: Sim,
    streams: int,
    tokens: int,
    window_s: float,
    settle_s: float,
    ramp_s: float,
    cpu: int | None,
    request_s: float,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """One client run against a running simulator; returns window figures plus raw timing samples."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    cmd, env = client_cmd(kind, sim, streams, tokens, work, ramp_s, request_s, settle_s + window_s)
    log = (work / "client.log").open("wb")
    # `python -m locust` puts the working directory first on sys.path: "before" must run from its own tree.
    cwd = BEFORE_DIR if kind == "before" else REPO
    # Its own session: the whole tree (a peer's workers, Locust's worker processes) is stopped with it.
    proc = subprocess.Popen(
        _pinned(cmd, cpu), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    ps = psutil.Process(proc.pid)
    stragglers = 0
    try:
        # Ramp: wait until the simulator has (nearly) every stream running; start-up and imports excluded.
        # The peers start several processes (GuideLLM spawns workers that import torch) on one core.
        # A client that cannot hold N streams on its core plateaus below N: measured there, at what it holds.
        deadline = time.monotonic() + (600 if kind in peers.PEERS else 180)
        most, most_t, plateau = 0.0, time.monotonic(), None
        while (running := sim.metrics()["num_requests_running"]) < 0.98 * streams:
            now = time.monotonic()
            if proc.poll() is not None or now > deadline:
                log.flush()
                err = (work / "client.log").read_text(errors="replace")[-600:]
                raise RuntimeError(f"{kind} at {streams} streams did not ramp up: {err}")
            if running > most:
                most, most_t = running, now
            elif most > 0 and now - most_t > PLATEAU_S:
                plateau = int(most)
                break
            time.sleep(0.2)
        time.sleep(settle_s)
        t0_mono, t0_wall = time.monotonic(), time.time()
        m0, c0, s0, k0 = sim.metrics(), proc_cpu_s(ps), sim.cpu_s(), proc_sys_s(ps)
        steal0 = host_steal_s()
        spy = None
        if profile_to is not None:
            spy = subprocess.Popen(
                [pyspy(), "record", "--pid", str(proc.pid), "--duration", str(int(window_s)), "--rate", "250",
                 "--nonblocking", "--format", "raw", "--output", str(profile_to)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        time.sleep(window_s)
        t1_mono, t1_wall = time.monotonic(), time.time()
        m1, c1, s1, k1 = sim.metrics(), proc_cpu_s(ps), sim.cpu_s(), proc_sys_s(ps)
        steal1 = host_steal_s()
        rss = proc_rss(ps)
        processes = 1 + len(ps.children(recursive=True))
        if spy is not None:
            spy.wait(timeout=60)
        if kind in peers.PEERS:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} at {streams} streams ended inside the window (its duration bound)")
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=peers.MARGIN_S + request_s + peers.DRAIN_S)
    finally:
        stragglers = stop_tree(proc)
        log.close()
    wall = t1_mono - t0_mono
    events = m1["generation_tokens_total"] - m0["generation_tokens_total"]
    cpu = c1 - c0
    if cpu <= 0 or events <= 0:
        # psutil sums the CPU of the processes alive at each reading: a tree that lost processes in the window
        # (a peer's workers that crashed or ended) has no measurable CPU for it.
        raise RuntimeError(f"{kind} at {streams} streams: client CPU {cpu:.2f} s, {events:.0f} events in the window")
    out: dict[str, Any] = {
        "client": kind,
        "streams": streams,
        "window_s": r(wall),
        "events_in_window": int(events),
        "events_per_s": r(events / wall, 1),
        "client_cpu_s": r(cpu),
        "client_cpu_pct": r(100 * cpu / wall, 1),
        "client_sys_share_pct": r(100 * (k1 - k0) / cpu, 1) if cpu > 0 else None,
        "events_per_client_cpu_s": r(events / cpu, 0) if cpu > 0 else None,
        "client_cpu_us_per_event": r(1e6 * cpu / events, 2) if events else None,
        "client_rss_mb": r(rss / 2**20, 1),
        "client_processes": processes,
        "streams_running": streams if plateau is None else plateau,
        "server_cpu_pct": r(100 * (s1 - s0) / wall, 1),
        "stragglers_killed": stragglers,
        # CPU time the hypervisor gave other guests (share of all cores): a busy host slows client and
        # server alike, and the figures of such a window say little.
        "host_steal_pct": r(100 * (steal1 - steal0) / (wall * (os.cpu_count() or 1)), 1),
        "window_mono": [t0_mono, t1_mono],
    }
    if kind in peers.PEERS:
        out["samples"] = peers.samples(kind, work, (t0_mono, t1_mono), (t0_wall, t1_wall))
    else:
        out["samples"] = collect_samples(kind, work, t0_mono, t0_wall)
    shutil.rmtree(work, ignore_errors=True)
    return out


def collect_samples(kind: str, work: Path, t0_mono: float, t0_wall: float) -> dict[str, list[float]]:
    """Per-event client delay (ms; first token / later tokens) and per-request TTFT, ITL (ms) after warm-up."""
    first: list[float] = []
    later: list[float] = []
    ttft: list[float] = []
    itl: list[float] = []
    if kind in ("ours", "before", *SCALE_OUT):
        starts: dict[str, float] = {}
        for f in work.glob("ours_requests_*.csv"):
            with f.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    if float(row["start_wall_s"]) >= t0_wall:
                        starts[row["request_id"]] = 1.0
                        if row["ttft_ms"]:
                            ttft.append(float(row["ttft_ms"]))
        for f in work.glob("ours_tokens_*.csv"):
            with f.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    if row["request_id"] in starts and row["arrivals_ms"]:
                        a = [float(x) for x in row["arrivals_ms"].split()]
                        itl.extend(b - c for b, c in zip(a[1:], a[:-1], strict=False))
        for f in work.glob("ours_emitlag_*.csv"):
            with f.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    if row["request_id"] in starts and row["emit_lag_us"]:
                        lags = [float(x) / 1e3 for x in row["emit_lag_us"].split()]
                        # The last stamped event is the usage-only chunk (no token): dropped.
                        lags = lags[:-1] if len(lags) > 1 else lags
                        first.append(lags[0])
                        later.extend(lags[1:])
    elif kind == "naive":
        path = work / "naive.json"
        if path.exists():
            for start, t, gaps, delays in json.loads(path.read_text())["requests"]:
                if start >= t0_mono and t is not None:
                    ttft.append(t * 1e3)
                    itl.extend(g * 1e3 for g in gaps)
                    if delays:
                        first.append(delays[0] / 1e6)
                        later.extend(d / 1e6 for d in delays[1:])
    elif kind == "vllm":
        path = work / "vllm.json"
        if path.exists():
            data = json.loads(path.read_text())
            for start, t, gaps in data["requests"]:
                if start >= t0_mono and t is not None:
                    ttft.append(t * 1e3)
                    itl.extend(g * 1e3 for g in gaps)
            for arrival_ns, delay_ns, is_first in data["delays"]:
                if arrival_ns >= t0_mono * 1e9:
                    (first if is_first else later).append(delay_ns / 1e6)
    return {"delay_first_ms": first, "delay_later_ms": later, "ttft_ms": ttft, "itl_ms": itl}


def summarize_timing(samples: dict[str, list[float]], ttft_cfg: float, itl_cfg: float) -> dict[str, Any]:
    first, later = samples["delay_first_ms"], samples["delay_later_ms"]
    ttft, itl = samples["ttft_ms"], samples["itl_ms"]
    ttft_err = [abs(x - ttft_cfg) for x in ttft]
    itl_err = [abs(x - itl_cfg) for x in itl]
    return {
        "delay_events": len(first) + len(later),
        "delay_all_p50_ms": r(pct(first + later, 50)),
        "delay_all_p99_ms": r(pct(first + later, 99)),
        "delay_first_p50_ms": r(pct(first, 50)),
        "delay_first_p99_ms": r(pct(first, 99)),
        "delay_later_p50_ms": r(pct(later, 50)),
        "delay_later_p99_ms": r(pct(later, 99)),
        "requests": len(ttft),
        "ttft_p50_ms": r(pct(ttft, 50)),
        "ttft_p99_ms": r(pct(ttft, 99)),
        "itl_p50_ms": r(pct(itl, 50)),
        "itl_p99_ms": r(pct(itl, 99)),
        "ttft_abs_err_p50_ms": r(pct(ttft_err, 50)),
        "ttft_abs_err_p99_ms": r(pct(ttft_err, 99)),
        "itl_abs_err_p50_ms": r(pct(itl_err, 50)),
        "itl_abs_err_p99_ms": r(pct(itl_err, 99)),
    }


def server_lag(rows: list[tuple[int, int]], window_mono: list[float]) -> dict[str, Any]:
    lo, hi = window_mono[0] * 1e9, window_mono[1] * 1e9
    lags = [lag / 1e6 for due, lag in rows if lo <= due < hi]
    return {"server_lag_p50_ms": r(pct(lags, 50)), "server_lag_p99_ms": r(pct(lags, 99))}


# A window in which neither the client nor the server was busy, yet the streams gave less than half their
# events, measured a stalled machine rather than the client: measured once more, both kept in the row.
STALL_RETRIES = 1
_STALL_KEYS = ("events_per_s", "client_cpu_pct", "server_cpu_pct", "host_steal_pct")


def stalled(res: dict[str, Any], streams: int, itl_ms: float) -> bool:
    ideal = streams / (itl_ms / 1e3)
    return res["events_per_s"] < 0.5 * ideal and res["client_cpu_pct"] < 50 and res["server_cpu_pct"] < 50


def measure_until_not_stalled(
    opts: argparse.Namespace, kind: str, streams: int, cpus: tuple[int | None, int | None], request_s: float
) -> dict[str, Any]:
    """One client at one stream count on a fresh simulator; a stalled window (see `stalled`) is measured
    again, up to STALL_RETRIES times, and kept under `stalled_before`. A client that fails gives a row
    with `failed`: recorded, not fatal, so the other clients' rows stay."""
    client_cpu, server_cpu = cpus
    stalls: list[dict[str, Any]] = []
    while True:
        la = loadavg()
        sim = Sim(["--fixed-ttft-ms", str(opts.ttft_ms), "--fixed-itl-ms", str(opts.itl_ms)], server_cpu)
        try:
            res = measure_client(
                kind, sim, streams, opts.tokens, opts.window_s, opts.settle_s, opts.ramp_s, client_cpu, request_s
            )
        except RuntimeError as exc:
            res = {"client": kind, "streams": streams, "failed": str(exc)[:400], "load_average": [la, loadavg()]}
            print(json.dumps(res), flush=True)
            return res | ({"stalled_before": stalls} if stalls else {})
        finally:
            lag_rows = sim.stop()
        if not stalled(res, streams, opts.itl_ms) or len(stalls) == STALL_RETRIES:
            break
        stall = {k: res[k] for k in _STALL_KEYS} | {"load_average": [la, loadavg()]}
        print(json.dumps({"client": kind, "streams": streams, "stalled": stall}), flush=True)
        stalls.append(stall)
    res |= server_lag(lag_rows, res.pop("window_mono"))
    res |= summarize_timing(res.pop("samples"), opts.ttft_ms, opts.itl_ms)
    res["load_average"] = [la, loadavg()]
    print(json.dumps({k: res[k] for k in _SHOW if k in res}), flush=True)
    return res | ({"stalled_before": stalls} if stalls else {})  # kept, not hidden: the window(s) measured again


def run_capacity(opts: argparse.Namespace, clients: list[str]) -> dict[str, Any]:
    """Sections 1-3: every client at every stream count, alternating clients within each count."""
    pin = can_pin()
    client_cpu, server_cpu = (0, 1) if pin else (None, None)
    runs = []
    profiles: dict[str, str] = {}
    request_s = (opts.ttft_ms + opts.tokens * opts.itl_ms) / 1e3
    for repeat in range(opts.repeats):
        for streams in opts.streams:
            for kind in clients:
                res = measure_until_not_stalled(opts, kind, streams, (client_cpu, server_cpu), request_s)
                runs.append(res | {"repeat": repeat})
    if opts.profile and pyspy():
        for kind in clients:
            if kind == "vllm" or kind in peers.PEERS or kind in SCALE_OUT:
                continue  # another venv's interpreter, or several processes: profiled by hand only
            streams = max(opts.streams) if opts.profile_streams is None else opts.profile_streams
            PROFILE_DIR.mkdir(parents=True, exist_ok=True)
            raw = PROFILE_DIR / f"profile_{kind}_{streams}.txt"
            sim = Sim(["--fixed-ttft-ms", str(opts.ttft_ms), "--fixed-itl-ms", str(opts.itl_ms)], server_cpu)
            try:
                measure_client(kind, sim, streams, opts.tokens, opts.window_s, opts.settle_s, opts.ramp_s,
                               client_cpu, request_s, profile_to=raw)  # fmt: skip
            finally:
                sim.stop()
            if raw.exists():
                profiles[kind] = summarize_profile(raw, streams)
                (PROFILE_DIR / f"profile_{kind}_{streams}_top.txt").write_text(profiles[kind])
    return {
        "setup": {
            "pinned_client_cpu0_server_cpu1": pin,
            "ttft_ms": opts.ttft_ms,
            "itl_ms": opts.itl_ms,
            "tokens_per_request": opts.tokens,
            "prompt_tokens": PROMPT_TOKENS,
            "window_s": opts.window_s,
            "settle_s": opts.settle_s,
            "ramp_s": opts.ramp_s,
            "streams": opts.streams,
            "repeats": opts.repeats,
            "clients": clients,
        },
        "runs": runs,
        "profiles": profiles,
    }


_SHOW = ("client", "streams", "events_per_client_cpu_s", "client_cpu_pct", "delay_all_p99_ms", "itl_p99_ms",
         "server_cpu_pct", "server_lag_p99_ms", "client_rss_mb", "stragglers_killed", "host_steal_pct",
         "load_average")  # fmt: skip


def summarize_profile(raw: Path, streams: int, top: int = 25) -> str:
    """py-spy raw (collapsed) stacks → self time by function and inclusive time of a few key frames."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        total += count
        frames = stack.split(";")
        self_t[_frame(frames[-1])] += count
        for f in {_frame(f) for f in frames}:
            incl[f] += count
    lines = [
        f"py-spy record --rate 250 --nonblocking, {streams} streams, {total} samples; self time (share of samples):"
    ]
    for name, n in self_t.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}%  {name}")
    lines.append("inclusive time of selected frames:")
    for key in ("generate", "read_chunks", "read_stream", "next_chunk", "readline", "recv", "_handle", "feed",
                "record", "write_request", "summarize"):  # fmt: skip
        hits = [(n, name) for name, n in incl.items() if name.split(" (")[0].split(".")[-1] == key]
        for n, name in sorted(hits, reverse=True)[:2]:
            lines.append(f"  {100 * n / total:5.1f}%  {name}")
    return "\n".join(lines) + "\n"


def _frame(frame: str) -> str:
    # "function (path/to/file.py:123)" → "function (file.py)"
    m = re.match(r"(.*) \((.*?):?\d*\)$", frame)
    if not m:
        return frame
    return f"{m.group(1)} ({Path(m.group(2).rstrip(':')).name})"


def run_firehose(opts: argparse.Namespace, clients: list[str]) -> dict[str, Any]:
    clients = [c for c in clients if c not in peers.PEERS]  # sections 1-3 compare the peers; firehose does not
    pin = can_pin()
    client_cpu, server_cpu = (0, 1) if pin else (None, None)
    runs = []
    for kind in clients:
        la = loadavg()
        sim = Sim(["--firehose"], server_cpu)
        try:
            res = measure_client(
                kind,
                sim,
                opts.firehose_streams,
                opts.firehose_tokens,
                opts.window_s,
                opts.settle_s / 2,
                0.5,
                client_cpu,
                1.0,
            )
        finally:
            sim.stop()
        for k in ("samples", "window_mono"):
            res.pop(k)
        res["load_average"] = [la, loadavg()]
        print(json.dumps({k: res[k] for k in _SHOW if k in res}), flush=True)
        runs.append(res)
    return {"streams": opts.firehose_streams, "tokens_per_request": opts.firehose_tokens, "runs": runs}


def run_script(cmd: list[str], out: Path) -> dict[str, Any]:
    la = loadavg()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    data["load_average_driver"] = [la, loadavg()]
    data["command"] = " ".join(Path(c).name if c == PY else c.replace(f"{REPO}/", "") for c in cmd)
    out.write_text(json.dumps(data, indent=2) + "\n")
    return data


# -- BENCHMARKS.md ---------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def main() -> None:
    global OUT_DIR, BEFORE_DIR
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny configuration (seconds): checks the machinery only")
    p.add_argument(
        "--only",
        default="capacity,firehose,analysis,simulator,coverage,prefix_cache,vllm_peer,whatif,openloop,master",
    )
    p.add_argument(
        "--clients",
        default=None,
        help=f"comma list of {','.join((*CLIENTS, *SCALE_OUT))} (default: all available); their rows replace those "
        "clients' rows at the same stream counts in loadgen_capacity.json; the other rows are kept when measured "
        "at the same shape",
    )
    p.add_argument("--streams", default="32,256,512,1024")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--ttft-ms", type=float, default=200.0)
    p.add_argument("--itl-ms", type=float, default=20.0)
    p.add_argument("--window-s", type=float, default=10.0)
    p.add_argument("--settle-s", type=float, default=2.0)
    p.add_argument("--ramp-s", type=float, default=2.0)
    p.add_argument("--firehose-streams", type=int, default=32)
    p.add_argument("--firehose-tokens", type=int, default=3000)
    p.add_argument("--profile", action="store_true", help="also py-spy our and the naive user (extra runs)")
    p.add_argument("--profile-streams", type=int, default=512)
    p.add_argument("--out", type=Path, default=OUT_DIR)
    p.add_argument("--before", type=Path, default=None, help="also run client 'before': DIR's loadgen + locustfiles")
    p.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    p.add_argument("--render-only", action="store_true")
    opts = p.parse_args()
    OUT_DIR = opts.out
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    if opts.quick:
        opts.streams, opts.tokens, opts.ttft_ms, opts.window_s = "8", 20, 20.0, 1.5
        opts.settle_s, opts.ramp_s, opts.firehose_streams, opts.firehose_tokens = 0.3, 0.3, 4, 2000
        opts.profile = False
    opts.streams = [int(s) for s in str(opts.streams).split(",")]
    only = set(opts.only.split(","))
    available = ["ours", "naive"] + (["vllm"] if VLLM_PY.exists() and TOKENIZER.exists() and not opts.quick else [])
    available += [] if opts.quick else list(SCALE_OUT)
    missing = {n: "not installed: make bench-peers" for n, peer in peers.PEERS.items() if not peer.installed()}
    if not TOKENIZER.exists():
        missing = dict.fromkeys(peers.PEERS, f"no tokenizer at {TOKENIZER}: make vllm-setup")
    if opts.quick:
        missing = {}  # the tiny configuration leaves the peers out, like `vllm bench serve`
    available += [n for n in peers.PEERS if n not in missing and not opts.quick]
    clients = opts.clients.split(",") if opts.clients else [c for c in (*CLIENTS, *SCALE_OUT) if c in available]
    unknown = [c for c in clients if c not in (*CLIENTS, *SCALE_OUT) and c != "before"]
    if unknown:
        p.error(f"--clients: unknown {', '.join(unknown)}; known: {', '.join((*CLIENTS, *SCALE_OUT))}")
    for name in [n for n in missing if n in clients or not opts.clients]:
        print(f"{name}: {missing[name]}; left out", file=sys.stderr)
    clients = [c for c in clients if c not in missing]
    if opts.before is not None:
        BEFORE_DIR = opts.before.resolve()
        clients = ["before", *clients] if "before" not in clients else clients
    suffix = "_quick" if opts.quick else ""
    if not opts.render_only:
        meta = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
                "load_average_start": loadavg(), "quick": opts.quick, "command": " ".join(sys.argv)}  # fmt: skip
        if "capacity" in only:
            data = run_capacity(opts, clients) | {"meta": meta}
            data["setup"]["clients_missing"] = missing
            path = OUT_DIR / f"loadgen_capacity{suffix}.json"
            _write(path, _merge_capacity(path, data) if opts.clients else data)
        if "firehose" in only:
            data = run_firehose(opts, clients) | {"meta": meta}
            _write(OUT_DIR / f"loadgen_firehose{suffix}.json", data)
        if "analysis" in only:
            out = OUT_DIR / f"analysis_speed{suffix}.json"
            records = ["--records", "20000", "--repeats", "1"] if opts.quick else ["--records", "1000000"]
            run_script([PY, "benchmarks/analysis_speed.py", *records, "--json", str(out)], out)
        if "simulator" in only:
            out = OUT_DIR / f"sim_capacity{suffix}.json"
            size = ["--streams", "16", "--tokens", "20", "--duration-s", "1.5"] if opts.quick else ["--streams", "512"]
            run_script([PY, "benchmarks/sim_capacity.py", *size, "--json", str(out)], out)
        if "coverage" in only:
            out = OUT_DIR / f"ci_coverage{suffix}.json"
            quick = ["--long-s", "6", "--slice-s", "3", "--warmup-s", "2"]
            lengths = quick if opts.quick else ["--long-s", "600", "--slice-s", "30"]
            run_script([PY, "benchmarks/ci_coverage.py", *lengths, "--json", str(out)], out)
        if "whatif" in only:
            out = OUT_DIR / f"sim_whatif{suffix}.json"
            size = ["--duration-s", "5", "--warmup-s", "2", "--concurrency", "4,8"] if opts.quick else []
            cells = OUT_DIR / f"sim_whatif_cells{suffix}.csv"  # the run's capacity rows: the unit test's fixture
            # The run's cells (large, not committed): --run-dir compares them again.
            work = PROFILE_DIR / "sim_whatif_work" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            args = [*size, "--json", str(out), "--fixture", str(cells), "--work", str(work)]
            data = run_script([PY, "benchmarks/sim_whatif.py", *args], out)
            if not opts.quick:  # every full run is kept: §8 lists them all
                kept = (
                    OUT_DIR
                    / "sim_whatif_runs"
                    / f"{data['config']['started_utc'].replace(' ', 'T').replace(':', '')}.json"
                )
                kept.parent.mkdir(exist_ok=True)
                shutil.copyfile(out, kept)
                shutil.copyfile(cells, kept.with_suffix(".csv"))
        if "openloop" in only:
            out = OUT_DIR / f"open_loop{suffix}.json"
            before = ["--before", str(opts.before)] if opts.before is not None else []
            length = ["--duration-s", "8", "--attribute-s", "6"] if opts.quick else ["--duration-s", "60"]
            pin = ["--pin"] if can_pin() else []
            run_script([PY, "benchmarks/open_loop_truth.py", *length, *before, *pin, "--json", str(out)], out)
        if "master" in only:
            out = OUT_DIR / f"master_capacity{suffix}.json"
            size = ["--streams", "4,8", "--tokens", "20", "--settle-s", "1", "--window-s", "2"] if opts.quick else []
            run_script([PY, "benchmarks/master_capacity.py", *size, "--json", str(out)], out)
        if "prefix_cache" in only and not opts.quick and VLLM_PY.exists() and TOKENIZER.exists():
            out = OUT_DIR / "vllm_prefix_cache.json"
            run_script([PY, "benchmarks/vllm_prefix_cache.py", "--json", str(out)], out)
        if "vllm_peer" in only and not opts.quick and VLLM_PY.exists() and TOKENIZER.exists():
            out = OUT_DIR / "vllm_peer_check.json"
            shape = ["--doc-tokens", "128", "--duration-s", "20", "--warmup-s", "4", "--attempts", "4", "--no-resend"]
            run_script([PY, "benchmarks/vllm_prefix_cache.py", *shape, "--json", str(out)], out)
    if not opts.quick:
        from benchmarks_render import render  # type: ignore[import-not-found]

        previous = opts.markdown.read_text() if opts.markdown.exists() else ""
        tmp = opts.markdown.with_name(opts.markdown.name + ".tmp")
        tmp.write_text(render(OUT_DIR, previous))
        tmp.replace(opts.markdown)
        print(f"wrote {opts.markdown}")


_SAME_SHAPE = ("ttft_ms", "itl_ms", "tokens_per_request", "prompt_tokens", "window_s", "settle_s", "ramp_s")


def _merge_capacity(path: Path, new: dict[str, Any]) -> dict[str, Any]:
    """A run of some clients (--clients) replaces their rows at the stream counts it measured and keeps the
    other rows, when both were measured at the same shape; each kept row says when it was measured."""
    if not path.exists():
        return new
    old = json.loads(path.read_text())
    if any(old["setup"].get(k) != new["setup"].get(k) for k in _SAME_SHAPE):
        return new
    ran = {(run["client"], run["streams"]) for run in new["runs"]}
    kept = [
        run | {"date": run.get("date", old["meta"]["date"])}
        for run in old["runs"]
        if (run["client"], run["streams"]) not in ran
    ]
    for run in new["runs"]:
        run["date"] = new["meta"]["date"]
    new["runs"] = kept + new["runs"]
    new["setup"]["clients"] = [*dict.fromkeys([*old["setup"]["clients"], *new["setup"]["clients"]])]
    new["setup"]["streams"] = sorted({run["streams"] for run in new["runs"]})
    new["profiles"] = old.get("profiles", {}) | new.get("profiles", {})
    if kept:  # the run(s) whose rows it keeps, named where the figures are shown
        new["merged_from"] = [*old.get("merged_from", []), {k: old["meta"].get(k) for k in ("date", "command")}]
    missing = old["setup"].get("clients_missing", {}) | new["setup"].get("clients_missing", {})
    new["setup"]["clients_missing"] = {c: why for c, why in missing.items() if c not in new["setup"]["clients"]}
    return new


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
