"""Minimal HTTP/1.1 server protocol for asyncio/uvloop: keep-alive, Content-Length bodies, chunked responses.

Transport only: it frames requests and responses and hands each `Request` to a handler; the handler
answers with `send()` or streams with `start_stream()` / `write_chunk()` / `end_stream()`. Requests on
one connection are served in order; bytes that arrive while a response is in flight wait in the buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol, cast

__all__ = ["Connection", "Handler", "Request"]

MAX_HEAD_BYTES = 64 * 1024
_JSON = b"application/json"
_date_cache: tuple[int, bytes] = (0, b"")


def _date_header() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


@dataclass
class Request:
    """One parsed request; `read_ns` is the clock when its last byte was read."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    read_ns: int
    keep_alive: bool


class Handler(Protocol):
    def handle(self, conn: Connection, request: Request) -> None: ...

    def error_body(self, status: int, message: str) -> bytes: ...


class Connection(asyncio.Protocol):
    """One client connection. `on_lost` (set by the handler) runs if the peer goes away mid-response."""

    def __init__(self, handler: Handler, max_body_bytes: int, clock_ns: Callable[[], int]) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.clock_ns = clock_ns
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.closed = False
        self.keep_alive = True
        self.on_lost: Callable[[], None] | None = None
        self._drained: asyncio.Future[None] | None = None

    # asyncio.Protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self.on_lost is not None:
            callback, self.on_lost = self.on_lost, None
            callback()

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its low-water mark."""
        if self._drained is not None:
            await self._drained

    # request framing
    def _next_request(self) -> None:
        while not self.busy and not self.closed:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self._fail(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request header fields too large")
                return
            try:
                method, path, version, headers = _parse_head(bytes(self.buffer[:end]))
                length = int(headers.get("content-length", "0"))
                if length < 0:
                    raise ValueError("negative Content-Length")
            except ValueError as exc:
                self._fail(HTTPStatus.BAD_REQUEST, f"Invalid HTTP request: {exc}")
                return
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._fail(HTTPStatus.LENGTH_REQUIRED, "Chunked request bodies are not supported; send Content-Length")
                return
            if length > self.max_body_bytes:
                self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Request body exceeds {self.max_body_bytes} bytes")
                return
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            conn_header = headers.get("connection", "").lower()
            self.keep_alive = conn_header != "close" if version == "HTTP/1.1" else conn_header == "keep-alive"
            self.busy = True
            request = Request(method, path, headers, body, self.clock_ns(), self.keep_alive)
            try:
                self.handler.handle(self, request)
            except Exception as exc:  # the server must never die on input
                if self.busy and not self.closed:
                    self.send(500, self.handler.error_body(500, f"Internal server error: {exc!r}"))

    def _fail(self, status: int, message: str) -> None:
        self.keep_alive = False
        self.busy = True
        self.send(status, self.handler.error_body(status, message))

    # responses
    def _head(self, status: int, content_type: bytes, extra: list[tuple[bytes, bytes]]) -> list[bytes]:
        lines = [
            b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()),
            b"date: " + _date_header() + b"\r\nserver: uvicorn\r\n",
            b"content-type: " + content_type + b"\r\n",
        ]
        lines += [name + b": " + value + b"\r\n" for name, value in extra]
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        return lines

    def send(
        self, status: int, body: bytes, content_type: bytes = _JSON, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Write a complete response and finish the request."""
        if self.transport is None or self.closed:
            return
        lines = self._head(status, content_type, extra or [])
        lines.append(b"content-length: %d\r\n\r\n" % len(body))
        lines.append(body)
        self.transport.write(b"".join(lines))
        self.finish()

    def start_stream(self, content_type: bytes, extra: list[tuple[bytes, bytes]]) -> None:
        """Write a 200 head for a chunked (streamed) body."""
        if self.transport is None or self.closed:
            return
        lines = self._head(200, content_type, extra)
        lines.append(b"transfer-encoding: chunked\r\n\r\n")
        self.transport.write(b"".join(lines))

    def write_chunk(self, data: bytes) -> None:
        if self.transport is not None and not self.closed and data:
            self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))

    def end_stream(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(b"0\r\n\r\n")
        self.finish()

    def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a crashing server would."""
        self.on_lost = None
        if self.transport is None or self.closed:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()
        self.closed = True

    def finish(self) -> None:
        """The current response is complete: close, or serve the next buffered request."""
        self.busy = False
        self.on_lost = None
        if self.transport is None or self.closed:
            return
        if not self.keep_alive:
            self.transport.close()
            self.closed = True
            return
        if self.buffer:
            self._next_request()


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"bad request line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1].split("?", 1)[0], parts[2], headers
