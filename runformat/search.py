"""Capacity search's share of the run format: the SLO grammar, probe outcomes and the files a search writes.

The orchestrator parses SLOs from the command line and scenarios, analysis judges probes against them and
reduces `search.json` to `capacity_search.csv`; both read the definitions here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CAPACITY_SEARCH_COLUMNS",
    "CAPACITY_SEARCH_CSV",
    "SEARCH_FILE",
    "SLO_METRICS",
    "Over",
    "ProbeOutcome",
    "Slo",
    "SloError",
    "parse_slo",
]

SEARCH_FILE = "search.json"  # RUN/search.json: the plan, the SLOs and every probe, rewritten after each probe
CAPACITY_SEARCH_CSV = "capacity_search.csv"


class Over(StrEnum):
    """What a search varies: closed-loop users, or an open-loop offered request rate."""

    CONCURRENCY = "concurrency"
    RATE = "rate"


class ProbeOutcome(StrEnum):
    """A probe's verdict against every SLO, from the 95% CIs of its cell."""

    PASS = "pass"  # every SLO's CI lies within its bound
    FAIL = "fail"  # some SLO's CI lies wholly beyond its bound
    UNDECIDED = "undecided"  # no SLO fails, but a CI straddles a bound (or the window holds no CI yet)
    INVALID = "invalid"  # the cell measured nothing usable (failed, no requests, client-bound)


# metric -> (per-request column a single request is judged on for goodput, what the metric is)
SLO_METRICS: dict[str, tuple[str, str]] = {
    "p95_latency_ms": ("e2e_ms", "p95 end-to-end latency (ms)"),
    "ttft_p95_ms": ("ttft_ms", "p95 time to first token (ms)"),
    "tpot_p95_ms": ("tpot_ms", "p95 time per output token (ms)"),
    "error_rate": ("success", "share of requests that failed (0..1)"),
}
_SHORT = {"p95_latency_ms": "p95", "ttft_p95_ms": "TTFT p95", "tpot_p95_ms": "TPOT p95", "error_rate": "errors"}
_SLO = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|<)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


class SloError(ValueError):
    """An SLO that cannot be parsed; the message quotes it and lists what is allowed."""


@dataclass(frozen=True)
class Slo:
    """`metric op bound`, e.g. ttft_p95_ms <= 1500: a cell meets it when the metric's 95% CI is within."""

    metric: str
    op: str  # "<=" or "<"
    bound: float

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"

    @property
    def short(self) -> str:
        """For people: "TTFT p95 ≤ 1500 ms"."""
        unit = "" if self.metric == "error_rate" else " ms"
        return f"{_SHORT[self.metric]} {'≤' if self.op == '<=' else '<'} {self.bound:g}{unit}"

    def within(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value < self.bound


def parse_slo(text: str) -> Slo:
    """'ttft_p95_ms<=1500' -> Slo; raises SloError naming the SLO and the allowed metrics and comparisons."""
    match = _SLO.match(text)
    allowed = ", ".join(SLO_METRICS)
    if match is None:
        raise SloError(f"SLO {text!r}: expected METRIC<=NUMBER or METRIC<NUMBER (metrics: {allowed})")
    metric, op, number = match.groups()
    if metric not in SLO_METRICS:
        raise SloError(f"SLO {text!r}: unknown metric {metric!r} (metrics: {allowed})")
    bound = float(number)
    if not math.isfinite(bound) or bound <= 0 or (metric == "error_rate" and bound > 1):
        limit = "a share in (0, 1]" if metric == "error_rate" else "a positive number of ms"
        raise SloError(f"SLO {text!r}: the bound must be {limit}")
    return Slo(metric, op, bound)


CAPACITY_SEARCH_COLUMNS = [
    "target_label",
    "workload",
    "max_new_tokens",
    "over",
    "capacity",
    "passing_load",
    "failing_load",
    "binding_slo",
    "stop_reason",
    "throughput_tok_s",
    "req_per_s",
    "goodput_req_s",
    "usd_per_1m_tokens",
    "hourly_price_usd",
    "price_source",
    "capacity_cell",
    "probes",
    "probe_loads",
    "wall_s",
    "slos",
]
