"""Quality spot-check against the real pair: the AWQ twin's greedy outputs drift from BF16's, and its
log-likelihood of the BF16 reference (scored by vLLM itself with echo + logprobs) is finite and lower."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.integration.vllm.gridrun import AWQ_LABEL, BF16_LABEL, scenario_text
from tests.integration.vllm.servers import VllmTargets

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

QUALITY = """
[quality]
prompts = 12
max_new_tokens = [48]
seed = 7
concurrency = 2
reference = "{reference}"
threshold = 0.8
"""


def test_awq_outputs_and_logprobs_drift_from_bf16(vllm_pair: VllmTargets, tmp_path: Path) -> None:
    targets = {BF16_LABEL: vllm_pair.urls["bf16"], AWQ_LABEL: vllm_pair.urls["awq"]}
    workloads = [{"name": "batch", "locustfile": "locustfiles/batch.py", "api": "completions", "users": 2,
                  "tokens": 48, "options": {"prompt_tokens": 128}}]  # fmt: skip
    scenario = tmp_path / "quality.toml"
    scenario.write_text(scenario_text(targets, workloads) + QUALITY.format(reference=BF16_LABEL))
    run = subprocess.run(
        [sys.executable, "-m", "loadgen", "quality", str(scenario), "--out", str(tmp_path / "runs")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = next((tmp_path / "runs").iterdir())
    prompts_csv = tmp_path / "prompts.csv"
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "quality", str(run_dir), "-o", str(prompts_csv)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(prompts_csv)
    awq = table[table["target_label"] == AWQ_LABEL]
    assert len(awq) == 12 and awq["error"].isna().all(), awq["error"].tolist()
    print(done.stdout)
    # Real 4-bit weights: some greedy outputs change.
    assert int((~awq["exact_match"].astype(bool)).sum()) > 0
    # vLLM scored the BF16 reference under both servers: finite, and the twin's drift is not zero.
    scored = awq.dropna(subset=["delta_mean_logprob"])
    assert len(scored) == 12
    delta = scored["delta_mean_logprob"].mean()
    assert math.isfinite(delta) and delta != 0.0
    assert all(math.isfinite(v) for v in scored["perplexity_ratio"])
