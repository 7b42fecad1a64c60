"""Live token accounting: tokens counted as they arrive, first tokens as they come, rolling tok/s.

The stream loop is not touched: requests in flight register their `StreamResult` here and a ticker reads
what their token lists hold so far, so the per-event cost stays zero. Everything takes its clock as an
argument, so the rolling window and its freeze at Stop are unit-tested without a process.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loadgen.stream import StreamResult

__all__ = ["DEFAULT_WINDOW_S", "Histogram", "LiveTokens", "RollingRate", "TokenTotals", "itl_from_trace"]

DEFAULT_WINDOW_S = 10.0


@dataclass(slots=True)
class TokenTotals:
    """Per request name: prompt tokens known so far, output tokens arrived so far, requests in flight."""

    input_tokens: int = 0
    output_tokens: int = 0
    in_flight: int = 0

    def add(self, other: TokenTotals) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.in_flight += other.in_flight

    def as_list(self) -> list[int]:
        return [self.input_tokens, self.output_tokens, self.in_flight]


@dataclass(slots=True)
class _Flight:
    name: str
    result: StreamResult
    first_token_seen: bool = False


class LiveTokens:
    """One process's requests in flight and the tokens of those that ended, per request name."""

    def __init__(self) -> None:
        self._flights: dict[str, _Flight] = {}
        self._done: dict[str, TokenTotals] = {}
        self._base: dict[str, TokenTotals] = {}

    def opened(self, key: str, name: str, result: StreamResult) -> None:
        """A request (re)sent: `result` fills as its events arrive. A retry under the same key replaces it."""
        self._flights[key] = _Flight(name, result)

    def first_tokens(self) -> list[tuple[str, float]]:
        """(name, TTFT ms) of every request in flight whose first token arrived since the last call."""
        out = []
        for flight in self._flights.values():
            timing = flight.result.timing
            if not flight.first_token_seen and timing.arrivals:
                flight.first_token_seen = True
                out.append((flight.name, (timing.arrivals[0] - timing.t_send) * 1000.0))
        return out

    def closed(self, key: str, output_tokens: int, prompt_tokens: int | None) -> tuple[str, float] | None:
        """The request ended with these counts; returns its (name, TTFT ms) if no tick has logged it yet."""
        flight = self._flights.pop(key, None)
        if flight is None:
            return None
        done = self._done.setdefault(flight.name, TokenTotals())
        done.output_tokens += output_tokens
        done.input_tokens += prompt_tokens or 0
        timing = flight.result.timing
        if flight.first_token_seen or not timing.arrivals:
            return None
        return flight.name, (timing.arrivals[0] - timing.t_send) * 1000.0

    def _raw(self) -> dict[str, TokenTotals]:
        totals = {name: TokenTotals(t.input_tokens, t.output_tokens) for name, t in self._done.items()}
        for flight in self._flights.values():
            t = totals.setdefault(flight.name, TokenTotals())
            result = flight.result
            t.output_tokens += sum(result.timing.counts)
            t.input_tokens += result.prompt_tokens or 0
            t.in_flight += 1
        return totals

    def totals(self) -> dict[str, TokenTotals]:
        """Tokens since start (or the last reset) per name, requests in flight now."""
        totals = self._raw()
        for name, base in self._base.items():
            t = totals.setdefault(name, TokenTotals())
            t.input_tokens -= base.input_tokens
            t.output_tokens -= base.output_tokens
        return totals

    def reset(self) -> None:
        """Count from now on (the web UI's reset): what arrived so far becomes the baseline."""
        self._base = {name: TokenTotals(t.input_tokens, t.output_tokens) for name, t in self._raw().items()}

    def clear(self) -> None:
        self._done.clear()
        self._base.clear()
        self._flights.clear()


def sum_totals(parts: Iterable[dict[str, TokenTotals]]) -> dict[str, TokenTotals]:
    out: dict[str, TokenTotals] = {}
    for part in parts:
        for name, t in part.items():
            out.setdefault(name, TokenTotals()).add(t)
    return out


class RollingRate:
    """Tok/s over the last `window_s` from cumulative totals sampled about once a second.

    `freeze(t)` takes a last sample and holds every rate at its value then (Stop), until `clear()`."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, dict[str, TokenTotals]]] = deque()
        self.frozen_at: float | None = None

    def add(self, t: float, totals: dict[str, TokenTotals]) -> None:
        if self.frozen_at is not None:
            return
        self._samples.append((t, totals))
        while len(self._samples) > 2 and self._samples[1][0] <= t - self.window_s:
            self._samples.popleft()

    def freeze(self, t: float, totals: dict[str, TokenTotals]) -> None:
        self.add(t, totals)
        self.frozen_at = t

    def clear(self) -> None:
        self._samples.clear()
        self.frozen_at = None

    def rates(self) -> dict[str, tuple[float, float]]:
        """(input tok/s, output tok/s) per name over the window; empty until two samples exist."""
        if len(self._samples) < 2:
            return {}
        t1, last = self._samples[-1]
        t0, first = next(((t, s) for t, s in self._samples if t >= t1 - self.window_s), self._samples[0])
        if t1 - t0 <= 0:
            t0, first = self._samples[0]
        span = t1 - t0
        if span <= 0:
            return {}
        out = {}
        for name, now in last.items():
            before = first.get(name, TokenTotals())
            out[name] = (
                (now.input_tokens - before.input_tokens) / span,
                (now.output_tokens - before.output_tokens) / span,
            )
        return out


@dataclass
class Histogram:
    """Counts of values rounded to 2 significant digits (like Locust's response-time buckets), mergeable."""

    counts: dict[float, int] = field(default_factory=dict)
    n: int = 0
    total: float = 0.0

    def add_many(self, values: Iterable[float]) -> None:
        counts = self.counts
        for v in values:
            key = _bucket(v)
            counts[key] = counts.get(key, 0) + 1
            self.n += 1
            self.total += v

    def percentile(self, q: float) -> float | None:
        """The smallest bucket with at least q of the values at or below it."""
        if not self.n:
            return None
        need = q * self.n
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= need:
                return key
        return max(self.counts)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def serialize(self) -> dict[str, Any]:
        return {"counts": list(self.counts.items()), "n": self.n, "total": self.total}

    def extend(self, data: dict[str, Any]) -> None:
        for key, count in data.get("counts", []):
            self.counts[key] = self.counts.get(key, 0) + count
        self.n += data.get("n", 0)
        self.total += data.get("total", 0.0)


def _bucket(v: float) -> float:
    if v <= 0:
        return 0.0
    digits = 1 - math.floor(math.log10(v))
    return round(v, digits)


def itl_from_trace(arrivals_ms: list[float], counts: list[int]) -> list[float]:
    """Per-token gaps of a recorded trace, as METRICS.md defines ITL (an event of k tokens gives k gaps)."""
    out: list[float] = []
    for i in range(1, len(arrivals_ms)):
        gap = arrivals_ms[i] - arrivals_ms[i - 1]
        k = counts[i] if i < len(counts) else 1
        if k == 1:
            out.append(gap)
        else:
            out.extend([gap / k] * k)
    return out
