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
from loadgen.sse import SSEDecoder, SSEProtocolError, preview
from loadgen.timing import RequestTiming

__all__ = ["StreamResult", "read_stream"]


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

    @property
    def tokens_source(self) -> str:
        return "usage" if self.usage_tokens is not None else "events"

    @property
    def output_tokens(self) -> int:
        """Server usage when sent; otherwise the count of token-carrying events (never re-tokenized)."""
        return self.usage_tokens if self.usage_tokens is not None else self.timing.event_tokens

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
    """Consume an SSE body until `[DONE]`, end of body, or the first protocol error (set on `result`).

    Transport errors (reset, timeout) propagate to the caller; `result` then still holds everything
    received before them. `emit_clock_ns`, when given, records client arrival minus the simulator's
    `sim_emit_ns` for each event that carries it (benchmarks only).
    """
    decoder = SSEDecoder()
    feed = decoder.feed_line
    loads = orjson.loads
    extract = api.extract_text
    arrivals = result.timing.arrivals
    counts = result.timing.counts
    if collect_text:
        result.text_parts = []
    if emit_clock_ns is not None:
        result.emit_lag_us = []
    last_usage = 0
    eof = False
    while not eof:
        line = readline()
        t = clock()  # timestamp before any parsing
        arrival_ns = emit_clock_ns() if emit_clock_ns is not None else 0
        if line:
            try:
                event = feed(line, t)
            except SSEProtocolError as exc:
                result.error = f"malformed SSE: {exc}"
                return
            if event is None:
                continue
        else:
            eof = True
            event = decoder.flush()
            if event is None:
                return
        data = event.data
        if data == b"[DONE]":
            result.done = True
            return
        try:
            obj = loads(data)
        except orjson.JSONDecodeError:
            result.error = f"malformed SSE: non-JSON data {preview(data)}"
            return
        if type(obj) is not dict:
            result.error = f"malformed SSE: data is not a JSON object {preview(data)}"
            return
        if event.event == b"error" or "error" in obj or obj.get("object") == "error":
            result.error = f"error event in stream: {_error_message(obj) or preview(data)}"
            return
        usage = obj.get("usage")
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            text = extract(choice)
            k = 1 if text else 0
            if usage:
                # Continuous usage is cumulative; the increment is this event's token count.
                completion = usage.get("completion_tokens") or 0
                if completion > last_usage:
                    k = completion - last_usage
                last_usage = completion
            if k:
                arrivals.append(event.t)
                counts.append(k)
                if collect_text and text:
                    result.text_parts.append(text)  # type: ignore[union-attr]
            reason = choice.get("finish_reason")
            if reason:
                result.finish_reason = reason
        if usage:
            result.usage_tokens = usage.get("completion_tokens")
            result.prompt_tokens = usage.get("prompt_tokens", result.prompt_tokens)
            if not choices:
                last_usage = result.usage_tokens or last_usage
        if emit_clock_ns is not None and "sim_emit_ns" in obj:
            result.emit_lag_us.append((arrival_ns - obj["sim_emit_ns"]) / 1000.0)  # type: ignore[union-attr]
