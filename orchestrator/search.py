"""Capacity search, the decisions: given the probes so far, which load to probe next, or the answer.

Pure: `next_action(plan, probes)` looks only at its arguments, so a search resumes by replaying its probes
and is tested with a fake probe function. The driver that runs cells is in `orchestrator.searchrun`.

The rule: probe `start`; double while every probe passes (bracketing), then bisect between the highest
passing and the lowest failing load until they are within the resolution, max(min_step, resolution_pct %
of the passing load). A probe whose CI straddles an SLO is re-run longer (attempt 2, 3, ...); still
undecided after `max_attempts`, it counts as failing (only loads shown to pass are claimed). The search
stops early when the smallest load fails, when a probe measured nothing (errors), at `max_load`, or on
saturation: doubling the load raised throughput by less than `knee_gain_pct` while latency rose.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runformat.search import Over, ProbeOutcome

__all__ = ["Finished", "PlanError", "Probe", "ProbeResult", "RunProbe", "SearchPlan", "next_action", "run_search"]

MAX_PROBES = 64  # a bound on any search: doubling to 2^20 and bisecting back takes fewer than 45


class PlanError(ValueError):
    """An impossible search plan; the message names the setting."""


@dataclass(frozen=True)
class SearchPlan:
    """How one search line (target × workload × max_new_tokens) is probed."""

    over: Over = Over.CONCURRENCY
    start: float = 1.0
    max_load: float = 1024.0
    resolution_pct: float = 10.0
    min_step: float = 1.0
    max_attempts: int = 3
    knee_gain_pct: float = 5.0
    pool: int | None = None  # rate search: users that can have a request in flight (None: the workload's)

    def __post_init__(self) -> None:
        if not self.start > 0:
            raise PlanError(f"start must be > 0, got {self.start:g}")
        if self.max_load < self.start:
            raise PlanError(f"--max {self.max_load:g} is below the first probe ({self.start:g} {self.unit})")
        if self.over is Over.CONCURRENCY and (self.start != int(self.start) or self.max_load != int(self.max_load)):
            raise PlanError("a concurrency search needs whole numbers of users for start and --max")
        if self.resolution_pct < 0 or not self.min_step > 0:
            raise PlanError("resolution_pct must be >= 0 and min_step > 0")
        if self.max_attempts < 1:
            raise PlanError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.pool is not None and (self.over is not Over.RATE or self.pool < 1):
            raise PlanError(f"pool (--pool {self.pool}) applies to a rate search only and must be >= 1 user")

    @property
    def unit(self) -> str:
        return "users" if self.over is Over.CONCURRENCY else "req/s"

    def step(self, passing: float) -> float:
        """The resolution at a passing load: brackets this narrow end the search."""
        return max(self.min_step, passing * self.resolution_pct / 100.0)

    def snap(self, load: float) -> float:
        """Loads are whole users, or rates to 3 significant digits."""
        if self.over is Over.CONCURRENCY:
            return float(math.floor(load))
        return float(f"{load:.3g}")


@dataclass(frozen=True)
class ProbeResult:
    """What the search needs to know about one probe (one cell)."""

    outcome: ProbeOutcome
    throughput_tok_s: float = math.nan
    latency_ms: float = math.nan  # p95 end-to-end, for the knee
    binding: str = ""  # the SLO that failed (or came closest to its bound)
    detail: str = ""


@dataclass(frozen=True)
class Probe:
    load: float
    attempt: int
    result: ProbeResult


@dataclass(frozen=True)
class RunProbe:
    load: float
    attempt: int


@dataclass(frozen=True)
class Finished:
    capacity: float | None  # the highest load shown to meet every SLO; None: even `start` fails
    passing_load: float | None
    failing_load: float | None
    binding: str
    stop_reason: str


def _effective(probe: Probe, plan: SearchPlan) -> ProbeOutcome:
    """Undecided after the last attempt counts as failing: capacity is only claimed where shown."""
    if probe.result.outcome is ProbeOutcome.UNDECIDED and probe.attempt >= plan.max_attempts:
        return ProbeOutcome.FAIL
    return probe.result.outcome


def _final(probes: Sequence[Probe]) -> dict[float, Probe]:
    """Each load's latest attempt."""
    out: dict[float, Probe] = {}
    for p in probes:
        out[p.load] = p
    return out


