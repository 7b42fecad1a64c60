"""One generation response in flight, and the three clocks that drive token emission.

`Stream` turns "token k is ready now" into bytes on the socket (SSE events or, at the end, a JSON body)
and applies the request's injected fault. Who says "ready now" depends on the mode:
`EngineDriver` (the roofline engine's steps), `FixedDriver` (first token X ms after the request was
read, then one every Y ms) or `firehose` (as fast as the socket drains).
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass

from simulator.engine import Engine
from simulator.http import Connection
from simulator.metrics import EmissionLagLog, ServerMetrics
from simulator.protocol import error_body
from simulator.render import DONE_EVENT, EventRenderer
from simulator.textgen import Generation

__all__ = ["EngineDriver", "FixedDriver", "Stream", "firehose", "sleep_until_ns"]

SSE_TYPE = b"text/event-stream; charset=utf-8"
MALFORMED_SSE_LINE = b'data {"malformed": "missing colon after the field name"}\n\n'
NON_JSON_LINE = b"data: this line is not JSON\n\n"
_SPIN_NS = 2_000_000  # below this, yield to the loop instead of sleeping: loop timers have ~1 ms resolution


async def sleep_until_ns(due_ns: int, clock_ns: Callable[[], int]) -> None:
    """Sleep until `clock_ns() >= due_ns` with sub-millisecond precision (coarse sleep, then yield-spin)."""
    while True:
        remaining = due_ns - clock_ns()
        if remaining <= 0:
            return
        if remaining > _SPIN_NS:
            await asyncio.sleep((remaining - _SPIN_NS + 500_000) / 1e9)
        else:
            await asyncio.sleep(0)


@dataclass
class StreamContext:
    """Server-wide collaborators a stream reports to."""

    metrics: ServerMetrics
    clock_ns: Callable[[], int]
    lag_log: EmissionLagLog | None
    stall_ns: int
    stamp_emit_ns: bool  # fixed-timing mode: add "sim_emit_ns" to every JSON event


class Stream:
    """A response being produced token by token; `emit(due_ns)` sends the next token."""

    def __init__(
        self,
        ctx: StreamContext,
        conn: Connection,
        renderer: EventRenderer,
        generation: Generation,
        streaming: bool,
        include_usage: bool,
        read_ns: int,
        fault: str | None,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.ctx = ctx
        self.conn = conn
        self.renderer = renderer
        self.texts = generation.token_texts
        self.total = len(self.texts)
        self.finish_reason = generation.finish_reason
        self.stop_reason = generation.stop_reason
        self.streaming = streaming
        self.include_usage = include_usage
        self.read_ns = read_ns
        self.fault = fault
        self.fault_at = min(self.total - 1, max(1, self.total // 2))
        self.extra_headers = extra_headers
        self.emitted = 0
        self.last_emit_ns = 0
        self.done = False
        self.stalled = False
        self.pending: list[bytes] = []
        self.batch: list[bytes] | None = None  # firehose: collect events, write them in one go
        self.after_stall: Callable[[], None] | None = None
        self.on_done: Callable[[Stream], None] | None = None
        self.choice_extras: dict[str, object] | None = None  # non-streaming: echo/logprobs fields of the choice
        conn.on_lost = self._peer_lost

    def start(self) -> None:
        if self.streaming:
            self.conn.start_stream(SSE_TYPE, self.extra_headers)

    def _peer_lost(self) -> None:
        self._finish("abort")

    def _finish(self, reason: str) -> None:
        if self.done:
            return
        self.done = True
        self.ctx.metrics.success_by_reason[reason] = self.ctx.metrics.success_by_reason.get(reason, 0) + 1
        if self.on_done is not None:
            self.on_done(self)

    def _deliver(self, data: bytes) -> None:
        if self.stalled:
            self.pending.append(data)
        elif self.batch is not None:
            self.batch.append(data)
        else:
            self.conn.write_chunk(data)

    def flush(self) -> None:
        """Write events collected in batch mode."""
        if self.batch:
            data, self.batch = b"".join(self.batch), []
            self.conn.write_chunk(data)

    def _unstall(self) -> None:
        self.stalled = False
        data, self.pending = b"".join(self.pending), []
        self.conn.write_chunk(data)
        if self.after_stall is not None:
            self.after_stall()

    def _fault_now(self) -> bool:
        """Apply a mid-stream fault due at this token; True if the response ended."""
        fault = self.fault
        self.flush()
        if fault == "reset":
            self.conn.reset()
            self._finish("abort")
            return True
        if fault == "error_event":
            if self.streaming:
                # vLLM renders streaming errors with json.dumps (spaces after separators), unlike chunks.
                err: dict[str, object] = {"message": "Simulated engine failure mid-stream (injected)"}
                err |= {"type": "InternalServerError", "param": None, "code": 500}
                self._deliver(b"data: " + json.dumps({"error": err}).encode() + b"\n\n" + DONE_EVENT)
                self.conn.end_stream()
            else:
                body = error_body(500, "Simulated engine failure (injected)", "InternalServerError")
                self.conn.send(500, body, extra=self.extra_headers)
            self._finish("error")
            return True
        if fault == "stall":
            self.stalled = True
            asyncio.get_running_loop().call_later(self.ctx.stall_ns / 1e9, self._unstall)
        elif fault in ("malformed_sse", "non_json") and self.streaming:
            self._deliver(MALFORMED_SSE_LINE if fault == "malformed_sse" else NON_JSON_LINE)
        elif fault in ("malformed_sse", "non_json"):
            self.fault = "non_json_body"
        return False

    def emit(self, due_ns: int | None) -> bool:
        """Send the next token now; `due_ns` is when it was scheduled (None: no schedule). True when finished."""
        if self.done:
            return True
        k = self.emitted
        if k == self.fault_at and self.fault is not None and self._fault_now():
            return True
        ctx = self.ctx
        metrics = ctx.metrics
        now = ctx.clock_ns()
        if due_ns is not None and not self.stalled:
            lag = now - due_ns
            metrics.emission_lag.observe(lag / 1e9)
            if ctx.lag_log is not None:
                ctx.lag_log.add(due_ns, lag)
        if k == 0:
            metrics.ttft.observe((now - self.read_ns) / 1e9)
            metrics.prompt_tokens += self.renderer.prompt_tokens
        else:
            metrics.itl.observe((now - self.last_emit_ns) / 1e9)
        self.last_emit_ns = now
        self.emitted = k + 1
        metrics.generation_tokens += 1
        last = self.emitted == self.total
        if self.streaming:
            stamp = now if ctx.stamp_emit_ns else None
            r = self.renderer
            out = r.role_event(stamp) if (k == 0 and r.chat) else b""
            tail = r.finish_tail(self.finish_reason, self.stop_reason) if last else None
            out += r.token_event(self.texts[k], self.emitted, tail, stamp, last and not self.include_usage)
            if last:
                if self.include_usage:
                    out += r.usage_event(self.total, stamp)
                out += DONE_EVENT
            self._deliver(out)
        if last:
            self._complete(now)
        return last

    def _complete(self, now: int) -> None:
        self.ctx.metrics.e2e.observe((now - self.read_ns) / 1e9)
        if self.stalled:
            self.after_stall = lambda: self._respond_end()
        else:
            self._respond_end()
        self._finish(self.finish_reason)

    def _respond_end(self) -> None:
        if self.conn.closed:
            return
        if self.streaming:
            self.flush()
            self.conn.end_stream()
        elif self.fault == "non_json_body":
            self.conn.send(200, b"this body is not JSON", extra=self.extra_headers)
        else:
            text = "".join(self.texts)
            body = self.renderer.full_response(
                text, self.finish_reason, self.stop_reason, self.total, self.choice_extras
            )
            self.conn.send(200, body, extra=self.extra_headers)

    def send_zero_tokens(self) -> None:
        """Zero-token completion: a well-formed 200 response that carries no output token."""
        r = self.renderer
        if self.streaming:
            stamp = self.ctx.clock_ns() if self.ctx.stamp_emit_ns else None
            out = r.role_event(stamp) if r.chat else b""
            out += r.token_event("", 0, r.finish_tail("stop", None), stamp, not self.include_usage)
            if self.include_usage:
                out += r.usage_event(0, stamp)
            self.conn.write_chunk(out + DONE_EVENT)
            self.conn.end_stream()
        else:
            self.conn.send(200, r.full_response("", "stop", None, 0), extra=self.extra_headers)
        self._finish("stop")


class FixedDriver:
    """Fixed timing: token k of a request is due at read + ttft + k × itl, whatever the load."""

    def __init__(self, ttft_ns: int, itl_ns: int, clock_ns: Callable[[], int]) -> None:
        self.ttft_ns = ttft_ns
        self.itl_ns = itl_ns
        self.clock_ns = clock_ns
        self.heap: list[tuple[int, int, Stream]] = []
        self.counter = 0
        self.active = 0
        self.wake = asyncio.Event()

    def track(self, stream: Stream) -> None:
        """Count `stream` as running (for the gauges) without scheduling it."""
        self.active += 1
        stream.on_done = self._done

    def add(self, stream: Stream) -> None:
        self.track(stream)
        self._push(stream.read_ns + self.ttft_ns, stream)

    def _done(self, stream: Stream) -> None:
        self.active -= 1

    def _push(self, due_ns: int, stream: Stream) -> None:
        self.counter += 1
        heapq.heappush(self.heap, (due_ns, self.counter, stream))
        self.wake.set()

    async def run(self) -> None:
        heap, clock = self.heap, self.clock_ns
        while True:
            if not heap:
                self.wake.clear()
                await self.wake.wait()
                continue
            await sleep_until_ns(heap[0][0], clock)
            while heap and heap[0][0] <= clock():
                due, _, stream = heapq.heappop(heap)
                if not stream.emit(due):
                    heapq.heappush(heap, (stream.read_ns + self.ttft_ns + stream.emitted * self.itl_ns, due, stream))


class EngineDriver:
    """Roofline timing: runs `Engine.step()` in real time and emits each step's tokens when it ends.

    By default a step starts when the previous one's tokens are written, so host time (writes, request
    parsing, a busy CPU) adds to every step. `anchored`: back-to-back steps follow the model's timeline
    instead — a step ends its modelled duration after the previous one's modelled end — so host time
    shorter than a step is absorbed; a step that starts more than its own duration late drops the
    timeline and starts a new one (`sim:engine_step_misses_total`).
    """

    def __init__(
        self, engine: Engine, metrics: ServerMetrics, clock_ns: Callable[[], int], anchored: bool = False
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.clock_ns = clock_ns
        self.anchored = anchored
        self.streams: dict[int, Stream] = {}
        self.next_id = 0
        self.wake = asyncio.Event()

    def add(self, stream: Stream) -> None:
        self.next_id += 1
        seq_id = self.next_id
        self.streams[seq_id] = stream
        stream.on_done = lambda s: self._done(seq_id)
        self.engine.add(seq_id, stream.renderer.prompt_tokens, stream.total)
        self.wake.set()

    def _done(self, seq_id: int) -> None:
        if self.streams.pop(seq_id, None) is not None:
            self.engine.abort(seq_id)  # no-op when the engine already finished it

    def _due(self, start: int, last_due: int | None, duration_ns: int) -> int:
        """When the step started at `start` ends; observes how late it started (host time)."""
        if last_due is None:
            return start + duration_ns
        late = max(0, start - last_due)
        self.metrics.step_overrun.observe(late / 1e9)
        if not self.anchored:
            return start + duration_ns
        if late > duration_ns:
            self.metrics.step_misses += 1
            return start + duration_ns
        return last_due + duration_ns

    async def run(self) -> None:
        engine, clock, metrics = self.engine, self.clock_ns, self.metrics
        last_due: int | None = None  # modelled end of the previous step, while steps run back to back
        while True:
            if not engine.has_work():
                last_due = None
                self.wake.clear()
                await self.wake.wait()
                continue
            start = clock()
            result = engine.step()
            metrics.preemptions = engine.num_preemptions
            if result.num_scheduled_tokens == 0:
                last_due = None
                await asyncio.sleep(0.001)  # nothing fits right now; wait for an abort to free KV
                continue
            metrics.engine_step.observe(result.duration_s)
            due = last_due = self._due(start, last_due, int(result.duration_s * 1e9))
            await sleep_until_ns(due, clock)
            for seq_id in result.emitted:
                stream = self.streams.get(seq_id)
                if stream is not None:
                    stream.emit(due)


async def firehose(stream: Stream, batch_tokens: int = 64) -> None:
    """Write all events as fast as the socket accepts them, honouring transport back-pressure."""
    conn = stream.conn
    stream.batch = []
    while not stream.done:
        for _ in range(batch_tokens):
            if stream.emit(None):
                return
        stream.flush()
        await conn.drain()
        if conn.closed:
            return
        await asyncio.sleep(0)
