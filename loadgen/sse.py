"""Server-sent events framing: a pure, incremental decoder from bytes to (arrival time, data) events.

It knows nothing about HTTP or OpenAI payloads; the stream loop hands it lines (or raw chunks) and the
time they arrived, and gets back completed events stamped with the arrival of their first data line.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEEvent", "SSEProtocolError", "preview"]

# Field names an SSE stream may carry (WHATWG HTML, "Interpreting an event stream").
_KNOWN_FIELDS = frozenset((b"event", b"id", b"retry"))


class SSEProtocolError(ValueError):
    """A line that is not SSE. The spec would ignore it; an OpenAI-compatible stream never sends one,
    so a load test treats it as a broken response instead of silently dropping data."""


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event: its `data` (multi-line data joined by b"\\n"), the `event` type if one was
    named, and `t`, the arrival time of its first data line on the caller's clock."""

    data: bytes
    t: float
    event: bytes | None = None


class SSEDecoder:
    """Line-level SSE decoder. Feed complete lines (with or without their line ending) in order.

    `feed_line` returns the event a blank line completes, else None. It never allocates for the common
    OpenAI shape (one `data:` line, then a blank line) beyond slicing the payload out of the line.
    """

    __slots__ = ("_data", "_event", "_t")

    def __init__(self) -> None:
        self._data: bytes | list[bytes] | None = None
        self._event: bytes | None = None
        self._t = 0.0

    def feed_line(self, line: bytes, t: float) -> SSEEvent | None:
        if line[:5] == b"data:":
            value = line[5:].strip(b"\r\n")
            if value[:1] == b" ":
                value = value[1:]
            if self._data is None:
                self._data = value
                self._t = t
            elif isinstance(self._data, list):
                self._data.append(value)
            else:
                self._data = [self._data, value]
            return None
        stripped = line.rstrip(b"\r\n")
        if not stripped:
            return self._dispatch()
        if stripped[:1] == b":":
            return None  # comment / keep-alive
        name, _, value = stripped.partition(b":")
        if name not in _KNOWN_FIELDS:
            raise SSEProtocolError(f"not an SSE line: {preview(stripped)}")
        if name == b"event":
            self._event = value.lstrip(b" ")
        return None

    @property
    def idle(self) -> bool:
        """No event in progress (between events)."""
        return self._data is None and self._event is None

    def flush(self) -> SSEEvent | None:
        """Dispatch a pending event at end of stream (a server that omits the final blank line)."""
        return self._dispatch()

    def _dispatch(self) -> SSEEvent | None:
        data = self._data
        event = self._event
        self._data = None
        self._event = None
        if data is None:
            return None
        if isinstance(data, list):
            data = b"\n".join(data)
        return SSEEvent(data, self._t, event)


def preview(raw: bytes, limit: int = 80) -> str:
    text = raw[:limit].decode("utf-8", "replace")
    return repr(text + ("…" if len(raw) > limit else ""))
