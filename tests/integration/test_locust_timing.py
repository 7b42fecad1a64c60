"""Exactness against the simulator's fixed-timing mode: TTFT/ITL medians and token accounting."""

from __future__ import annotations

import itertools
from pathlib import Path
from statistics import median

import pytest

from tests.integration.locustrun import generation_tokens_total, run_locust

pytestmark = pytest.mark.slow

TTFT_MS, ITL_MS, MAX_TOKENS, USERS = 200.0, 20.0, 32, 32


def test_fixed_timing_is_measured_exactly(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory("--fixed-ttft-ms", str(TTFT_MS), "--fixed-itl-ms", str(ITL_MS))
    before = generation_tokens_total(sim.url)
    run = run_locust(
        tmp_path, "batch.py", sim.url, "--max-new-tokens", str(MAX_TOKENS), "--target-label", "SIM-FIXED",
        users=USERS, run_time="8s",
    )  # fmt: skip
    after = generation_tokens_total(sim.url)
    assert run.proc.returncode == 0, run.output[-3000:]
    reqs = run.requests()
    assert len(reqs) >= USERS and reqs.success.all(), reqs.error.value_counts()
    assert (reqs.output_tokens == MAX_TOKENS).all() and (reqs.tokens_source == "usage").all()
    assert (reqs.target_label == "SIM-FIXED").all() and reqs.request_id.is_unique

    ttft_err = median(reqs.ttft_ms) - TTFT_MS
    tokens = run.tokens()
    itls = []
    for arrivals in tokens.arrivals_ms:
        offsets = [float(a) for a in arrivals.split()]
        itls += [b - a for a, b in itertools.pairwise(offsets)]
    itl_err = median(itls) - ITL_MS
    print(f"fixed timing: median TTFT error {ttft_err:+.3f} ms, median ITL error {itl_err:+.3f} ms")
    assert abs(ttft_err) <= 2.0
    assert abs(itl_err) <= 1.0
    assert abs(median(reqs.tpot_ms) - ITL_MS) <= 1.0
    # The trace and the record agree: first arrival is TTFT, last is e2e, so e2e − ttft == sum(gaps).
    trace = dict(zip(tokens.request_id, tokens.arrivals_ms, strict=True))
    for rec in reqs.itertuples():
        offsets = [float(a) for a in trace[rec.request_id].split()]
        assert len(offsets) == MAX_TOKENS
        assert offsets[0] == pytest.approx(rec.ttft_ms, abs=0.002)
        assert offsets[-1] == pytest.approx(rec.e2e_ms, abs=0.002)

    # Every generated token is accounted for: the server's counter moved by exactly what we recorded.
    assert after - before == reqs.output_tokens.sum()

    # Locust's own stats: response_time is e2e, response_length is output tokens.
    row = next(r for r in run.locust_stats() if r["Name"] == "batch /v1/completions")
    assert float(row["Average Content Size"]) == MAX_TOKENS
    assert abs(float(row["Average Response Time"]) - reqs.e2e_ms.mean()) < 1.0
    llm = {r["name"]: r for r in run.llm_stats()}
    assert int(llm["batch /v1/completions"]["requests"]) == len(reqs)
    assert int(llm["Aggregated"]["output_tokens"]) == reqs.output_tokens.sum()
    client = run.request_files("client")
    assert len(client) == 1 and len(client[0].read_text().splitlines()) >= 5
