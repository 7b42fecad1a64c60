"""The smoke grid against the real BF16 server and its AWQ twin: every cell completes, chat and
completions both work, our token counts equal vLLM's own counters, and the report renders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.integration.vllm.gridrun import (
    AWQ_LABEL,
    BF16_LABEL,
    cell_dirs,
    failures,
    requests_of,
    run_grid,
    scenario_text,
)
from tests.integration.vllm.servers import VllmTargets

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

USERS, TOKENS = 4, 32
WORKLOADS = [
    # Prompts fitted to 128 tokens (through vLLM's /tokenize) keep prefill small on two cores.
    {
        "name": "batch",
        "locustfile": "locustfiles/batch.py",
        "api": "completions",
        "users": USERS,
        "tokens": TOKENS,
        "options": {"prompt_tokens": 128},
    },
    {"name": "chat", "locustfile": "locustfiles/chat.py", "api": "chat", "users": USERS, "tokens": TOKENS},
]
CELLS = [f"{label}/{w['name']}/c{USERS}_m{TOKENS}" for label in (BF16_LABEL, AWQ_LABEL) for w in WORKLOADS]


@pytest.fixture(scope="module")
def smoke_run(vllm_pair: VllmTargets, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One grid run shared by the checks below (each cell costs ~15 s of real serving)."""
    tmp = tmp_path_factory.mktemp("vllm-smoke")
    targets = {BF16_LABEL: vllm_pair.urls["bf16"], AWQ_LABEL: vllm_pair.urls["awq"]}
    scenario = tmp / "smoke.toml"
    scenario.write_text(scenario_text(targets, WORKLOADS))
    done, run_dir = run_grid(scenario, tmp / "runs")
    assert done.returncode == 0, done.stderr[-4000:]
    assert run_dir is not None and run_dir.is_dir(), done.stdout
    return run_dir


def test_every_cell_completes_without_failures(smoke_run: Path) -> None:
    cells = cell_dirs(smoke_run)
    assert [str(c.relative_to(smoke_run)) for c in cells] == sorted(CELLS)
    for cell in cells:
        meta = json.loads((cell / "metadata.json").read_text())
        assert meta["status"] == "completed", (cell, meta.get("status"))
        assert meta["metrics_available"] and meta["max_model_len"] == 4096
        assert meta["server_version"] == "0.32.0"
        requests = requests_of(cell)
        assert failures(requests).empty, failures(requests).to_dict("records")[:3]
        done = requests.loc[requests["success"]]
        assert len(done) >= USERS, cell
        assert (done["output_tokens"] == TOKENS).all()  # ignore_eos: exactly max_new_tokens each


def test_chat_and_completions_apis_both_served(smoke_run: Path) -> None:
    apis = {json.loads((c / "metadata.json").read_text())["api"] for c in cell_dirs(smoke_run)}
    assert apis == {"chat", "completions"}


def test_request_log_tokens_equal_vllm_counters_exactly(smoke_run: Path) -> None:
    for cell in cell_dirs(smoke_run):
        delta = json.loads((cell / "metadata.json").read_text())["server_token_delta"]
        requests = requests_of(cell)
        assert delta is not None, cell
        assert delta["generation"] == requests["output_tokens"].sum(), cell
        assert delta["prompt"] == requests["prompt_tokens"].sum(), cell


def test_capacity_and_report_render_from_the_real_run(smoke_run: Path, tmp_path: Path) -> None:
    capacity = tmp_path / "capacity.csv"
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "capacity", str(smoke_run), "-o", str(capacity)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(capacity)
    assert len(table) == len(CELLS)
    assert (table["throughput_tok_s"] > 0).all() and (table["ttft_p50_ms"] > 0).all()

    done = subprocess.run(
        [sys.executable, "-m", "analysis", "report", str(smoke_run), "-o", str(tmp_path / "report")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    html = (tmp_path / "report" / "index.html").read_text()
    assert BF16_LABEL in html and AWQ_LABEL in html
