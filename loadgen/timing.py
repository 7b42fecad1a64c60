"""Per-request timing as defined in METRICS.md: TTFT, end-to-end latency, TPOT and per-token ITL.

The stream loop only appends (arrival, token count) pairs for token-carrying events; everything here
is computed afterwards from those timestamps, so the hot loop stays cheap and tests can script the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runformat.batchmeans import percentile

__all__ = ["RequestTiming", "TimingSummary", "percentile"]


@dataclass(frozen=True, slots=True)
class TimingSummary:
    """Derived metrics of one request; None where METRICS.md leaves a metric undefined."""

    ttft_ms: float | None
    e2e_ms: float | None
    tpot_ms: float | None
    itl_ms: list[float]
    itl_mean_ms: float | None
    itl_p99_ms: float | None


@dataclass(slots=True)
class RequestTiming:
    """Timestamps of one request on a single perf_counter-like clock (seconds).

    `arrivals[i]` is when the i-th token-carrying event arrived and `counts[i]` how many output tokens
    it carried (k > 1 when continuous usage shows several tokens in one chunk).
    """

    t_send: float
    arrivals: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    @property
    def event_tokens(self) -> int:
        """Tokens seen in events (the output token count when the server sends no usage)."""
        return sum(self.counts)

    def arrival_offsets_ms(self) -> list[float]:
        return [(t - self.t_send) * 1000.0 for t in self.arrivals]

    def summarize(self, output_tokens: int) -> TimingSummary:
        """Compute the per-request metrics; `output_tokens` is the authoritative count (usage if sent)."""
        if not self.arrivals:
            return TimingSummary(None, None, None, [], None, None)
        ttft_ms = (self.arrivals[0] - self.t_send) * 1000.0
        e2e_ms = (self.arrivals[-1] - self.t_send) * 1000.0
        itl: list[float] = []
        prev = self.arrivals[0]
        # The first event's extra tokens have no preceding gap; each later event of k tokens
        # contributes k equal gaps, so sum(itl) == e2e - ttft exactly and ITL is per token.
        for t, k in zip(self.arrivals[1:], self.counts[1:], strict=True):
            gap_ms = (t - prev) * 1000.0
            if k == 1:
                itl.append(gap_ms)
            else:
                itl.extend([gap_ms / k] * k)
            prev = t
        tpot_ms = (e2e_ms - ttft_ms) / (output_tokens - 1) if output_tokens >= 2 else None
        return TimingSummary(
            ttft_ms=ttft_ms,
            e2e_ms=e2e_ms,
            tpot_ms=tpot_ms,
            itl_ms=itl,
            itl_mean_ms=sum(itl) / len(itl) if itl else None,
            itl_p99_ms=percentile(itl, 99.0) if itl else None,
        )
