"""The one stream loop for both APIs: lines in, timestamps and token counts out.

Transport-free: it reads through a `readline()` callable and stamps with an injected `clock()`, so the
same loop runs on a geventhttpclient response in Locust and on canned bytes with a scripted clock in
tests. Per event it does the minimum: timestamp, one orjson parse, one dict walk, two list appends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from loadgen.apis import LLMApi
from loadgen.sse import SSEDecoder, SSEEvent, SSEProtocolError, preview
from loadgen.timing import RequestTiming

__all__ = ["MAX_EVENT_BYTES", "StreamResult", "read_chunks", "read_stream"]

# An OpenAI stream's events are a few hundred bytes (some KB with logprobs); a line that grows past this
# without ending is a broken server, not a slow one, and must not be buffered without bound.
MAX_EVENT_BYTES = 1 << 20


@dataclass(slots=True)
class StreamResult:
    """What one streamed response told us. `error` is the first protocol-level failure, if any."""

    timing: RequestTiming
    done: bool = False
    finish_reason: str | None = None
    usage_tokens: int | None = None
    prompt_tokens: int | None = None
    error: str | None = None
    text_parts: list[str] | None = None
    emit_lag_us: list[float] | None = None
    last_usage: int = 0  # continuous usage seen so far (cumulative completion_tokens)
    usage_suspect: bool = False  # usage contradicted max_tokens or the events: tokens were counted instead
    textless: list[int] | None = None  # indexes of token events counted from usage alone (no text)

    @property
    def tokens_source(self) -> str:
        if self.usage_suspect:
            return "suspect"
        return "usage" if self.usage_tokens is not None else "events"

    @property
    def output_tokens(self) -> int:
        """Server usage when sent and believable; otherwise the count of token-carrying events (never
        re-tokenized)."""
        if self.usage_tokens is not None and not self.usage_suspect:
            return self.usage_tokens
        return self.timing.event_tokens

    def distrust_usage(self) -> None:
        """The server's usage cannot be right: count one token per event that carried text instead."""
        self.usage_suspect = True
        arrivals, counts = self.timing.arrivals, self.timing.counts
        for i in reversed(self.textless or []):
            del arrivals[i], counts[i]
        counts[:] = [1] * len(arrivals)

    @property
    def ended_cleanly(self) -> bool:
        return self.done or self.finish_reason is not None


def _error_message(obj: dict[str, Any]) -> str | None:
    err = obj.get("error")
    if err is None and obj.get("object") == "error":
        err = obj
    if err is None:
        return None
    if isinstance(err, dict):
        msg = err.get("message") or err.get("type") or orjson.dumps(err).decode()
        code = err.get("code")
        return f"{msg} (code {code})" if code is not None else str(msg)
    return str(err)


def read_stream(
    readline: Callable[[], bytes],
    clock: Callable[[], float],
    api: LLMApi,
    result: StreamResult,
    *,
    collect_text: bool = False,
    emit_clock_ns: Callable[[], int] | None = None,
) -> None:
    """Consume an SSE body line by line (each line stamped when `readline` returns it); see `read_chunks`."""

    def next_chunk() -> tuple[bytes, float]:
        line = readline()
        return line, clock()  # timestamp before any parsing

    emit_ns = (lambda _t: emit_clock_ns()) if emit_clock_ns is not None else None
    read_chunks(next_chunk, api, result, collect_text=collect_text, emit_ns=emit_ns)


