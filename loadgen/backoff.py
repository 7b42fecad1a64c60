"""Per-user back-off after failures: bounded exponential with jitter, and the server's Retry-After honoured.

Without it a failing target turns every user into a busy loop (a server that errors right after the first
token got 25,000 requests in 8 s from two users), which measures nothing and hammers a server that is
already in trouble. Pure: the caller sleeps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "parse_retry_after"]

# A Retry-After beyond this is obeyed only up to it: the run's own duration is the real bound.
MAX_RETRY_AFTER_S = 60.0


def parse_retry_after(value: str | None, now_wall_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_wall_s)


@dataclass
class Backoff:
    """After the n-th failure in a row wait base·2^(n-1) capped at `cap_s`, scaled by a random factor in
    [0.5, 1) so users that failed together do not return together; at least the server's Retry-After.
    A success resets it."""

    base_s: float = 0.1
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def delay_s(self, success: bool, retry_after_s: float | None = None) -> float:
        if success:
            self.failures = 0
            return 0.0
        self.failures += 1
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(self.failures - 1, 30))
        delay = ceiling * (0.5 + 0.5 * self.rng.random())
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
        return delay
