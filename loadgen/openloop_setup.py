"""Locust glue for open-loop runs: options checked at start, one dispatcher per process, its summary file.

The master (or the only process) checks the options and the trace at init, so bad input stops the run
before any request; every process with users runs its own dispatcher for its share of the load
(rate ÷ workers, trace rows round-robin by worker index) and writes PREFIX_arrivals_<process>.json at
the end, which analysis sums into the cell's offered rate.
"""

from __future__ import annotations

import gc
import logging
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from loadgen.arrivals import Arrival, ArrivalError, arrival_offsets, load_trace, trace_arrivals
from loadgen.openloop import ArrivalSummary, OpenLoop, write_summary
from loadgen.requestlog import process_tag

__all__ = ["begin_arrivals", "check_open_loop", "finish_open_loop", "start_open_loop"]

logger = logging.getLogger(__name__)

REPLAYED_MESSAGE = "loadgen_trace_replayed"  # Locust custom message: worker -> master, its trace share is done
POOL_READY_TIMEOUT_S = 10.0  # arrivals start then even if some users have not yet built a first request


def _stop_at_start(message: str) -> None:
    logger.error("%s", message)
    sys.stderr.write(f"error: {message}\n")
    sys.exit(1)


def check_open_loop(environment: Any, settings: Any) -> None:
    """At init: refuse bad arrival options or trace files (exit 1, naming them); in open loop spawn the
    whole pool at once, since arrivals do not wait for a ramp."""
    traffic = settings.traffic
    if isinstance(environment.runner, WorkerRunner):
        return  # a worker gets its options from the master at spawn; the master checked them
    try:
        traffic.check()
        if traffic.trace:
            load_trace(traffic.trace)
    except ArrivalError as exc:
        _stop_at_start(str(exc))
    if traffic.trace and isinstance(environment.runner, MasterRunner):
        _await_workers_replayed(environment)
    options = environment.parsed_options
    if traffic.trace and not traffic.trace_salt and options is not None:
        # drawn once here, forwarded with the options to every worker: all processes build the same blocks
        options.trace_salt = secrets.token_hex(3)
    users = getattr(options, "num_users", None)
    if traffic.open_loop and users and float(getattr(options, "spawn_rate", 1) or 1) < users:
        logger.info("open loop: spawning the pool of %d users at once (arrivals do not wait for a ramp)", users)
        options.spawn_rate = float(users)


def _share(environment: Any) -> tuple[int, int]:
    """(this process's index, number of load-generating processes)."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        workers = int(getattr(environment.parsed_options, "expect_workers", 1) or 1)
        return max(0, runner.worker_index), max(1, workers)
    return 0, 1


def start_open_loop(environment: Any, rt: Any) -> OpenLoop | None:
    """At test start in a process with users: build this process's dispatcher (None: closed loop); it starts
    when spawning completes (`OpenLoop.start`)."""
    traffic = rt.settings.traffic
    if isinstance(environment.runner, MasterRunner) or not traffic.open_loop:
        return None
    index, processes = _share(environment)
    try:
        arrivals, summary = _schedule(traffic, index, processes)
    except ArrivalError as exc:  # a worker whose trace differs from the master's
        logger.error("%s", exc)
        environment.runner.quit()
        return None
    sink = rt.sink
    loop = OpenLoop(
        arrivals,
        summary,
        queue=traffic.arrival_queue,
        on_drop=sink.write_drop if sink is not None else None,
    )
    if traffic.trace and isinstance(environment.runner, LocalRunner):
        gevent.spawn(
            _when_replayed,
            environment,
            loop,
            lambda: _quit_replayed(environment, loop.summary.scheduled, loop.summary.dropped),
        )
    elif traffic.trace and isinstance(environment.runner, WorkerRunner):
        runner = environment.runner
        gevent.spawn(
            _when_replayed,
            environment,
            loop,
            lambda: runner.send_message(
                REPLAYED_MESSAGE, {"scheduled": loop.summary.scheduled, "dropped": loop.summary.dropped}
            ),
        )
    logger.info(
        "open loop: %s, process %d of %d, %s",
        "trace " + traffic.trace if traffic.trace else f"{traffic.arrival} arrivals",
        index + 1,
        processes,
        f"{summary.rate_per_s:g} req/s" if summary.rate_per_s else f"x{traffic.trace_time_scale:g} time scale",
    )
    return loop


def begin_arrivals(
    environment: Any,
    loop: OpenLoop,
    timeout_s: float = POOL_READY_TIMEOUT_S,
    on_start: Callable[[float], None] | None = None,
) -> None:
    """Once the pool is spawned: start the schedule when every user waits for an arrival (each builds its
    request ahead of it, the first after asking the server for its model), so none is dropped for a pool
    still starting; at most `timeout_s` later. `on_start` gets the schedule's start (wall s)."""
    deadline_s = time.monotonic() + timeout_s
    users = environment.runner.user_count if environment.runner else 0
    while loop.idle_users < users and time.monotonic() < deadline_s:
        gevent.sleep(0.005)
    # What exists now (Locust, the pool, loaded prompts) lives for the run: frozen, the oldest generation's
    # collections no longer walk it, each of which held the loop for milliseconds.
    gc.freeze()
    loop.start()
    if on_start is not None and loop.summary.started_wall_s is not None:
        on_start(loop.summary.started_wall_s)