def read_chunks(
    next_chunk: Callable[[], tuple[bytes, float]],
    api: LLMApi,
    result: StreamResult,
    *,
    collect_text: bool = False,
    emit_ns: Callable[[float], int] | None = None,
    max_event_bytes: int = MAX_EVENT_BYTES,
) -> None:
    """Consume an SSE body until `[DONE]`, end of body, or the first protocol error (set on `result`).

    `next_chunk()` returns the next bytes of the body (any slice: part of a line, several events) with
    their arrival time, taken before any parsing, and b"" at the end of the body. An event is stamped
    with the arrival of the bytes that complete its first data line.

    Transport errors (reset, timeout) propagate to the caller; `result` then still holds everything
    received before them. `emit_ns`, when given, maps a chunk's arrival time onto the simulator's clock
    (ns), and the loop records that arrival minus the event's `sim_emit_ns` for each event that carries it
    (benchmarks only).
    """
    decoder = SSEDecoder()
    feed = decoder.feed_line
    handle = _handle
    loads = orjson.loads
    extract = api.extract_text
    arrivals = result.timing.arrivals
    counts = result.timing.counts
    if collect_text:
        result.text_parts = []
    if emit_ns is not None:
        result.emit_lag_us = []
    arrival_ns = 0
    tail = b""
    while True:
        chunk, t = next_chunk()
        if emit_ns is not None:
            arrival_ns = emit_ns(t)
        if not chunk:
            if tail:
                # A last line without its newline still counts.
                try:
                    event = feed(tail, t)
                except SSEProtocolError as exc:
                    result.error = f"malformed SSE: {exc}"
                    return
                tail = b""
                if event is not None and handle(
                    event, loads, extract, result, arrivals, counts, collect_text, arrival_ns
                ):
                    return
            event = decoder.flush()
            if event is not None:
                handle(event, loads, extract, result, arrivals, counts, collect_text, arrival_ns)
            return
        if not tail and chunk[:6] == b"data: " and decoder.idle:
            # The usual shapes: one whole single-line event per read, or (a fast server, a busy client)
            # several whole ones; each is `data: <json>` and a blank line, so no line decoder is needed.
            nl = chunk.find(b"\n")
            if nl == len(chunk) - 2 and chunk[-1:] == b"\n" and chunk[nl - 1 : nl] != b"\r":
                if handle(SSEEvent(chunk[6:-2], t), loads, extract, result, arrivals, counts, collect_text, arrival_ns):
                    return
                continue
            if chunk[-2:] == b"\n\n" and b"\r" not in chunk:
                parts = chunk[:-2].split(b"\n\n")
                n = len(parts)
                # Every part one line (two newlines per part in all), each after the first a `data: ` line.
                if chunk.count(b"\n") == 2 * n and chunk.count(b"\n\ndata: ") == n - 1:
                    for part in parts:
                        if handle(
                            SSEEvent(part[6:], t), loads, extract, result, arrivals, counts, collect_text, arrival_ns
                        ):
                            return
                    continue
        buf = tail + chunk if tail else chunk
        pos = 0
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            try:
                event = feed(buf[pos : nl + 1], t)
            except SSEProtocolError as exc:
                result.error = f"malformed SSE: {exc}"
                return
            pos = nl + 1
            if event is None:
                continue
            if handle(event, loads, extract, result, arrivals, counts, collect_text, arrival_ns):
                return
        tail = buf[pos:] if pos < len(buf) else b""
        if len(tail) > max_event_bytes:
            result.error = f"malformed SSE: a line longer than {max_event_bytes} bytes without an end"
            return


def _handle(
    event: SSEEvent,
    loads: Callable[[bytes], Any],
    extract: Callable[[dict[str, Any]], str | None],
    result: StreamResult,
    arrivals: list[float],
    counts: list[int],
    collect_text: bool,
    arrival_ns: int,
) -> bool:
    """Account one SSE event; True when the stream is over (`[DONE]` or a protocol error).

    `arrival_ns` is the emission-lag clock's reading for the event's bytes (used only when
    `result.emit_lag_us` is a list, i.e. emission lags are being recorded)."""
    data = event.data
    if data == b"[DONE]":
        result.done = True
        return True
    try:
        obj = loads(data)
    except orjson.JSONDecodeError:
        result.error = f"malformed SSE: non-JSON data {preview(data)}"
        return True
    if type(obj) is not dict:
        result.error = f"malformed SSE: data is not a JSON object {preview(data)}"
        return True
    if event.event == b"error" or "error" in obj or obj.get("object") == "error":
        result.error = f"error event in stream: {_error_message(obj) or preview(data)}"
        return True
    usage = obj.get("usage")
    choices = obj.get("choices")
    if choices:
        choice = choices[0]
        text = extract(choice)
        k = 1 if text else 0
        if usage:
            # Continuous usage is cumulative; the increment is this event's token count.
            completion = usage.get("completion_tokens") or 0
            last_usage = result.last_usage
            if completion > last_usage:
                k = completion - last_usage
            result.last_usage = completion
        if k:
            arrivals.append(event.t)
            counts.append(k)
            if not text:
                if result.textless is None:
                    result.textless = []
                result.textless.append(len(arrivals) - 1)
            if collect_text and text:
                result.text_parts.append(text)  # type: ignore[union-attr]
        reason = choice.get("finish_reason")
        if reason:
            result.finish_reason = reason
    if usage:
        result.usage_tokens = usage.get("completion_tokens")
        result.prompt_tokens = usage.get("prompt_tokens", result.prompt_tokens)
        if not choices:
            result.last_usage = result.usage_tokens or result.last_usage
    if result.emit_lag_us is not None and "sim_emit_ns" in obj:
        result.emit_lag_us.append((arrival_ns - obj["sim_emit_ns"]) / 1000.0)
    return False
