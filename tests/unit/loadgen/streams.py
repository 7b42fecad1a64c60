"""Canned SSE bodies and a scripted clock for driving the stream loop and the client without a server."""

from __future__ import annotations

import json
from typing import Any


def sse(obj: Any) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"data: {data}\n\n".encode()


def completion_chunk(text: str, completion_tokens: int | None = None, finish: str | None = None) -> dict:
    chunk: dict[str, Any] = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
    if completion_tokens is not None:
        chunk["usage"] = {"prompt_tokens": 10, "completion_tokens": completion_tokens}
    return chunk


def chat_chunk(delta: dict, completion_tokens: int | None = None, finish: str | None = None) -> dict:
    chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if completion_tokens is not None:
        chunk["usage"] = {"prompt_tokens": 10, "completion_tokens": completion_tokens}
    return chunk


def usage_only(completion_tokens: int, prompt_tokens: int = 10) -> dict:
    return {"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


class ScriptedStream:
    """readline() returns the next canned line and moves the clock to that line's scripted arrival time.

    `events` is a list of (arrival_s, raw event bytes); each event's lines arrive at the same instant,
    like one TCP segment. Reading past the end returns b"" (end of body) or raises `end_with`.
    """

    def __init__(self, events: list[tuple[float, bytes]], end_with: BaseException | None = None) -> None:
        self.lines: list[tuple[float, bytes]] = []
        for t, raw in events:
            self.lines += [(t, line) for line in raw.splitlines(keepends=True)]
        self.now = 0.0
        self.pos = 0
        self.end_with = end_with
        self.released = False

    def readline(self, sep: bytes = b"\n") -> bytes:
        if self.pos >= len(self.lines):
            if self.end_with is not None:
                raise self.end_with
            return b""
        self.now, line = self.lines[self.pos]
        self.pos += 1
        return line

    def clock(self) -> float:
        return self.now
