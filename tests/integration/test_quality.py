"""The quality pass against two simulators whose outputs diverge at a known rate: measured == configured."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.quality import load_quality, per_prompt_table, summary_table
from simulator.textgen import Divergence, divergence_point, generate
from tests.conftest import REPO
from tests.unit.analysis.runbuilder import BF16, QUANT, build_run

RATE, DIV_SEED, DRIFT = 0.3, 5, 0.2

SCENARIO = """
[scenario]
name = "q"
duration_s = {duration}
warmup_s = 1
spawn_rate = 50
stop_timeout_s = 10
request_timeout_s = 30

[[targets]]
label = "{bf16_label}"
url = "{bf16}"

[[targets]]
label = "{quant_label}"
url = "{quant}"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [2]
max_new_tokens = [64]
options = {{ prompt_tokens = 200 }}

[[workloads]]
name = "chat"
locustfile = "locustfiles/chat.py"
concurrency = [2]
max_new_tokens = [48]

[quality]
enabled = true
prompts = {prompts}
concurrency = 4
seed = 11
"""


def _write(tmp_path: Path, bf16: str, quant: str, prompts: int = 40, duration: int = 3) -> Path:
    path = tmp_path / "q.toml"
    text = SCENARIO.format(
        bf16=bf16, quant=quant, bf16_label=BF16, quant_label=QUANT, prompts=prompts, duration=duration
    )
    path.write_text(text)
    return path


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def pair(simulator_factory):  # type: ignore[no-untyped-def]
    bf16 = simulator_factory("--profile", "rtx2000-ada-16gb-bf16", "--firehose")
    quant = simulator_factory(
        "--profile",
        "rtx2000-ada-16gb-awq",
        "--firehose",
        "--divergence-rate",
        str(RATE),
        "--divergence-seed",
        str(DIV_SEED),
        "--logprob-drift",
        str(DRIFT),
    )
    return bf16, quant


def test_measured_divergence_matches_the_configured_rate(tmp_path: Path, pair) -> None:  # type: ignore[no-untyped-def]
    bf16, quant = pair
    run = build_run(tmp_path / "runs")
    done = _run("-m", "loadgen", "quality", str(_write(tmp_path, bf16.url, quant.url)), "--run-dir", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    quality = load_quality(run)
    assert quality is not None and quality.manifest["reference"] == BF16
    outputs = quality.outputs
    assert outputs["error"].isna().all() and len(outputs) == 2 * 80
    assert outputs["request_id"].str.startswith("quality-").all() and outputs["usage"].notna().all()

    table = per_prompt_table(outputs, BF16, threshold=0.8)
    ref = outputs[outputs["target_label"] == BF16].set_index(["prompt_id", "max_new_tokens"])
    expected_k = {}
    for key, row in ref.iterrows():
        tokens = generate(row["prompt"], 11, int(key[1]), False, []).token_texts
        assert "".join(tokens) == row["text"]  # the simulator's reference output, reproduced
        expected_k[key] = divergence_point(row["prompt"], Divergence(RATE, DIV_SEED), len(tokens))
    diverged = {k for k, v in expected_k.items() if v is not None}
    measured = {(r.prompt_id, r.max_new_tokens) for r in table.itertuples() if not r.exact_match}
    assert measured == diverged  # exactly the prompts the knob picked
    for r in table[~table["exact_match"].astype(bool)].itertuples():
        assert r.first_divergence_token == expected_k[(r.prompt_id, r.max_new_tokens)]
    share = len(measured) / len(table)
    assert abs(share - RATE) < 3 * math.sqrt(RATE * (1 - RATE) / len(table))  # within 3 sigma of 0.3 (n = 80)

    overall = summary_table(table).query("workload == 'all'").iloc[0]
    assert overall["exact_match_rate"] == pytest.approx(1 - share)
    delta = overall["delta_mean_logprob"]
    # the twin subtracts drift × U[0,1) per token: about −drift / 2, finite and non-zero
    assert math.isfinite(delta) and delta == pytest.approx(-DRIFT / 2, abs=0.03)
    assert overall["perplexity_ratio"] == pytest.approx(math.exp(-delta))
    print(f"configured divergence {RATE:.2f}, measured {share:.3f} (n={len(table)}); Δ mean logprob {delta:+.4f}")

    cli = _run("-m", "analysis", "quality", str(run), "-o", str(tmp_path / "prompts.csv"), "--worst", "2")
    assert cli.returncode == 0, cli.stderr
    assert "exact_match_rate" in cli.stdout and "quality_adjusted_usd_per_1m_tokens" in cli.stdout
    assert len(pd.read_csv(tmp_path / "prompts.csv")) == 80
    bad = _run("-m", "analysis", "quality", str(run), "--reference", "NOPE")
    assert bad.returncode == 2 and "'NOPE'" in bad.stderr and BF16 in bad.stderr


@pytest.mark.slow
def test_grid_runs_the_quality_pass_and_the_report_shows_it(tmp_path: Path, pair) -> None:  # type: ignore[no-untyped-def]
    bf16, quant = pair
    scenario = _write(tmp_path, bf16.url, quant.url, prompts=6, duration=3)
    done = _run(
        "-m", "loadgen", "grid", str(scenario), "--out", str(tmp_path / "runs"), "--only", "workload=batch", timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "quality" / "manifest.json").read_text())
    assert manifest["requests_per_target"] == 12 and manifest["errors"] == {BF16: 0, QUANT: 0}
    report = _run("-m", "analysis", "report", str(run_dir), "--threshold", "0.9")
    assert report.returncode == 0, report.stderr
    html = (run_dir / "report" / "index.html").read_text()
    assert 'id="quality"' in html and "quality-adjusted $/1M" in html and "ROUGE-L F1 ≥ 0.90" in html
    notes = next((run_dir / "report").glob("*_notes.md")).read_text()
    cost = next((run_dir / "report").glob("*_cost_comparison.md")).read_text()
    assert "At the measured drift of" in notes and "At the measured drift of" in cost
    assert (run_dir / "report" / "quality_cost.csv").exists()


@pytest.mark.slow
def test_a_run_with_only_a_quality_pass_gets_a_quality_report(tmp_path: Path, pair) -> None:  # type: ignore[no-untyped-def]
    bf16, quant = pair
    scenario = _write(tmp_path, bf16.url, quant.url, prompts=4)
    done = _run("-m", "loadgen", "quality", str(scenario), "--out", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert not list(run_dir.rglob("metadata.json"))  # no load cells at all
    report = _run("-m", "analysis", "report", str(run_dir))
    assert report.returncode == 0, report.stderr
    html = (run_dir / "report" / "index.html").read_text()
    assert 'id="quality-only"' in html and 'id="quality"' in html and "At the measured drift of" in html
    for load_section in ('id="capacity"', 'id="comparison"', 'id="cost"', 'id="slo"', 'id="plots"'):
        assert load_section not in html
    written = {p.name for p in (run_dir / "report").iterdir()}
    assert written == {"index.html", "quality_summary.csv", "quality_prompts.csv", "quality_cost.csv"}
    assert len(pd.read_csv(run_dir / "report" / "quality_prompts.csv")) == 2 * 4  # both workloads' prompts
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = _run("-m", "analysis", "report", str(empty))  # neither cells nor a quality pass: still an error
    assert missing.returncode == 2 and "no runs found" in missing.stderr
