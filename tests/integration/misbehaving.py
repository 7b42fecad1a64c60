"""Small hand-written HTTP servers on 127.0.0.1:0 that misbehave in one exact way each.

A `Behaviour` gets the parsed request and the raw socket and writes whatever bytes its case needs; the
server records every request's headers (to see where a key went) and closes each connection after one
response, so every case is a fresh, exactly known exchange. Every write loop is bounded by `stop`.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.body) if self.body else {}


Behaviour = Callable[[Request, socket.socket, threading.Event], None]


@dataclass
class Server:
    url: str
    requests: list[Request] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def posts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]


def _read_request(conn: socket.socket) -> Request | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path = lines[0].split(" ")[:2]
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, path, headers, body)


@contextmanager
def serve(behaviour: Behaviour) -> Iterator[Server]:
    """Run `behaviour` for every request until the block ends; yields the server (url, recorded requests)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    server = Server(f"http://127.0.0.1:{listener.getsockname()[1]}")

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                request = _read_request(conn)
                if request is None:
                    return
                server.requests.append(request)
                behaviour(request, conn, server.stop)
            except OSError:
                pass  # the client gave up (deadline, stop): expected for most cases

    def accept() -> None:
        while not server.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        thread.join(timeout=5)
        listener.close()


# -- the events a well-behaved completions stream is made of -----------------------------------------------


def token_event(text: str = "x", usage: int | None = None) -> bytes:
    obj: dict[str, object] = {"choices": [{"index": 0, "text": text, "finish_reason": None}]}
    if usage is not None:
        obj["usage"] = {"prompt_tokens": 5, "completion_tokens": usage, "total_tokens": 5 + usage}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def finish_event(usage: int) -> bytes:
    obj = {
        "choices": [{"index": 0, "text": "", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": usage, "total_tokens": 5 + usage},
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def good_stream(tokens: int = 3) -> bytes:
    return b"".join(token_event(usage=i + 1) for i in range(tokens)) + finish_event(tokens) + b"data: [DONE]\n\n"


def well_behaved(request: Request, conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(SSE_HEAD + good_stream())


# -- the misbehaviours ------------------------------------------------------------------------------------


def trickle(request: Request, conn: socket.socket, stop: threading.Event) -> None:
    """Never silent for long, never finished: one byte every 0.2 s (for at most a minute)."""
    conn.sendall(SSE_HEAD)
    for byte in (good_stream() * 100)[:300]:
        if stop.wait(0.2):
            return
        conn.sendall(bytes([byte]))


def endless_line(request: Request, conn: socket.socket, stop: threading.Event) -> None:
    """A data line that never ends: megabytes of one JSON string (at most 64 MiB)."""
    conn.sendall(SSE_HEAD + b'data: {"choices": [{"index": 0, "text": "')
    block = b"a" * 65536
    for _ in range(1024):
        if stop.is_set():
            return
        conn.sendall(block)


def done_without_newline(request: Request, conn: socket.socket, stop: threading.Event) -> None:
    """The whole response in one write with the headers; the final `data: [DONE]` has no newline."""
    conn.sendall(SSE_HEAD + good_stream().rstrip(b"\n"))


def json_200(request: Request, conn: socket.socket, stop: threading.Event) -> None:
    body = json.dumps({"choices": [{"index": 0, "text": "abc", "finish_reason": "length"}]}).encode()
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    conn.sendall(head.encode() + b"connection: close\r\n\r\n" + body)


def usage_lie(request: Request, conn: socket.socket, stop: threading.Event) -> None:
    """Three token events, then a usage of 1000 completion tokens (max_tokens is far lower)."""
    conn.sendall(SSE_HEAD + token_event() * 3 + finish_event(1000) + b"data: [DONE]\n\n")


def error_after_first_token(request: Request, conn: socket.socket, stop: threading.Event) -> None:
    error = {"error": {"message": "engine died", "code": 500}}
    conn.sendall(SSE_HEAD + token_event(usage=1) + b"data: " + json.dumps(error).encode() + b"\n\n")


def too_many_requests(request: Request, conn: socket.socket, stop: threading.Event) -> None:
    body = b'{"error": "slow down"}'
    head = f"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: {len(body)}\r\n"
    conn.sendall(head.encode() + b"content-type: application/json\r\nconnection: close\r\n\r\n" + body)
