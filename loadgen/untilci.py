"""`--until-ci PCT`: end a run once its steady-window throughput and p95 latency are known to ±PCT %.

The decision uses the rule the analysis uses for its confidence intervals (`runformat.batchmeans`): the
steady window `[t0 + warm-up, T]` (t0 = the first request's send) is cut into k equal batches, each at
least `BATCH_LIFETIMES` median request lifetimes long, at most `MAX_BATCHES`; with k ≥ `MIN_BATCHES` the
95 % CI of `throughput_tok_s` is the batch-means one, and that of the p95 end-to-end latency comes from
the per-batch shares of requests at or below the p95 estimate (`proportion_band`), inverted through the
empirical quantile function. The run stops when both half-widths are ≤ PCT % of their estimates.

Checks happen only when a whole new batch has accrued (Law & Kelton's sequential procedure), not on
every record, so the rule does not stop on a lucky moment. The window's end T is never later than the
send time of the oldest request still in flight: every token that arrived before T and every request
that started before T is then known, so the figures are exactly those the analysis computes later for a
window ending at T — and T − t0 is what the grid writes as the cell's `duration_s`.

With several processes (`--processes N`, or master and workers) each worker ships what it learnt each
second — token arrivals binned to `BIN_S`, the (start, e2e, success) of finished requests, and how far
its records are complete — and the master decides for the whole cell's load and quits the runner.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runformat.atomic import write_json_atomic
from runformat.batchmeans import BATCH_LIFETIMES, MIN_BATCHES, batch_count, batch_means_ci, percentile, proportion_band
from runformat.layout import stop_file

__all__ = [
    "BIN_S",
    "CellEvidence",
    "Estimate",
    "StopRule",
    "UntilCI",
    "estimate",
    "write_stop_file",
]

logger = logging.getLogger(__name__)

BIN_S = 0.01  # token arrivals are counted in bins this wide (the batch-edge error is one bin)
MESSAGE = "loadgen_until_ci"  # Locust custom message: worker -> master evidence


@dataclass
class CellEvidence:
    """What is known about a run so far: token arrivals per `BIN_S` bin, finished requests, and up to
    when each source's records are complete. Workers fill one and ship `drain()`s to the master's."""

    bins: dict[int, float] = field(default_factory=dict)
    requests: list[tuple[float, float, bool]] = field(default_factory=list)  # (start_wall_s, e2e_ms, success)
    # t0, as the analysis takes it: the earliest start_wall_s of any record. Exact whenever a window is
    # evaluated, since every request that started before the window's end has finished by then.
    first_send_s: float = math.inf
    complete_until: dict[str, float] = field(default_factory=dict)

    def add_request(
        self,
        start_wall_s: float,
        e2e_ms: float | None,
        success: bool,
        arrivals_ms: Iterable[float],
        counts: Sequence[int],
    ) -> None:
        self.first_send_s = min(self.first_send_s, start_wall_s)
        self.requests.append((start_wall_s, math.nan if e2e_ms is None else float(e2e_ms), bool(success)))
        counts = list(counts)
        for i, offset_ms in enumerate(arrivals_ms):
            key = math.floor((start_wall_s + offset_ms / 1000.0) / BIN_S)
            self.bins[key] = self.bins.get(key, 0.0) + (counts[i] if i < len(counts) else 1)

    def merge(self, data: dict[str, Any], source: str) -> None:
        """Add a shipped delta (see `drain`) from `source`."""
        for key, n in data.get("bins", {}).items():
            k = int(key)
            self.bins[k] = self.bins.get(k, 0.0) + float(n)
        for start, e2e, ok in data.get("requests", []):
            self.requests.append((float(start), math.nan if float(e2e) < 0 else float(e2e), bool(ok)))
        if data.get("first_send_s") is not None:
            self.first_send_s = min(self.first_send_s, float(data["first_send_s"]))
        if data.get("complete_until") is not None:
            self.complete_until[source] = float(data["complete_until"])

    def drain(self, complete_until: float) -> dict[str, Any]:
        """Everything added since the last drain, as a message body (JSON-safe), then forget it."""
        out = {
            "bins": {str(k): v for k, v in self.bins.items()},
            "requests": [[s, e if not math.isnan(e) else -1.0, ok] for s, e, ok in self.requests],
            "first_send_s": None if math.isinf(self.first_send_s) else self.first_send_s,
            "complete_until": complete_until,
        }
        self.bins = {}
        self.requests = []
        return out


@dataclass(frozen=True)
class Estimate:
    """The steady-window figures and their 95 % CIs for a window [window_start_s, window_end_s]."""

    window_start_s: float
    window_end_s: float
    batches: int
    lifetime_s: float
    requests: int
    throughput_tok_s: float
    throughput_half_width: float
    p95_latency_ms: float
    p95_low_ms: float
    p95_high_ms: float

    @property
    def window_s(self) -> float:
        return self.window_end_s - self.window_start_s

    @property
    def throughput_rel_pct(self) -> float:
        if math.isnan(self.throughput_half_width) or not self.throughput_tok_s:
            return math.nan
        return abs(self.throughput_half_width / self.throughput_tok_s) * 100.0

    @property
    def p95_rel_pct(self) -> float:
        if math.isnan(self.p95_low_ms) or not self.p95_latency_ms:
            return math.nan
        return (self.p95_high_ms - self.p95_low_ms) / 2.0 / self.p95_latency_ms * 100.0

    def summary(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 4)

        return {
            "window_s": round(self.window_s, 3),
            "batches": self.batches,
            "requests": self.requests,
            "throughput_tok_s": num(self.throughput_tok_s),
            "throughput_half_width_pct": num(self.throughput_rel_pct),
            "p95_latency_ms": num(self.p95_latency_ms),
            "p95_ci95_ms": [num(self.p95_low_ms), num(self.p95_high_ms)],
            "p95_half_width_pct": num(self.p95_rel_pct),
        }


def estimate(evidence: CellEvidence, window_start_s: float, window_end_s: float) -> Estimate | None:
    """The batch-means CIs over [window_start_s, window_end_s]; None without a finished request in it."""
    window = window_end_s - window_start_s
    if not window > 0:
        return None
    started = [
        (s, e) for s, e, ok in evidence.requests if ok and not math.isnan(e) and window_start_s <= s <= window_end_s
    ]
    if not started:
        return None
    lifetime_s = percentile([e for _, e in started], 50.0) / 1000.0
    k = batch_count(window, lifetime_s)
    if k < 1:
        return Estimate(window_start_s, window_end_s, 0, lifetime_s, len(started), *([math.nan] * 5))
    length = window / k
    tokens = [0.0] * k
    for key, n in evidence.bins.items():
        t = (key + 0.5) * BIN_S
        if window_start_s <= t <= window_end_s:
            tokens[min(k - 1, int((t - window_start_s) / length))] += n
    tput = batch_means_ci([n / length for n in tokens])
    values = [e for _, e in started]
    p95 = percentile(values, 95.0)
    below, totals = [0] * k, [0] * k
    for s, e in started:
        b = min(k - 1, int((s - window_start_s) / length))
        totals[b] += 1
        below[b] += e <= p95
    p_lo, p_hi = proportion_band(below, totals, 0.95)
    lo = percentile(values, p_lo * 100.0) if not math.isnan(p_lo) else math.nan
    hi = percentile(values, p_hi * 100.0) if not math.isnan(p_hi) else math.nan
    return Estimate(window_start_s, window_end_s, k, lifetime_s, len(started), tput.mean, tput.half_width, p95, lo, hi)


@dataclass
class StopRule:
    """When to stop: both relative half-widths ≤ `target_pct`, checked at batch boundaries only.

    `check(evidence, complete_until)` returns the estimate that met the target (stop now) or None. It
    evaluates only once the window has grown by a whole batch since the previous evaluation, never
    before `min_duration_s` of run time, and never with fewer than MIN_BATCHES batches.
    """

    target_pct: float
    warmup_s: float = 0.0
    min_duration_s: float = 0.0
    checks: int = 0
    last: Estimate | None = None
    _next_window_s: float = 0.0

    def check(self, evidence: CellEvidence, complete_until: float) -> Estimate | None:
        t0 = evidence.first_send_s
        if math.isinf(t0):
            return None
        ws = t0 + self.warmup_s
        window = complete_until - ws
        if window <= 0 or window < self._next_window_s:
            return None
        est = estimate(evidence, ws, complete_until)
        if est is None:
            return None
        self.checks += 1
        self.last = est
        step = BATCH_LIFETIMES * est.lifetime_s
        if est.batches >= MIN_BATCHES:
            step = max(step, est.window_s / est.batches)
        self._next_window_s = window + max(step, BIN_S)
        if est.batches < MIN_BATCHES or complete_until - t0 < self.min_duration_s:
            return None
        t_rel, p_rel = est.throughput_rel_pct, est.p95_rel_pct
        if t_rel <= self.target_pct and p_rel <= self.target_pct:  # NaN compares False: keep going
            return est
        return None


# -- the result file ---------------------------------------------------------------------------------------


def write_stop_file(prefix: str, record: dict[str, Any]) -> Path:
    return write_json_atomic(stop_file(prefix), record)


def stop_record(
    reason: str, rule: StopRule, estimate_: Estimate | None, first_send_s: float, now_s: float, run_time_s: float | None
) -> dict[str, Any]:
    """The stop file's content. `stopped_after_s` is the analysis window's end, from the first send."""
    known = not math.isinf(first_send_s)
    if reason == "ci_reached" and estimate_ is not None:
        stopped_after = estimate_.window_end_s - first_send_s
    elif reason == "max_duration" and run_time_s:
        stopped_after = float(run_time_s)
    else:
        stopped_after = now_s - first_send_s if known else 0.0
    return {
        "stop_reason": reason,
        "stopped_after_s": round(stopped_after, 6),
        "elapsed_s": round(now_s - first_send_s, 3) if known else None,
        "target_ci_pct": rule.target_pct,
        "warmup_s": rule.warmup_s,
        "min_duration_s": rule.min_duration_s,
        "max_duration_s": run_time_s,
        "checks": rule.checks,
        "estimate": estimate_.summary() if estimate_ is not None else None,
        **({"stopped_at_wall_s": round(now_s, 3)} if known else {}),
    }


# -- inside Locust -------------------------------------------------------------------------------------------

TICK_S = 0.5


class UntilCI:
    """One Locust process's part: local (records and decides), worker (records and ships) or master
    (merges and decides). The decision quits the runner as `-t` does; `-t` stays the cap."""

    def __init__(
        self,
        environment: Any,
        role: str,
        rule: StopRule,
        prefix: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.environment = environment
        self.role = role  # local | worker | master
        self.rule = rule
        self.prefix = prefix
        self.clock = clock
        self.evidence = CellEvidence()
        self.in_flight: dict[int, float] = {}
        self.result: dict[str, Any] | None = None
        self._seq = 0
        self._started_mono: float | None = None
        self._greenlet: Any = None

    # recording (local and worker)
    def sending(self) -> int:
        self._seq += 1
        self.in_flight[self._seq] = self.clock()
        return self._seq

    def finished(self, slot: int) -> None:
        self.in_flight.pop(slot, None)

    def record(self, rec: Any) -> None:
        self.evidence.add_request(rec.start_wall_s, rec.e2e_ms, rec.success, rec.arrivals_ms, rec.counts)

    def complete_until(self) -> float:
        """Records are complete up to the oldest in-flight send (or now, with nothing in flight)."""
        return min(self.in_flight.values(), default=self.clock())

    # the ticker
    def start(self) -> None:
        import gevent

        self._started_mono = time.monotonic()
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        import gevent

        while self.result is None:
            gevent.sleep(TICK_S)
            try:
                self.tick()
            except Exception:  # never let the rule take the run down
                logger.exception("--until-ci check failed")

    def tick(self) -> None:
        if self.role == "worker":
            self.environment.runner.send_message(MESSAGE, self.evidence.drain(self.complete_until()))
            return
        sources = self.evidence.complete_until
        if self.role == "local":
            until = sources["local"] = self.complete_until()
        else:
            workers = self._workers()
            if not workers or not workers <= set(sources):
                return  # a worker not heard from yet: its records may be missing
            until = min(sources[w] for w in workers)
        est = self.rule.check(self.evidence, until)
        if est is not None:
            logger.info(
                "--until-ci %.3g%% reached after %d batches: throughput ±%.2f%%, p95 ±%.2f%%; stopping",
                self.rule.target_pct,
                est.batches,
                est.throughput_rel_pct,
                est.p95_rel_pct,
            )
            self.finish("ci_reached", est)
            import gevent

            gevent.spawn(self.environment.runner.quit)

    def _workers(self) -> set[str]:
        return set(getattr(self.environment.runner, "clients", {}) or {})

    def on_message(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        self.evidence.merge(msg.data or {}, str(msg.node_id))

    def finish(self, reason: str, est: Estimate | None = None) -> None:
        """Write PREFIX_stop.json once (master or local only)."""
        if self.result is not None or self.role == "worker":
            return
        run_time = getattr(self.environment.parsed_options, "run_time", None)
        started = self._started_mono
        if reason == "stopped" and run_time and started is not None and time.monotonic() - started >= run_time - 1.0:
            reason = "max_duration"
        self.result = stop_record(
            reason, self.rule, est or self.rule.last, self.evidence.first_send_s, self.clock(), run_time
        )
        if self.prefix:
            path = write_stop_file(self.prefix, self.result)
            logger.info("--until-ci: %s (%s)", reason, path)
