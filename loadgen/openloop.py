"""The open-loop dispatcher inside one Locust process: arrivals on schedule, handed to free pooled users.

The dispatcher walks the schedule (`loadgen.arrivals`) and at each arrival's time hands a `Ticket` to a
user waiting in `take()`. When every pooled user is busy the arrival is dropped and counted (k6's
dropped_iterations) — never silently delayed — unless queueing was asked for: then it waits in a FIFO
for the next free user and its queueing delay shows as the request's schedule lag (send − scheduled).

Precision: the dispatcher is not a greenlet but an alarm of the highest priority, run by the event loop
itself (`loadgen.alarm`: a timerfd on Linux, exact to the kernel's timer). A greenlet that sleeps is
resumed only after the loop has run every other callback that became ready with it (each stream reader's
chunk), which made the p99 schedule lag several milliseconds; the alarm instead fires ahead of them,
waits out what is left of the gap without yielding (tens of µs; a millisecond with the loop's own
timer), and switches straight into the waiting user, which starts its request before the loop turns to
anything else.
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
from gevent.hub import Waiter, get_hub

from loadgen.alarm import Alarm, make_alarm
from loadgen.arrivals import Arrival, TraceRow

__all__ = ["ArrivalSummary", "OpenLoop", "Ticket", "write_summary"]

# An alarm that comes more than this ahead of the arrival (beyond the alarm's own early_s) sleeps again
# instead of blocking the loop.
_SLACK_S = 0.0008


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
        self._waiting: deque[Waiter[Ticket]] = deque()  # idle users, oldest first
        self._backlog: deque[Ticket] = deque()  # queued arrivals (queue mode only)
        self._alarm: Alarm | None = None
        self._stopped = False
        self._next: Arrival | None = None
        self._start_s = self._start_wall_s = 0.0
        self.finished = gevent.event.Event()  # set when a finite schedule (a trace) is exhausted

    @property
    def has_rows(self) -> bool:
        """A replayed trace: each arrival carries the row that shapes its request."""
        return self.summary.trace is not None

    @property
    def idle_users(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        if self._alarm is not None or self.finished.is_set() or self._stopped:
            return
        self._start_s, self._start_wall_s = self._clock(), self._wall_clock()
        self.summary.started_wall_s = self._start_wall_s
        self._next = next(self._arrivals, None)
        self._alarm = make_alarm(get_hub().loop, self._on_alarm, self._clock)
        self._alarm.at(self._start_s)

    def stop(self) -> None:
        self._stopped = True
        if self._alarm is not None:
            self._alarm.close()
            self._alarm = None
        self._next = None

    def take(self) -> Ticket:
        """Block until an arrival is handed to this user (the oldest queued one first, in queue mode)."""
        if self._backlog:
            return self._backlog.popleft()
        waiter: Waiter[Ticket] = Waiter()
        self._waiting.append(waiter)
        try:
            return waiter.get()
        finally:
            if waiter in self._waiting:  # killed while idle: no longer a free slot
                self._waiting.remove(waiter)

    def _on_alarm(self) -> None:
        """In the loop, ahead of other ready callbacks: dispatch every arrival that is due, then sleep."""
        while self._next is not None and self._alarm is not None:  # stop() clears both
            due_s = self._start_s + self._next.offset_s
            if due_s - self._clock() > self._alarm.early_s + _SLACK_S:
                self._alarm.at(due_s)
                return
            while self._clock() < due_s:
                pass  # at most the alarm's early_s + _SLACK_S
            arrival, self._next = self._next, next(self._arrivals, None)
            self.dispatch(Ticket(due_s, self._start_wall_s + arrival.offset_s, arrival.row))
        self.stop()
        self.finished.set()

    def dispatch(self, ticket: Ticket) -> bool:
        """Hand `ticket` to the longest-idle user; else queue it (queue mode) or drop it. True if not dropped.

        From the loop (the dispatcher) the user runs at once; from a greenlet, when it next yields."""
        self.summary.scheduled += 1
        if self._waiting:
            waiter = self._waiting.popleft()
            hub = get_hub()
            if gevent.getcurrent() is hub:
                waiter.switch(ticket)
            else:
                hub.loop.run_callback(waiter.switch, ticket)
            return True
        if self._queue:
            self._backlog.append(ticket)
            return True
        self.unsent(ticket)
        return False

    def unsent(self, ticket: Ticket) -> None:
        """Count a dispatched arrival that no request answers as dropped: no user was idle for it, or the
        user it went to was told to stop in the same instant."""
        self.summary.dropped += 1
        self._on_drop(ticket.scheduled_wall_s)


def write_summary(path: Path, summary: ArrivalSummary) -> None:
    """Write the summary atomically (a reader never sees half a file)."""
    body = {k: v for k, v in vars(summary).items() if k != "extra"} | summary.extra
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
