"""The epoll reactor against a real loopback HTTP server: kernel-stamped reads, keep-alive reuse, every
way a body can end, and no socket left registered however the reading user stops."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gevent
import gevent.socket
from gevent.server import StreamServer
from geventhttpclient import URL, HTTPClient

from loadgen.apis import GenerationParams, get_api
from loadgen.client import LLMClient
from loadgen.reactor import WAKE_READS, reactor

PARAMS = GenerationParams(model="m", max_new_tokens=40)
Script = Callable[[gevent.socket.socket], None]


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def event(text: str, n: int, finish: str | None = None) -> bytes:
    body = {"choices": [{"index": 0, "text": text, "finish_reason": finish}], "usage": {"completion_tokens": n}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def tokens(sock: gevent.socket.socket, n: int, gap_s: float, *, end: bool = True) -> None:
    sock.sendall(HEAD)
    for i in range(1, n + 1):
        gevent.sleep(gap_s)
        sock.sendall(chunk(event("x", i, "length" if i == n else None)))
    if end:
        sock.sendall(chunk(b"data: [DONE]\n\n"))
        sock.sendall(b"0\r\n\r\n")  # the terminator in a segment of its own, as ASGI servers send it


@contextmanager
def running_server(*scripts: Script) -> Iterator[tuple[int, list[int]]]:
    """A loopback HTTP server answering each request with the next script; yields its port and the
    client ports of the connections it accepted (one entry per connection)."""
    queue = list(scripts)
    conns: list[int] = []

    def handle(sock: gevent.socket.socket, addr: tuple[str, int]) -> None:
        conns.append(addr[1])
        buf = b""
        while queue:
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = next((int(ln.split(b":")[1]) for ln in lines if ln.startswith(b"content-length")), 0)
            while len(rest) < length:
                rest += sock.recv(65536)
            buf = rest[length:]
            queue.pop(0)(sock)

    srv = StreamServer(("127.0.0.1", 0), handle)
    srv.start()
    try:
        yield srv.server_port, conns
    finally:
        srv.stop(timeout=1)


@contextmanager
def client_for(port: int, timeout_s: float = 5.0) -> Iterator[LLMClient]:
    url = URL(f"http://127.0.0.1:{port}")
    http = HTTPClient.from_url(url, concurrency=4, network_timeout=10)
    try:
        yield LLMClient(f"http://127.0.0.1:{port}", lambda u: http, timeout_s=timeout_s)
    finally:
        http.close()


def test_a_stream_is_read_whole_stamped_by_the_kernel_and_its_connection_reused() -> None:
    with running_server(lambda s: tokens(s, 5, 0.02), lambda s: tokens(s, 3, 0.0)) as (port, conns):
        r = reactor()
        stamped_before = r.stamped
        with client_for(port) as client:
            sent = time.perf_counter()
            first = client.generate(get_api("completions"), "hi", PARAMS).record
            done = time.perf_counter()
            second = client.generate(get_api("completions"), "hi", PARAMS).record
    assert first.success and first.output_tokens == 5 and first.finish_reason == "length"
    assert second.success and second.output_tokens == 3
    assert len(conns) == 1  # the finished body left the connection reusable
    assert first.arrivals_ms == sorted(first.arrivals_ms) and len(first.arrivals_ms) == 5
    # Stamps lie between the send and the return of the call, on the perf_counter clock.
    assert 0 < first.ttft_ms <= (done - sent) * 1000 and first.e2e_ms <= (done - sent) * 1000
    if sys.platform.startswith("linux"):
        assert r.stamped > stamped_before
    assert not r._streams


def test_many_reads_between_wake_ups_keep_their_own_stamps() -> None:
    """More token reads than one wake-up batch: every event is counted, each with its own arrival."""
    n = WAKE_READS * 2 + 3
    with running_server(lambda s: tokens(s, n, 0.002)) as (port, _), client_for(port) as client:
        rec = client.generate(get_api("completions"), "hi", GenerationParams(model="m", max_new_tokens=n)).record
    assert rec.success and rec.output_tokens == n and len(rec.arrivals_ms) == n
    assert rec.arrivals_ms == sorted(rec.arrivals_ms)
    assert len(set(rec.arrivals_ms)) > n // 2  # separate reads, separate stamps (not one stamp per batch)


def test_a_body_cut_mid_stream_is_a_lost_connection() -> None:
    def cut(sock: gevent.socket.socket) -> None:
        tokens(sock, 2, 0.01, end=False)
        sock.close()

    with running_server(cut) as (port, _), client_for(port) as client:
        rec = client.generate(get_api("completions"), "hi", PARAMS).record
    assert not rec.success and rec.output_tokens == 2
    assert rec.error == "connection lost: connection closed (mid-stream)"
    assert not reactor()._streams


def test_silence_past_the_timeout_is_a_stall() -> None:
    def silent(sock: gevent.socket.socket) -> None:
        tokens(sock, 1, 0.0, end=False)
        gevent.sleep(2)

    with running_server(silent) as (port, _), client_for(port, timeout_s=0.3) as client:
        rec = client.generate(get_api("completions"), "hi", PARAMS).record
    assert not rec.success and rec.output_tokens == 1
    assert rec.error == "stalled: no data for 0.3 s (--request-timeout) (mid-stream)"
    assert not reactor()._streams


def test_a_killed_reader_leaves_nothing_registered() -> None:
    with running_server(lambda s: tokens(s, 100, 0.05)) as (port, _), client_for(port) as client:
        user = gevent.spawn(client.generate, get_api("completions"), "hi", PARAMS)
        deadline = time.monotonic() + 5
        while not reactor()._streams and time.monotonic() < deadline:
            gevent.sleep(0.01)
        assert reactor()._streams  # the body is being read through the reactor
        user.kill()
    assert not reactor()._streams


def test_users_that_hold_the_loop_do_not_delay_the_other_sockets_reads() -> None:
    """Woken users run one after another; once they have held the loop for READ_GAP_S the reactor reads the
    ready sockets again before the next user runs, so bytes that arrived meanwhile keep their own stamp."""
    import socket as pysocket

    from gevent.hub import Waiter

    from loadgen.reactor import READ_GAP_S

    r = reactor()
    pairs = [pysocket.socketpair() for _ in range(3)]  # a, b woken together; c gets bytes while a runs
    try:
        streams = [r.attach(ours) for ours, _ in pairs]
        seen: dict[str, int] = {}

        def user(i: int, work: Callable[[], None]) -> None:
            w = Waiter()
            streams[i].waiter = w
            w.get()
            work()

        def a_work() -> None:
            pairs[2][1].sendall(b"c's bytes")  # arrives while this user holds the loop
            end = time.perf_counter() + 4 * READ_GAP_S
            while time.perf_counter() < end:
                pass

        def b_work() -> None:
            seen["c_reads_when_b_ran"] = len(streams[2].chunks)

        greenlets = [gevent.spawn(user, 0, a_work), gevent.spawn(user, 1, b_work)]
        gevent.sleep(0)  # both wait
        pairs[0][1].sendall(b"a's bytes")
        pairs[1][1].sendall(b"b's bytes")
        gevent.joinall(greenlets, timeout=5)
        assert seen == {"c_reads_when_b_ran": 1}
        assert streams[2].chunks[0][0] == b"c's bytes"
    finally:
        for stream in r._streams.copy().values():
            r.detach(stream)
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
    assert not r._streams


def test_a_user_the_hub_runs_for_another_reason_reads_the_ready_sockets_when_due() -> None:
    """A run of users woken by the hub (response headers, timers) passes through the reactor when it starts or
    takes a body: once READ_GAP_S has passed since the last read, the ready sockets are read there (stamped
    then) and their waiting users are woken from the hub afterwards."""
    import socket as pysocket

    from gevent.hub import Waiter

    from loadgen.reactor import READ_GAP_S

    r = reactor()
    pairs = [pysocket.socketpair() for _ in range(2)]
    try:
        waiting, other = (r.attach(ours) for ours, _ in pairs)
        woken: list[bytes] = []

        def user() -> None:
            w = Waiter()
            waiting.waiter = w
            w.get()
            woken.append(waiting.chunks[0][0])

        g = gevent.spawn(user)
        gevent.sleep(0)  # it waits
        read_before = r.stamped + r.unstamped
        pairs[0][1].sendall(b"bytes for the waiting user")
        end = time.perf_counter() + 2 * READ_GAP_S
        while time.perf_counter() < end:  # another user's work, without yielding to the hub
            pass
        r.read_if_due()
        assert r.stamped + r.unstamped == read_before + 1 and waiting.chunks  # read here, not by the hub
        assert not woken  # woken from the hub, not from inside this user
        g.join(timeout=5)
        assert woken == [b"bytes for the waiting user"]
        r.read_if_due()  # not due again: nothing to read, nothing breaks
        assert not other.chunks
    finally:
        for stream in r._streams.copy().values():
            r.detach(stream)
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
    assert not r._streams
