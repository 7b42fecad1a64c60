"""A headless run ends with the LLM summary block, and Locust's --json/--json-file carry the LLM section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.locustrun import run_locust

pytestmark = pytest.mark.slow


def test_headless_run_prints_the_summary_and_writes_the_llm_section(sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = run_locust(tmp_path, "batch.py", sim.url, "--max-new-tokens", "16", users=4, run_time="4s")
    assert run.proc.returncode == 0, run.output[-3000:]
    text = run.output
    assert "LLM summary" in text and f"API endpoint: POST {sim.url}/v1/completions" in text
    for label in ("Output token throughput (tok/s):", "Median TTFT (ms):", "P99 ITL (ms):", "Mean E2E (ms):"):
        assert label in text
    data = run.final_json()
    assert isinstance(data["stats"], list) and data["stats"][0]["name"] == "batch /v1/completions"
    llm = data["llm"]
    reqs = run.requests()
    ok = reqs[reqs.success.astype(bool)]
    # Every token that arrived is counted, the interrupted requests' ones too; completions are successes.
    assert llm["tokens"]["output"] == reqs.output_tokens.sum()
    assert 0 < llm["requests"]["completed"] <= len(ok)
    assert llm["throughput"]["throughput_tok_s"] == pytest.approx(
        llm["tokens"]["output"] / llm["window"]["duration_s"], rel=0.01
    )
    assert 3.5 < llm["window"]["duration_s"] < 6
    assert llm["ttft_ms"]["mean"] == pytest.approx(ok.ttft_ms.mean(), rel=0.05)
    assert llm["itl_ms"]["median"] > 0 and llm["e2e_ms"]["p99"] >= llm["e2e_ms"]["median"]
    summary_line = next(line for line in text.splitlines() if line.startswith("Completed requests:"))
    assert summary_line.split()[-1] == f"{llm['requests']['completed']:,}"


def test_json_on_stdout_is_one_document_with_the_llm_section(sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = run_locust(tmp_path, "batch.py", sim.url, "--max-new-tokens", "8", "--json", users=2, run_time="3s")
    assert run.proc.returncode == 0, run.output[-3000:]
    data = json.loads(run.proc.stdout)  # the summary block is not mixed into stdout
    assert set(data) == {"stats", "llm"} and data["llm"]["requests"]["completed"] > 0
    assert "LLM summary" not in run.output
