"""Capacity search decisions against fake deployments whose capacity is known: bracketing, bisection,
re-runs of undecided probes, and every early stop."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.search import Finished, PlanError, Probe, ProbeResult, SearchPlan, next_action, run_search
from runformat.search import Over, ProbeOutcome

PASS, FAIL, UNDECIDED, INVALID = (ProbeOutcome.PASS, ProbeOutcome.FAIL, ProbeOutcome.UNDECIDED, ProbeOutcome.INVALID)


def deployment(capacity: float, tok_per_load: float = 10.0):  # type: ignore[no-untyped-def]
    """Meets the SLO up to `capacity`; throughput grows with load."""

    def probe(load: float, attempt: int) -> ProbeResult:
        ok = load <= capacity
        return ProbeResult(PASS if ok else FAIL, load * tok_per_load, 100.0 + load, "" if ok else "ttft_p95_ms<=1500")

    return probe


def test_one_user_resolution_finds_the_capacity_and_probes_both_sides_of_it() -> None:
    plan = SearchPlan(start=1, max_load=1024, resolution_pct=0, min_step=1)
    done, probes = run_search(plan, deployment(41))
    assert (done.capacity, done.passing_load, done.failing_load) == (41, 41, 42)
    outcome = {p.load: p.result.outcome for p in probes}
    assert outcome[41] is PASS and outcome[42] is FAIL
    assert [p.load for p in probes[:7]] == [1, 2, 4, 8, 16, 32, 64]  # doubling brackets it, then bisection
    assert done.binding == "ttft_p95_ms<=1500"
    assert [p.load for p in probes[7:]] == [48, 40, 44, 42, 41]


@pytest.mark.parametrize("capacity", [1, 3, 7, 41, 100, 333])
def test_ten_percent_resolution_brackets_the_capacity(capacity: int) -> None:
    plan = SearchPlan(start=1, max_load=1024, resolution_pct=10, min_step=1)
    done, probes = run_search(plan, deployment(capacity))
    assert done.passing_load is not None and done.failing_load is not None
    assert done.passing_load <= capacity < done.failing_load
    assert done.failing_load - done.passing_load <= plan.step(done.passing_load)
    assert done.capacity == done.passing_load
    assert len({(p.load, p.attempt) for p in probes}) == len(probes)  # no probe repeated


def test_an_undecided_probe_is_rerun_longer_and_then_decides() -> None:
    calls: list[tuple[float, int]] = []
    inner = deployment(5)

    def probe(load: float, attempt: int) -> ProbeResult:
        calls.append((load, attempt))
        if load == 4 and attempt == 1:
            return ProbeResult(UNDECIDED, 40.0, 104.0, "tpot_p95_ms<=50")
        return inner(load, attempt)

    done, _ = run_search(SearchPlan(start=1, max_load=64, resolution_pct=0), probe)
    assert calls[:4] == [(1, 1), (2, 1), (4, 1), (4, 2)]
    assert done.capacity == 5


def test_a_probe_undecided_at_every_attempt_counts_as_failing() -> None:
    inner = deployment(100)

    def probe(load: float, attempt: int) -> ProbeResult:
        return ProbeResult(UNDECIDED, 80.0, 180.0, "tpot_p95_ms<=50") if load >= 8 else inner(load, attempt)

    done, probes = run_search(SearchPlan(start=1, max_load=64, resolution_pct=0, max_attempts=2), probe)
    assert (done.capacity, done.failing_load) == (7, 8)
    assert [(p.load, p.attempt) for p in probes if p.load == 8] == [(8, 1), (8, 2)]
    assert "undecided after 2 attempts" in done.binding


def test_the_smallest_load_failing_is_no_capacity() -> None:
    done, probes = run_search(SearchPlan(start=2, max_load=64), deployment(1))
    assert done.capacity is None and done.failing_load == 2 and len(probes) == 1
    assert done.stop_reason.startswith("no capacity: fails at the smallest load")


def test_meeting_every_slo_at_max_stops_there() -> None:
    done, probes = run_search(SearchPlan(start=1, max_load=20), deployment(1000))
    assert [p.load for p in probes] == [1, 2, 4, 8, 16, 20]
    assert done.capacity == 20 and done.failing_load is None and "--max" in done.stop_reason


def test_saturation_stops_at_the_knee() -> None:
    def probe(load: float, attempt: int) -> ProbeResult:  # throughput flat from 8 users on
        return ProbeResult(PASS, min(load, 8) * 100.0, 50.0 * max(load, 8), "")

    done, probes = run_search(SearchPlan(start=1, max_load=1024), probe)
    assert [p.load for p in probes] == [1, 2, 4, 8, 16]
    assert done.capacity == 16 and done.failing_load is None and done.stop_reason.startswith("saturated")


def test_a_probe_that_measured_nothing_stops_the_search() -> None:
    def probe(load: float, attempt: int) -> ProbeResult:
        if load >= 4:
            return ProbeResult(INVALID, detail="failed: no request completed")
        return ProbeResult(PASS, load, 1.0)

    done, probes = run_search(SearchPlan(start=1, max_load=64), probe)
    assert len(probes) == 3 and done.capacity == 2 and done.failing_load == 4
    assert "no request completed" in done.stop_reason


def test_a_non_monotone_result_claims_only_loads_below_the_lowest_failure() -> None:
    probes = [Probe(1, 1, ProbeResult(PASS)), Probe(2, 1, ProbeResult(FAIL)), Probe(4, 1, ProbeResult(PASS))]
    action = next_action(SearchPlan(start=1, max_load=64, resolution_pct=0), probes)
    assert isinstance(action, Finished) and (action.capacity, action.failing_load) == (1, 2)


def test_rate_search_bisects_in_three_significant_digits() -> None:
    plan = SearchPlan(over=Over.RATE, start=0.5, max_load=100, resolution_pct=5, min_step=0.1)
    done, probes = run_search(plan, deployment(7.3))
    assert done.passing_load is not None and done.failing_load is not None
    assert done.passing_load <= 7.3 < done.failing_load <= done.passing_load + plan.step(done.passing_load)
    assert all(float(f"{p.load:.3g}") == p.load for p in probes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": 8, "max_load": 4}, "--max 4 is below the first probe (8 users)"),
        ({"start": 1.5}, "whole numbers"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"start": 0}, "start must be > 0"),
    ],
)
def test_impossible_plans_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SearchPlan(**kwargs)  # type: ignore[arg-type]


def open_loop_deployment(pool: int, service_s: float) -> Callable[[float, int], ProbeResult]:
    """An open-loop deployment with a fixed service time: past pool ÷ service_s req/s arrivals find every user
    busy and are dropped (the judge fails a cell that is not sustained); its latency never breaks the SLO."""

    def probe(load: float, attempt: int) -> ProbeResult:
        drops = load * service_s > pool
        return ProbeResult(FAIL if drops else PASS, load * 100.0, service_s * 1000.0, "sustained" if drops else "")

    return probe


@pytest.mark.parametrize(("pool", "service_s"), [(4, 0.4), (64, 2.0), (1, 0.3)])
def test_rate_search_finds_the_rate_where_the_pool_starts_dropping(pool: int, service_s: float) -> None:
    plan = SearchPlan(over=Over.RATE, start=0.5, max_load=1024, resolution_pct=5, min_step=0.1, pool=pool)
    done, probes = run_search(plan, open_loop_deployment(pool, service_s))
    capacity = pool / service_s
    assert done.passing_load is not None and done.failing_load is not None
    assert done.passing_load <= capacity < done.failing_load <= done.passing_load + plan.step(done.passing_load)
    assert done.capacity == done.passing_load and done.binding == "sustained"
    assert [p.load for p in probes[:3]] == [0.5, 1, 2]  # doubling in req/s


def test_a_pool_is_refused_for_a_concurrency_search() -> None:
    with pytest.raises(PlanError, match="rate search only"):
        SearchPlan(pool=8)