def _knee(plan: SearchPlan, passing: list[Probe]) -> str | None:
    """Saturation: the newest passing probe doubled (or more) the load of the one before it, but its
    throughput rose by less than knee_gain_pct while its latency rose."""
    if len(passing) < 2:
        return None
    prev, last = passing[-2], passing[-1]
    a, b = prev.result, last.result
    if last.load < 2 * prev.load or not (a.throughput_tok_s > 0 and b.throughput_tok_s >= 0):
        return None
    gain = (b.throughput_tok_s / a.throughput_tok_s - 1.0) * 100.0
    if gain >= plan.knee_gain_pct or not b.latency_ms > a.latency_ms:
        return None
    rise = (b.latency_ms / a.latency_ms - 1.0) * 100.0 if a.latency_ms > 0 else math.nan
    return (
        f"saturated: throughput {gain:+.1f}% from {prev.load:g} to {last.load:g} {plan.unit} while p95 latency "
        f"rose {rise:+.0f}% (the knee; more load only queues)"
    )


def next_action(plan: SearchPlan, probes: Sequence[Probe]) -> RunProbe | Finished:
    """The next probe to run, or the search's answer."""
    if not probes:
        return RunProbe(plan.start, 1)
    last = probes[-1]
    if last.result.outcome is ProbeOutcome.INVALID:
        final = _final(probes[:-1])
        passing = [p for p in final.values() if _effective(p, plan) is ProbeOutcome.PASS]
        lo = max((p.load for p in passing), default=None)
        return Finished(lo, lo, last.load, "", f"stopped: the probe at {last.load:g} {plan.unit} {last.result.detail}")
    if last.result.outcome is ProbeOutcome.UNDECIDED and last.attempt < plan.max_attempts:
        return RunProbe(last.load, last.attempt + 1)
    if len(probes) >= MAX_PROBES:
        return Finished(None, None, None, "", f"stopped after {MAX_PROBES} probes without converging")
    final = _final(probes)
    fails = sorted(p.load for p in final.values() if _effective(p, plan) is ProbeOutcome.FAIL)
    hi = fails[0] if fails else None
    passing = sorted(
        (p for p in final.values() if _effective(p, plan) is ProbeOutcome.PASS and (hi is None or p.load < hi)),
        key=lambda p: p.load,
    )
    lo = passing[-1].load if passing else None
    binding = _binding(final[hi]) if hi is not None else (passing[-1].result.binding if passing else "")
    if lo is None:
        return Finished(None, None, hi, binding, f"no capacity: fails at the smallest load ({hi:g} {plan.unit})")
    if hi is None:
        knee = _knee(plan, passing)
        if knee is not None:
            return Finished(lo, lo, None, binding, knee)
        if lo >= plan.max_load:
            return Finished(lo, lo, None, binding, f"meets every SLO at --max ({plan.max_load:g} {plan.unit})")
        return RunProbe(min(plan.snap(lo * 2), plan.max_load), 1)
    if hi - lo <= plan.step(lo):
        return Finished(lo, lo, hi, binding, f"resolved to {plan.step(lo):g} {plan.unit}")
    mid = plan.snap((lo + hi) / 2.0)
    if not lo < mid < hi:  # whole users one apart, or rates that no longer split at 3 digits
        return Finished(lo, lo, hi, binding, f"resolved: no load between {lo:g} and {hi:g} {plan.unit}")
    return RunProbe(mid, 1)


def _binding(probe: Probe) -> str:
    result = probe.result
    if result.outcome is ProbeOutcome.UNDECIDED:
        return f"{result.binding} (undecided after {probe.attempt} attempts)" if result.binding else "undecided"
    return result.binding


def run_search(
    plan: SearchPlan,
    probe: Callable[[float, int], ProbeResult],
    on_probe: Callable[[Probe], None] | None = None,
) -> tuple[Finished, list[Probe]]:
    """Probe until the search finishes (a resumed search's probe function reads finished cells back)."""
    probes: list[Probe] = []
    while True:
        action = next_action(plan, probes)
        if isinstance(action, Finished):
            return action, probes
        done = Probe(action.load, action.attempt, probe(action.load, action.attempt))
        probes.append(done)
        if on_probe is not None:
            on_probe(done)
