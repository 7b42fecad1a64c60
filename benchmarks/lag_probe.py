"""Instrumentation for `open_loop_lag.py`, loaded as a second locustfile (it defines no users).

Records, per arrival: when the dispatcher's timer fired, when it handed the ticket over, when the request
was stamped sent, and the longest gap its busy-wait saw (the OS running something else); for the whole
run: every greenlet switch (who ran when), every garbage collection, and the process's scheduler run delay
(/proc/self/schedstat) at each fire and send. Written to $LAG_PROBE_OUT.<pid>.json at exit.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import time
from typing import Any

import gevent
import greenlet
from gevent.hub import get_hub

from loadgen import openloop, users

_OUT = os.environ.get("LAG_PROBE_OUT")
clock = time.perf_counter
switches: list[tuple[float, str]] = []  # (when, the greenlet switched to)
collections: list[tuple[float, float, int]] = []  # (start, end, generation)
arrivals: dict[float, dict[str, float]] = {}  # scheduled_s -> stamps
_names: dict[int, str] = {}
_gc_start = [0.0]


def _run_delay_ns() -> int:
    with open("/proc/thread-self/schedstat", "rb") as f:
        return int(f.read().split()[1])


def _name(g: Any) -> str:
    key = id(g)
    name = _names.get(key)
    if name is None:
        if g is get_hub():
            name = "hub"
        else:
            run = getattr(g, "_run", None) or getattr(g, "run", None)
            owner = getattr(run, "__self__", None)
            fn = getattr(run, "__qualname__", None) or getattr(run, "__name__", None) or repr(run)
            name = f"user:{type(owner).__name__}" if owner is not None and hasattr(owner, "environment") else fn
        _names[key] = name
    return name


def _trace(event: str, args: Any) -> None:
    if event in ("switch", "throw"):
        switches.append((clock(), _name(args[1])))


def _gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_start[0] = clock()
    else:
        collections.append((_gc_start[0], clock(), int(info["generation"])))


_armed_delay_ns = [0]


def _on_alarm(self: openloop.OpenLoop) -> None:
    """`OpenLoop._on_alarm`, stamping each step (same logic)."""
    fired = clock()
    delay_ns = _run_delay_ns()
    waited_delay_ns = delay_ns - _armed_delay_ns[0]
    while self._next is not None and self._alarm is not None:
        due_s = self._start_s + self._next.offset_s
        if due_s - clock() > self._alarm.early_s + openloop._SLACK_S:
            _armed_delay_ns[0] = _run_delay_ns()
            self._alarm.at(due_s)
            return
        last = ready = clock()
        worst = 0.0
        while (now := clock()) < due_s:
            worst = max(worst, now - last)
            last = now
        arrival, self._next = self._next, next(self._arrivals, None)
        arrivals[due_s] = a = {
            "fired": fired, "ready": ready, "spin_gap": worst, "dispatched": clock(), "delay_fire_ns": delay_ns,
            "armed_delay_ns": waited_delay_ns, "cpu_dispatch": time.thread_time(),
        }  # fmt: skip
        self.dispatch(openloop.Ticket(due_s, self._start_wall_s + arrival.offset_s, arrival.row))
        a["returned"] = fired = clock()
        waited_delay_ns = 0
    self.stop()
    self.finished.set()


_stamp_schedule = users._stamp_schedule


def _stamp(outcome: Any, ticket: Any) -> None:
    _stamp_schedule(outcome, ticket)
    if ticket is not None and ticket.scheduled_s in arrivals:
        a = arrivals[ticket.scheduled_s]
        a["sent"] = outcome.record.t_send_s
        a["cpu_send"], a["delay_send_ns"] = _at_send.get(id(gevent.getcurrent()), (float("nan"), 0))


_at_send: dict[int, tuple[float, int]] = {}


def _attempt_probed(self: Any, *a: Any, **k: Any) -> Any:
    """`LLMClient._attempt`, noting the thread's CPU time and run delay just before the send stamp."""
    _at_send[id(gevent.getcurrent())] = (time.thread_time(), _run_delay_ns())
    return _attempt(self, *a, **k)


def _dump() -> None:
    if not _OUT:
        return
    for a in arrivals.values():
        a.setdefault("sent", float("nan"))
    body = {
        "switches": switches,
        "collections": collections,
        "arrivals": [{"due": k, **v} for k, v in sorted(arrivals.items())],
        "gc_threshold": gc.get_threshold(),
    }
    with open(f"{_OUT}.{os.getpid()}.json", "w") as f:
        json.dump(body, f)


from loadgen.client import LLMClient  # noqa: E402

_attempt = LLMClient._attempt
if _OUT:
    openloop.OpenLoop._on_alarm = _on_alarm  # type: ignore[method-assign]
    users._stamp_schedule = _stamp
    LLMClient._attempt = _attempt_probed  # type: ignore[method-assign]
    greenlet.settrace(_trace)
    gc.callbacks.append(_gc)
    atexit.register(_dump)
    gevent.get_hub()
