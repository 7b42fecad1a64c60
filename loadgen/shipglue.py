"""Locust glue for record shipping: the worker's sink and acknowledgements, the master's collector and its
wait for every live worker's last batch before Locust's quit tears the message loop down."""

from __future__ import annotations

import logging
import time
import types
from typing import Any

import gevent
import gevent.event
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from loadgen.recordship import ACK_MESSAGE, MESSAGE, RecordCollector, ShippingSink, WorkerIdentity

__all__ = ["install_master", "install_worker", "live_workers", "shipping_sink"]

logger = logging.getLogger(__name__)

FINAL_WAIT_S = 10.0  # after the quit message, how long the master waits for workers' last batches


class _AckSignal:
    """Wakes a worker waiting for acknowledgements (back-pressure)."""

    def __init__(self) -> None:
        self._event = gevent.event.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout_s: float) -> bool:
        self._event.clear()
        return bool(self._event.wait(timeout_s))


def install_worker(runner: WorkerRunner, rt: Any) -> None:
    """Acknowledgements from the master free the worker's budget."""
    rt.ack_signal = _AckSignal()

    def on_ack(environment: Any = None, msg: Any = None, **_: Any) -> None:
        if isinstance(rt.sink, ShippingSink):
            rt.sink.on_ack(int((msg.data or {}).get("seq", 0)))
        rt.ack_signal.set()

    runner.register_message(ACK_MESSAGE, on_ack)


def shipping_sink(runner: WorkerRunner, rt: Any) -> ShippingSink:
    signal: _AckSignal = rt.ack_signal
    return ShippingSink(
        WorkerIdentity.of_this_process(),
        send=lambda blob: runner.send_message(MESSAGE, blob),  # type: ignore[arg-type]
        wait=signal.wait,
        budget_bytes=int(rt.settings.record_buffer_mb * (1 << 20)),
    )


def _live(runner: MasterRunner) -> list[str]:
    return [c.id for c in runner.clients.all if c.state != STATE_MISSING]


def install_master(runner: MasterRunner, prefix: str, emit_lag: bool) -> RecordCollector:
    """Write every worker's records under `prefix`; make quit wait for the workers' last batches."""
    collector = RecordCollector(prefix, emit_lag=emit_lag)

    def on_batch(environment: Any = None, msg: Any = None, **_: Any) -> None:
        seq = collector.on_batch(str(msg.node_id), msg.data)
        runner.send_message(ACK_MESSAGE, {"seq": seq}, client_id=msg.node_id)

    runner.register_message(MESSAGE, on_batch)
    quitting = False

    # A worker restarted by its supervisor for the next cell can reach this master while it waits for the
    # other workers' last batches. Acknowledged, it would count as this cell's worker, hold the quit up, and
    # then take itself for connected and ignore the next master until Locust's 60 s heartbeat timeout. Left
    # unanswered, it asks again every 5 s, and one of those asks reaches the next master.
    handle_message = runner.handle_message

    def turn_away_late_workers(client_id: str, msg: Any) -> None:
        if quitting and msg.type == "client_ready" and client_id not in runner.clients:
            logger.info("worker %s connected while this master quits: left to join the next master", client_id)
            return
        handle_message(client_id, msg)

    runner.handle_message = turn_away_late_workers  # type: ignore[method-assign]

    # Locust's MasterRunner.quit sends `quit`, sleeps 0.5 s and kills the loop that receives messages: a
    # worker stopping many streams may need longer to ship its last records. Same steps, waiting until
    # every live worker's final batch is in (or FINAL_WAIT_S), once: Locust calls quit again at shutdown.
    quit_done = gevent.event.Event()

    def quit_after_last_batches(self: MasterRunner) -> None:
        nonlocal quitting
        if quitting:
            quit_done.wait(FINAL_WAIT_S + 1.0)
            return
        quitting = True
        self.stop(send_stop_to_client=False)
        for client in self.clients.all:
            self.server.send_to_client(_quit_message(client.id))
        deadline = time.monotonic() + FINAL_WAIT_S
        while collector.waiting_for(_live(self)) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        waiting = collector.waiting_for(_live(self))
        if waiting:
            names = ", ".join(sorted(waiting))
            logger.error("no last record batch from worker(s) %s after %.0f s", names, FINAL_WAIT_S)
        gevent.sleep(0.2)  # the workers' final stats reports
        quit_done.set()
        self.greenlet.kill(block=True)

    runner.quit = types.MethodType(quit_after_last_batches, runner)  # type: ignore[method-assign]
    return collector


def live_workers(runner: MasterRunner) -> list[str]:
    return _live(runner)


def _quit_message(client_id: str) -> Any:
    from locust.rpc import Message

    return Message("quit", None, client_id)
