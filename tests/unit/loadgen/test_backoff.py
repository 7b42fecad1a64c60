"""Back-off after failures: exponential, bounded, jittered, reset by a success, at least Retry-After."""

from __future__ import annotations

import random

import pytest

from loadgen.backoff import MAX_RETRY_AFTER_S, Backoff, parse_retry_after


def test_delays_grow_exponentially_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0, rng=random.Random(1))
    delays = [backoff.delay_s(False) for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert all(c / 2 <= d < c for d, c in zip(delays, ceilings, strict=True)), delays
    assert backoff.delay_s(True) == 0.0 and backoff.failures == 0
    assert backoff.delay_s(False) < 0.1  # a success starts over


def test_retry_after_is_a_floor_and_is_bounded() -> None:
    backoff = Backoff(rng=random.Random(1))
    assert backoff.delay_s(False, retry_after_s=3.0) == 3.0
    assert backoff.delay_s(False, retry_after_s=10_000.0) == MAX_RETRY_AFTER_S


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), (" 1.5 ", 1.5), ("Thu, 01 Jan 1970 00:00:10 GMT", 5.0), ("soon", None), (None, None), ("-3", 0.0)],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now_wall_s=5.0) == seconds
