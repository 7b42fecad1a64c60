"""The open-loop dispatcher inside one Locust process: arrivals on schedule, handed to free pooled users.

One greenlet walks the schedule (`loadgen.arrivals`) and at each arrival's time hands a `Ticket` to a
user waiting in `take()`. When every pooled user is busy the arrival is dropped and counted (k6's
dropped_iterations) — never silently delayed — unless queueing was asked for: then it waits in a FIFO
for the next free user and its queueing delay shows as the request's schedule lag (send − scheduled).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from loadgen.arrivals import Arrival, TraceRow

__all__ = ["ArrivalSummary", "OpenLoop", "Ticket", "write_summary"]

# Wake this much before an arrival and yield to the loop until it is due: the event loop's timers are
# only millisecond-accurate, and the schedule-lag goal is a p99 of 1 ms.
_EARLY_WAKE_S = 0.002


@dataclass(frozen=True, slots=True)
class Ticket:
    """One arrival handed to a user: its scheduled time (perf_counter and wall clock) and trace row."""

    scheduled_s: float
    scheduled_wall_s: float
    row: TraceRow | None = None


@dataclass
class ArrivalSummary:
    """What one process's dispatcher did; written to PREFIX_arrivals_<process>.json at the end."""

    kind: str
    rate_per_s: float | None  # this process's share of the offered rate; None for a trace
    total_rate_per_s: float | None
    burstiness: float
    seed: int
    queue: bool
    process_index: int
    processes: int
    trace: str | None = None
    time_scale: float = 1.0
    started_wall_s: float | None = None
    scheduled: int = 0
    dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class OpenLoop:
    """Dispatches `arrivals` (offsets from `start()`) to users blocked in `take()`."""

    def __init__(
        self,
        arrivals: Iterable[Arrival],
        summary: ArrivalSummary,
        *,
        queue: bool = False,
        on_drop: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._arrivals = iter(arrivals)
        self.summary = summary
        self._queue = queue
        self._on_drop = on_drop or (lambda _wall_s: None)
        self._clock = clock
        self._wall_clock = wall_clock
        self._waiting: deque[gevent.event.AsyncResult] = deque()  # idle users, oldest first
        self._backlog: deque[Ticket] = deque()  # queued arrivals (queue mode only)
        self._greenlet: gevent.Greenlet | None = None
        self.finished = gevent.event.Event()  # set when a finite schedule (a trace) is exhausted

    @property
    def idle_users(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def take(self) -> Ticket:
        """Block until an arrival is handed to this user (the oldest queued one first, in queue mode)."""
        if self._backlog:
            return self._backlog.popleft()
        slot: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._waiting.append(slot)
        try:
            ticket: Ticket = slot.get()
        finally:
            if not slot.ready() and slot in self._waiting:  # killed while idle: no longer a free slot
                self._waiting.remove(slot)
        return ticket

    def _run(self) -> None:
        start_s, start_wall_s = self._clock(), self._wall_clock()
        self.summary.started_wall_s = start_wall_s
        for arrival in self._arrivals:
            due_s = start_s + arrival.offset_s
            self._sleep_until(due_s)
            self.dispatch(Ticket(due_s, start_wall_s + arrival.offset_s, arrival.row))
        self.finished.set()

    def _sleep_until(self, due_s: float) -> None:
        ahead = due_s - self._clock() - _EARLY_WAKE_S
        if ahead > 0:
            gevent.sleep(ahead)
        while self._clock() < due_s:
            gevent.sleep(0)

    def dispatch(self, ticket: Ticket) -> bool:
        """Hand `ticket` to the longest-idle user; else queue it (queue mode) or drop it. True if not dropped."""
        self.summary.scheduled += 1
        if self._waiting:
            self._waiting.popleft().set(ticket)
            return True
        if self._queue:
            self._backlog.append(ticket)
            return True
        self.summary.dropped += 1
        self._on_drop(ticket.scheduled_wall_s)
        return False


def write_summary(path: Path, summary: ArrivalSummary) -> None:
    """Write the summary atomically (a reader never sees half a file)."""
    body = {k: v for k, v in vars(summary).items() if k != "extra"} | summary.extra
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
