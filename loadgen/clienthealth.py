"""Load-generator health: this process's CPU% and dispatch lag, sampled once per second.

Dispatch lag is how late a user's next request starts versus when its wait time said it was due (plus
a ticker's wake-up lateness, so idle seconds still get samples). A saturated generator shows it first
here: greenlets wake late, so requests start late and measured latencies stop meaning anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runformat.batchmeans import percentile

__all__ = ["ClientHealth"]


class ClientHealth:
    """Collects lag samples between `sample()` calls; `sample()` returns one CLIENT_COLUMNS row."""

    def __init__(
        self,
        active_users: Callable[[], int],
        cpu_percent: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if cpu_percent is None:
            import psutil

            proc = psutil.Process()
            proc.cpu_percent(None)  # the first call only sets the reference point
            cpu_percent = lambda: proc.cpu_percent(None)  # noqa: E731
        self._cpu_percent = cpu_percent
        self._active_users = active_users
        self._wall_clock = wall_clock
        self._lags_ms: list[float] = []

    def record_lag_ms(self, lag_ms: float) -> None:
        self._lags_ms.append(max(0.0, lag_ms))

    def sample(self) -> list[Any]:
        lags, self._lags_ms = self._lags_ms, []
        return [
            self._wall_clock(),
            round(self._cpu_percent(), 1),
            percentile(lags, 99.0) if lags else None,
            max(lags) if lags else None,
            self._active_users(),
        ]

    def run_ticker(self, interval_s: float = 0.1, clock: Callable[[], float] = time.perf_counter) -> None:
        """Greenlet body: sleeps `interval_s` forever and records how late each wake-up is."""
        import gevent

        while True:
            due = clock() + interval_s
            gevent.sleep(interval_s)
            self.record_lag_ms((clock() - due) * 1000.0)
