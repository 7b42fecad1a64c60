"""The --until-ci stopping decision as a pure function of scripted records (no processes, no sleeping)."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import numpy as np
import pytest

from loadgen.untilci import BIN_S, CellEvidence, StopRule, UntilCI, estimate, stop_record
from runformat.batchmeans import MIN_BATCHES, batch_means_ci, percentile

T0 = 1_700_000_000.0


def closed_loop(
    users: int, until_s: float, e2e_s: float = 1.0, jitter: float = 0.1, tokens: int = 50, seed: int = 0
) -> list[tuple[float, float, list[float]]]:
    """(start_wall_s, e2e_ms, arrivals_ms) of every request a closed loop of `users` finishes by T0+until_s."""
    rng = random.Random(seed)
    out = []
    for u in range(users):
        t = T0 + u * 0.01
        while True:
            e2e = e2e_s * (1.0 + rng.uniform(-jitter, jitter))
            if t + e2e > T0 + until_s:
                break
            ttft = 0.1 * e2e
            arrivals = [1000.0 * (ttft + (e2e - ttft) * i / (tokens - 1)) for i in range(tokens)]
            out.append((t, e2e * 1000.0, arrivals))
            t += e2e
    return sorted(out)


def evidence_until(records: list[tuple[float, float, list[float]]], until: float) -> CellEvidence:
    ev = CellEvidence()
    for start, e2e, arrivals in records:
        if start + e2e / 1000.0 <= until:
            ev.add_request(start, e2e, True, arrivals, [])
    ev.first_send_s = min(r[0] for r in records)
    return ev


def test_percentile_is_numpys_linear_interpolation() -> None:
    values = [random.Random(1).expovariate(1.0) for _ in range(101)]
    for q in (0.0, 0.05, 0.5, 0.95, 0.999, 1.0):
        assert percentile(values, q * 100) == pytest.approx(float(np.percentile(values, q * 100)))
    assert math.isnan(percentile([], 50.0))


def test_estimate_recovers_a_known_throughput_and_batches() -> None:
    records = closed_loop(users=8, until_s=60.0, jitter=0.0)
    ev = evidence_until(records, T0 + 60.0)
    est = estimate(ev, T0 + 5.0, T0 + 45.0)
    assert est is not None
    # 8 users × 50 tokens per 1-s request: 400 tok/s, the same in every batch
    assert est.throughput_tok_s == pytest.approx(400.0, rel=0.01)
    assert est.batches == 20 and est.lifetime_s == pytest.approx(1.0)
    assert est.throughput_rel_pct < 1.0
    assert est.p95_latency_ms == pytest.approx(1000.0)


def test_throughput_ci_is_batch_means_over_equal_batches() -> None:
    records = closed_loop(users=8, until_s=40.0, jitter=0.3, seed=3)
    ev = evidence_until(records, T0 + 40.0)
    ws, we = T0 + 4.0, T0 + 34.0
    est = estimate(ev, ws, we)
    assert est is not None
    length = (we - ws) / est.batches
    per_batch = [0.0] * est.batches
    for start, _, arrivals in records:
        for a in arrivals:
            t = start + a / 1000.0
            if ws <= t <= we:
                per_batch[min(est.batches - 1, int((t - ws) / length))] += 1
    expected = batch_means_ci([n / length for n in per_batch])
    assert est.throughput_tok_s == pytest.approx(expected.mean, rel=2e-3)
    assert est.throughput_half_width == pytest.approx(expected.half_width, rel=0.2, abs=0.5)


def test_no_decision_before_min_batches_even_with_perfect_data() -> None:
    records = closed_loop(users=8, until_s=60.0, jitter=0.0)
    rule = StopRule(target_pct=5.0)
    # MIN_BATCHES batches of 2 lifetimes (2 s each) need 10 s of window
    for until in np.arange(0.5, 2 * MIN_BATCHES - 0.5, 0.5):
        assert rule.check(evidence_until(records, T0 + until), T0 + until) is None
    assert rule.last is not None and rule.last.batches < MIN_BATCHES


def test_stops_once_both_half_widths_are_within_target_and_only_at_batch_boundaries() -> None:
    records = closed_loop(users=8, until_s=120.0, jitter=0.2, seed=7)
    rule = StopRule(target_pct=5.0, warmup_s=3.0)
    calls, stop = 0, None
    for until in np.arange(0.25, 120.0, 0.25):
        calls += 1
        stop = rule.check(evidence_until(records, T0 + until), T0 + until)
        if stop is not None:
            break
    assert stop is not None, rule.last
    assert stop.batches >= MIN_BATCHES
    assert stop.throughput_rel_pct <= 5.0 and stop.p95_rel_pct <= 5.0
    assert stop.window_start_s == T0 + 3.0
    # evaluated once per accrued batch (~2 s each), not on each of the 0.25-s calls
    assert rule.checks <= (stop.window_end_s - T0) / 2.0 + 2 < calls / 4


def test_min_duration_holds_the_stop_back() -> None:
    records = closed_loop(users=8, until_s=120.0, jitter=0.05)
    early, late = StopRule(5.0), StopRule(5.0, min_duration_s=40.0)
    first = {}
    for name, rule in (("early", early), ("late", late)):
        for until in np.arange(0.5, 120.0, 0.5):
            est = rule.check(evidence_until(records, T0 + until), T0 + until)
            if est is not None:
                first[name] = est.window_end_s - T0
                break
    assert first["early"] < 40.0 <= first["late"]


def test_noisy_latencies_do_not_stop_at_a_tight_target() -> None:
    records = closed_loop(users=4, until_s=60.0, jitter=0.9, seed=11)
    rule = StopRule(target_pct=1.0)
    for until in np.arange(0.5, 60.0, 0.5):
        assert rule.check(evidence_until(records, T0 + until), T0 + until) is None
    assert rule.last is not None and rule.last.p95_rel_pct > 1.0


def test_master_decides_on_the_merged_load_of_its_workers() -> None:
    records = closed_loop(users=8, until_s=50.0, jitter=0.2, seed=5)
    whole = evidence_until(records, T0 + 50.0)
    workers = [CellEvidence(), CellEvidence()]
    for i, (start, e2e, arrivals) in enumerate(records):
        workers[i % 2].add_request(start, e2e, True, arrivals, [])
    workers[0].add_request(T0 + 49.0, None, False, [], [])  # a failure: shipped, not counted
    master = CellEvidence()
    for name, w in zip(("w0", "w1"), workers, strict=True):
        master.merge(w.drain(complete_until=T0 + 50.0), name)
    assert master.first_send_s == T0 and master.complete_until == {"w0": T0 + 50.0, "w1": T0 + 50.0}
    a, b = estimate(whole, T0 + 5.0, T0 + 50.0), estimate(master, T0 + 5.0, T0 + 50.0)
    assert a == b
    assert not workers[0].requests and not workers[0].bins  # drained


def test_records_are_complete_only_up_to_the_oldest_request_in_flight() -> None:
    now = [T0 + 10.0]
    env = SimpleNamespace(parsed_options=SimpleNamespace(run_time=60), runner=None)
    uc = UntilCI(env, "local", StopRule(5.0), prefix=None, clock=lambda: now[0])
    assert uc.complete_until() == T0 + 10.0
    a = uc.sending()
    now[0] += 1.0
    b = uc.sending()
    now[0] += 1.0
    assert uc.complete_until() == T0 + 10.0
    uc.finished(a)
    assert uc.complete_until() == T0 + 11.0
    uc.finished(b)
    assert uc.complete_until() == T0 + 12.0


def test_stop_record_says_why_and_where_the_window_ends() -> None:
    records = closed_loop(users=8, until_s=60.0, jitter=0.0)
    rule = StopRule(5.0, warmup_s=2.0)
    est = estimate(evidence_until(records, T0 + 30.0), T0 + 2.0, T0 + 30.0)
    rec = stop_record("ci_reached", rule, est, T0, T0 + 31.5, 120)
    assert rec["stop_reason"] == "ci_reached" and rec["stopped_after_s"] == 30.0 and rec["elapsed_s"] == 31.5
    assert rec["estimate"]["batches"] == est.batches and rec["max_duration_s"] == 120
    capped = stop_record("max_duration", rule, est, T0, T0 + 121.0, 120)
    assert capped["stopped_after_s"] == 120.0
    assert BIN_S <= 0.01
