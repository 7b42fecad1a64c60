"""Tiny raw-socket HTTP/1.1 client for simulator tests: exact bytes, per-read arrival times, resets."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes  # de-chunked
    t_send: float
    t_send_ns: int  # time.monotonic_ns() just before sending: the clock of the server's sim_emit_ns
    reads: list[tuple[float, bytes]] = field(default_factory=list)  # (perf_counter, raw bytes) per recv
    reset: bool = False

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.body)

    def events(self) -> list[bytes]:
        return [e for e in self.body.split(b"\n\n") if e]

    def data_json(self) -> list[dict]:  # type: ignore[type-arg]
        return [json.loads(e[6:]) for e in self.events() if e.startswith(b"data: {")]


def _dechunk(raw: bytes) -> bytes:
    out = bytearray()
    while raw:
        size_line, sep, rest = raw.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        raw = rest[size + 2 :]
    return bytes(out)


def call(
    url: str,
    method: str,
    path: str,
    body: object | bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> Reply:
    """Send one request on a fresh connection (Connection: close) and read the reply to EOF."""
    parts = urlsplit(url)
    payload = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    head = f"{method} {path} HTTP/1.1\r\nhost: {parts.hostname}\r\nconnection: close\r\n"
    head += f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reads: list[tuple[float, bytes]] = []
    reset = False
    t_send_ns = time.monotonic_ns()
    t_send = time.perf_counter()
    sock.sendall(head.encode() + b"\r\n" + payload)
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            reads.append((time.perf_counter(), chunk))
    except ConnectionResetError:
        reset = True
    finally:
        sock.close()
    raw = b"".join(c for _, c in reads)
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0] else 0
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    payload_out = _dechunk(rest) if hdrs.get("transfer-encoding") == "chunked" else rest
    return Reply(status, hdrs, payload_out, t_send, t_send_ns, reads, reset)


def metric(url: str, name: str) -> float:
    """Sum of all samples of `name` in /metrics."""
    text = call(url, "GET", "/metrics").body.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))
