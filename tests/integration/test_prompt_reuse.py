"""Against the simulator's prefix-cache model: unique prompts never hit, a shared prefix does."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from loadgen.workloads import SUMMARIZE_INSTRUCTION
from simulator.tokenizer import tokenize
from tests.integration.locustrun import run_locust

pytestmark = pytest.mark.slow


def prefix_cache(base_url: str) -> tuple[float, float]:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()

    def total(name: str) -> float:
        values = re.findall(rf"^vllm:{name}_total(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.MULTILINE)
        assert values, f"no vllm:{name}_total in /metrics"
        return sum(float(v) for v in values)

    return total("prefix_cache_hits"), total("prefix_cache_queries")


def test_batch_prompts_are_unique_unless_a_shared_prefix_is_asked(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory("--fixed-ttft-ms", "5", "--fixed-itl-ms", "2")
    args = ("--max-new-tokens", "8", "--prompt-tokens", "200")
    run = run_locust(tmp_path, "batch.py", sim.url, *args, users=4, run_time="3s", name="unique")
    assert run.proc.returncode == 0, run.output[-3000:]
    reqs = run.requests()
    hits, queries = prefix_cache(sim.url)
    assert len(reqs) > 46 and reqs.success.all()  # more requests than shipped documents
    assert hits == 0 and queries == reqs.prompt_tokens.sum()
    # The tag fits inside the budget: document + tag as asked, plus instruction and BOS.
    wrapper = len(tokenize(f"{SUMMARIZE_INSTRUCTION}\n\n\n\nSummary:"))
    assert abs(reqs.prompt_tokens.median() - (200 + wrapper)) <= 3

    shared = run_locust(
        tmp_path, "batch.py", sim.url, *args, "--shared-prefix-tokens", "64", users=4, run_time="3s", name="shared"
    )
    assert shared.proc.returncode == 0, shared.output[-3000:]
    reqs = shared.requests()
    hits2, queries2 = prefix_cache(sim.url)
    # Every request after the first finds the 64-token prefix (whole blocks of 16) in the cache.
    assert hits2 - hits >= (len(reqs) - 1) * 48
    assert queries2 - queries == reqs.prompt_tokens.sum()
    assert reqs.prompt_tokens.median() >= 200 + 64

    # Without tags the shipped documents repeat, and the cache serves the repeats.
    repeat = run_locust(
        tmp_path, "batch.py", sim.url, *args, "--no-unique-prompts", users=4, run_time="3s", name="repeat"
    )
    assert repeat.proc.returncode == 0, repeat.output[-3000:]
    hits3, _ = prefix_cache(sim.url)
    assert hits3 - hits2 > 0.3 * repeat.requests().prompt_tokens.sum()