def _schedule(traffic: Any, index: int, processes: int) -> tuple[Any, ArrivalSummary]:
    common = {
        "kind": "trace" if traffic.trace else traffic.arrival,
        "burstiness": traffic.burstiness,
        "seed": traffic.arrival_seed,
        "queue": traffic.arrival_queue,
        "process_index": index,
        "processes": processes,
    }
    if traffic.trace:
        rows = load_trace(traffic.trace)
        summary = ArrivalSummary(
            rate_per_s=None, total_rate_per_s=None, trace=traffic.trace, time_scale=traffic.trace_time_scale, **common
        )
        return trace_arrivals(rows, traffic.trace_time_scale, index, processes), summary
    spec = traffic.arrival_spec().for_process(index, processes)
    summary = ArrivalSummary(rate_per_s=spec.rate_per_s, total_rate_per_s=traffic.arrival_rate, **common)
    return (Arrival(offset) for offset in arrival_offsets(spec)), summary


def _when_replayed(environment: Any, loop: OpenLoop, then: Any) -> None:
    """Call `then()` once this process's share of the trace is sent and its last request has finished."""
    loop.finished.wait()
    while loop.idle_users < (environment.runner.user_count if environment.runner else 0):
        gevent.sleep(0.05)
    then()


def _quit_replayed(environment: Any, scheduled: int, dropped: int) -> None:
    """A replayed trace ends the run once every process has sent its rows (or -t ends it first)."""
    logger.info("trace replayed: %d arrivals, %d dropped", scheduled, dropped)
    gevent.spawn(environment.runner.quit)


def _await_workers_replayed(environment: Any) -> None:
    """On the master: quit when every expected worker has reported its share of the trace replayed."""
    done: dict[str, dict[str, Any]] = {}
    expected = max(1, int(getattr(environment.parsed_options, "expect_workers", 1) or 1))

    def on_replayed(msg: Any, **_: Any) -> None:
        done[str(msg.node_id)] = msg.data
        logger.info("trace share replayed by %s (%d of %d workers)", msg.node_id, len(done), expected)
        if len(done) == expected:
            scheduled = sum(int(d["scheduled"]) for d in done.values())
            _quit_replayed(environment, scheduled, sum(int(d["dropped"]) for d in done.values()))

    environment.runner.register_message(REPLAYED_MESSAGE, on_replayed)


def finish_open_loop(rt: Any, loop: OpenLoop | None) -> None:
    """At quit: stop dispatching and write this process's summary next to its request log."""
    if loop is None:
        return
    loop.stop()
    prefix = rt.settings.request_log
    if not prefix:
        return
    # a worker that ships its records has no files of its own here: its summary still goes next to the
    # request log prefix (the same folder with --processes; the worker's own disk for a remote worker)
    identity = getattr(rt.sink, "identity", None)
    tag = getattr(rt.sink, "tag", None) or getattr(identity, "tag", None) or process_tag()
    write_summary(Path(f"{prefix}_arrivals_{tag}.json"), loop.summary)
