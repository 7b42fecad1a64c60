"""Capacity search against a simulated deployment whose capacity is known in advance: a profile whose step
time grows with every running sequence, so TPOT at N users follows from the engine's own step-time formula.
The search must return that capacity, with the probe at capacity passing and capacity + 1 failing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simulator.engine import Engine
from simulator.profiles import Profile, load_profiles
from tests.conftest import REPO

pytestmark = pytest.mark.slow

# 10 ms per step plus a KV read of ~0.17 ms per context token of every running sequence: each user adds
# ~15 ms to every step, so TPOT separates cleanly from one user count to the next.
PROFILE = """
[profiles.tiny-steps]
description = "Test profile: TPOT grows by ~15 ms per running sequence"
gpu = "test"
gpu_memory_gib = 1.0
memory_bandwidth_gb_s = 0.0015
peak_tflops = 1.0
bandwidth_efficiency = 1.0
compute_efficiency = 1.0
gpu_memory_utilization = 0.9
runtime_overhead_gib = 0.0
step_overhead_ms = 10.0
model = "tiny-steps"
params_b = 0.000001
unquantized_params_b = 0.0
num_layers = 1
hidden_size = 64
num_attention_heads = 1
num_kv_heads = 1
head_dim = 64
weight_bytes_per_param = 2.0
kv_bytes_per_element = 2.0
dequant_factor = 1.0
max_model_len = 4096
max_num_seqs = 64
max_num_batched_tokens = 2048
"""
SCENARIO = """
[scenario]
name = "truth"
duration_s = "auto"
target_ci_pct = 10
max_duration_s = 20
min_duration_s = 4
warmup_s = 2
spawn_rate = 100
stop_timeout_s = 10
request_timeout_s = 30

[scrape]
enabled = false

[[targets]]
label = "TINY"
url = "{url}"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [1]
max_new_tokens = [{tokens}]
options = {{ prompt_tokens = 64, ignore_eos = true }}

[search]
resolution_pct = 0
max = 16
"""
TOKENS = 8
# The batch user's prompt at prompt_tokens = 64 is ~85 tokens once its instruction and unique tag are added
# (the server's usage counts say so; the test re-checks with the measured mean below).
NOMINAL_PROMPT_TOKENS = 85
CAPACITY = 3


def closed_loop_tpot_p95_ms(profile: Profile, users: int, prompt_tokens: int, output_tokens: int) -> float:
    """TPOT p95 of `users` closed-loop users on the engine model with its virtual clock (no server, no HTTP)."""
    engine = Engine.from_profile(profile)
    now_s, next_id, first, tpots = 0.0, users, {}, []
    for seq in range(users):
        engine.add(seq, prompt_tokens, output_tokens)
    while len(tpots) < 200:
        step = engine.step()
        now_s += step.duration_s
        for seq in step.emitted:
            first.setdefault(seq, now_s)
        for seq in step.finished:
            tpots.append((now_s - first[seq]) / (output_tokens - 1) * 1000.0)
            engine.add(next_id, prompt_tokens, output_tokens)
            next_id += 1
    return float(np.percentile(tpots[50:], 95))


def expected_capacity(profile: Profile, bound_ms: float, prompt_tokens: int) -> int:
    users = 0
    while closed_loop_tpot_p95_ms(profile, users + 1, prompt_tokens, TOKENS) <= bound_ms:
        users += 1
    return users


def _search(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    scenario = tmp_path / "truth.toml"
    scenario.write_text(SCENARIO.format(url=url, tokens=TOKENS))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "loadgen", "search", str(scenario), "--out", str(tmp_path / "runs"), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=280, env=env)


def test_search_finds_the_capacity_the_step_time_formula_predicts(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(PROFILE)
    profile = load_profiles(profiles)["tiny-steps"]
    at = closed_loop_tpot_p95_ms(profile, CAPACITY, NOMINAL_PROMPT_TOKENS, TOKENS)
    above = closed_loop_tpot_p95_ms(profile, CAPACITY + 1, NOMINAL_PROMPT_TOKENS, TOKENS)
    bound = round((at + above) / 2.0, 1)  # halfway: ~7 ms of margin either side
    sim = simulator_factory("--profiles-file", str(profiles), "--profile", "tiny-steps")

    done = _search(tmp_path, sim.url, "--slo", f"tpot_p95_ms<={bound}")
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    record = json.loads((run_dir / "search.json").read_text())
    (line,) = record["lines"]
    probes = {p["load"]: p for p in line["probes"]}
    prompt_mean = np.mean(
        [
            float(r["prompt_tokens"])
            for f in run_dir.rglob("locust_requests_*.csv")
            for r in csv.DictReader(f.read_text().splitlines())
            if r["prompt_tokens"]  # a request cut at a probe's end has no server count
        ]
    )
    assert expected_capacity(profile, bound, round(prompt_mean)) == CAPACITY  # the formula, at the measured prompts
    result = line["result"]
    assert (result["capacity"], result["passing_load"], result["failing_load"]) == (CAPACITY, CAPACITY, CAPACITY + 1)
    assert probes[CAPACITY]["outcome"] == "pass" and probes[CAPACITY + 1]["outcome"] == "fail"
    assert result["binding"] == f"tpot_p95_ms<={bound:g}"
    assert (run_dir / "TINY" / "batch" / f"c{CAPACITY}_m{TOKENS}" / "COMPLETE").exists()

    (row,) = list(csv.DictReader((run_dir / "capacity_search.csv").read_text().splitlines()))
    assert float(row["capacity"]) == CAPACITY and float(row["failing_load"]) == CAPACITY + 1
    assert row["binding_slo"] == f"tpot_p95_ms<={bound:g}" and int(row["probes"]) == len(line["probes"])
    assert float(row["throughput_tok_s"]) > 0 and 0 < float(row["goodput_req_s"]) <= float(row["req_per_s"]) * 1.05

    report = subprocess.run(
        [sys.executable, "-m", "analysis", "report", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert report.returncode == 0, report.stderr[-3000:]
    html = (run_dir / "report" / "index.html").read_text()
    assert "Capacity under SLO" in html and f"TINY (batch, {TOKENS} tokens) holds {CAPACITY} users" in html


def test_a_target_failing_at_the_smallest_load_is_exit_2_naming_it(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(PROFILE)
    sim = simulator_factory("--profiles-file", str(profiles), "--profile", "tiny-steps")
    done = _search(tmp_path, sim.url, "--slo", "tpot_p95_ms<=5")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "no capacity: TINY" in done.stderr and "tpot_p95_ms<=5" in done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    (row,) = list(csv.DictReader((run_dir / "capacity_search.csv").read_text().splitlines()))
    assert row["capacity"] == "" and row["stop_reason"] == "no capacity: fails at the smallest load (1 users)"
