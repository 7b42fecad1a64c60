"""One epoll reader per process for every streamed response body, stamped with the kernel's receive time.

At realistic pacing each SSE event arrives on its own, so what a client pays per event decides how many
streams one core drives. A user greenlet that waits on its own socket pays, per event, a watcher start
and stop, two greenlet switches, a timer re-arm and a recv; and the time it stamps is when the event
loop got round to it, which under load is later than when the bytes arrived. Here one io watcher on an
epoll set of every open stream wakes once for all the sockets that became readable, makes one `recvmsg`
per ready socket, and stamps each read with the kernel's receive time of its bytes (SO_TIMESTAMPNS,
mapped onto `time.perf_counter`), so a late wake-up no longer moves TTFT or ITL. Reads queue on their
stream; its user greenlet is woken to parse them in batches: at the first bytes of a response, at the
end of the body (`[DONE]`, the chunked terminator, EOF or an error), after `WAKE_READS` reads or
`WAKE_BYTES` bytes (so parsing overlaps a fast server's transfer), and by a sweep for anything that has
waited `SWEEP_S`. Woken users run one after another inside the reactor's callback; whenever they have held
the loop for `READ_GAP_S`, the reactor reads the ready sockets again before waking the next one, so one
wake-up of many users does not leave the others' bytes waiting in the kernel, where a late read would
merge several events into one receive time (TCP merges segments queued on a socket, and the merged
segment keeps the last one's stamp). Users that the hub runs for other reasons (response headers, timers)
come through the reactor too, when they start or take a body: there it reads the ready sockets if
`READ_GAP_S` has passed since it last did, and wakes whom that concerns from the hub afterwards.

Linux turns receive timestamps on host-wide lazily (deferred work): the first reads after the first
socket asks may come unstamped, and they go off again when the last such socket closes. The reactor
keeps one timestamping socket open for the life of the process, and a read without a stamp is stamped
with the clock when it is read, never dropped.
"""

from __future__ import annotations

import _socket
import contextlib
import os
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import gevent.monkey
from gevent.hub import Waiter
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

__all__ = [
    "READ_GAP_S",
    "SWEEP_S",
    "WAKE_BYTES",
    "WAKE_READS",
    "ReactorBody",
    "StreamReactor",
    "plain_stream_socket",
    "reactor",
]

WAKE_READS = 32
WAKE_BYTES = 16 * 1024
SWEEP_S = 0.25
READ_GAP_S = 0.0005
_RECV_BYTES = 65536
_MAX_EVENTS = 1024
_CHUNKED_END = b"\r\n0\r\n\r\n"
_DONE = b"[DONE]"
# SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) on Linux; Python's socket module does not name it.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_STAMPS = sys.platform.startswith("linux")
_STALL = object()
# gevent's monkey-patching (Locust applies it) removes select.epoll, since a blocking poll would stall the
# hub; the reactor only ever polls with a zero timeout, from the hub, when libev says the set is ready.
try:
    _epoll: Any = gevent.monkey.get_original("select", "epoll")
    _EPOLLIN: int = gevent.monkey.get_original("select", "EPOLLIN")
except AttributeError:
    _epoll, _EPOLLIN = None, 1


class _Stream:
    """One response body being read: the reads not yet taken by its user, and how to wake it."""

    __slots__ = ("chunks", "error", "fd", "nbytes", "oldest", "queued", "raw", "reads", "waiter")

    def __init__(self, fd: int, raw: _socket.socket) -> None:
        self.fd = fd
        self.raw = raw
        self.chunks: list[tuple[bytes, float]] = []
        self.reads = 0  # reads since the user last took the queue; -1 before the response's first bytes
        self.nbytes = 0
        self.oldest = 0.0
        self.error: BaseException | None = None
        self.waiter: Waiter | None = None
        self.queued = False  # in the reactor's list of users to wake


class StreamReactor:
    """The process's epoll set of open stream sockets and the io watcher that reads them."""

    def __init__(self, hub: Any) -> None:
        self._hub = hub
        assert _epoll is not None
        self._ep = _epoll()
        self._streams: dict[int, _Stream] = {}
        self._watcher = hub.loop.io(self._ep.fileno(), 1)
        self._sweeper = hub.loop.timer(SWEEP_S, SWEEP_S)
        self._running = False
        self._last_read = 0.0
        self._to_wake: deque[_Stream] = deque()
        self._drain_scheduled = False
        self._keep_stamps: socket.socket | None = None
        self.stamped = 0  # reads that carried the kernel's receive time
        self.unstamped = 0
        if _STAMPS:
            # Holds host-wide receive timestamping on for as long as this process reads streams.
            keep = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                keep.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self._keep_stamps = keep
            except OSError:
                keep.close()

    def attach(self, raw: _socket.socket) -> _Stream:
        fd = raw.fileno()
        if self._keep_stamps is not None:
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        stream = _Stream(fd, raw)
        stream.reads = -1
        self._streams[fd] = stream
        self._ep.register(fd, _EPOLLIN)
        if not self._running:
            self._running = True
            self._watcher.start(self._on_ready)
            self._sweeper.start(self._on_sweep)
        return stream

    def detach(self, stream: _Stream) -> None:
        if self._streams.get(stream.fd) is stream:
            del self._streams[stream.fd]
            with contextlib.suppress(OSError, ValueError):
                self._ep.unregister(stream.fd)
        if not self._streams and self._running:
            self._running = False
            self._watcher.stop()
            self._sweeper.stop()

    def _unwatch(self, stream: _Stream) -> None:
        """Stop polling a socket that reached EOF or failed (level-triggered epoll would report it forever)."""
        with contextlib.suppress(OSError, ValueError):
            self._ep.unregister(stream.fd)

    def _on_ready(self) -> None:
        """Runs in the hub: one recvmsg per ready socket, then wake the users that have enough to parse."""
        self._read_ready(self._to_wake)
        self._drain()

    def _drain(self) -> None:
        """In the hub: wake the queued users one after another, reading the ready sockets again whenever
        they have held the loop for READ_GAP_S."""
        self._drain_scheduled = False
        wake = self._to_wake
        if self._ep.closed:  # a reactor replaced since (a forked child's copy)
            wake.clear()
            return
        last = time.perf_counter()
        while wake:
            stream = wake.popleft()
            stream.queued = False
            waiter = stream.waiter
            if waiter is not None:
                stream.waiter = None
                waiter.switch(None)
                if wake and time.perf_counter() - last > READ_GAP_S:
                    self._read_ready(wake)
                    last = time.perf_counter()

    def read_if_due(self) -> None:
        """From a user: read the ready sockets if READ_GAP_S has passed since the last read (their users are
        woken from the hub right after), so a run of users the hub wakes for other reasons does not hold
        every stream's bytes in the kernel."""
        if self._running and time.perf_counter() - self._last_read > READ_GAP_S:
            self._read_ready(self._to_wake)
            if self._to_wake and not self._drain_scheduled:
                self._drain_scheduled = True
                self._hub.loop.run_callback(self._drain)

    def _read_ready(self, wake: deque[_Stream]) -> None:
        """One recvmsg per ready socket, stamped; appends the streams whose users should parse now."""
        events = self._ep.poll(0, _MAX_EVENTS)
        perf_ns = time.perf_counter_ns()
        self._last_read = perf_ns / 1e9
        wall_ns = time.time_ns()
        now = perf_ns / 1e9
        realtime_to_perf_ns = wall_ns - perf_ns
        streams = self._streams
        anc_size = 64 if self._keep_stamps is not None else 0
        for fd, _mask in events:
            stream = streams.get(fd)
            if stream is None:
                continue
            try:
                data, anc, _flags, _addr = stream.raw.recvmsg(_RECV_BYTES, anc_size)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                stream.error = exc
                self._unwatch(stream)
                if stream.waiter is not None and not stream.queued:
                    stream.queued = True
                    wake.append(stream)
                continue
            t = now
            if anc:
                ts = _stamp(anc)
                if ts:
                    stamped = (ts - realtime_to_perf_ns) / 1e9
                    # A wall-clock step between the read and this mapping would misplace the stamp.
                    if now - 5.0 < stamped <= now:
                        t = stamped
                        self.stamped += 1
                    else:
                        self.unstamped += 1
                else:
                    self.unstamped += 1
            else:
                self.unstamped += 1
            first = stream.reads < 0
            if not stream.chunks:
                stream.oldest = now
            stream.chunks.append((data, t))
            if not data:
                self._unwatch(stream)
                ready = True
            else:
                stream.reads = 1 if first else stream.reads + 1
                stream.nbytes += len(data)
                ready = (
                    first
                    or stream.reads >= WAKE_READS
                    or stream.nbytes >= WAKE_BYTES
                    or _DONE in data
                    or data.endswith(_CHUNKED_END)
                )
            if ready and stream.waiter is not None and not stream.queued:
                stream.queued = True
                wake.append(stream)

    def _on_sweep(self) -> None:
        """Wake users whose reads have waited SWEEP_S (a body that ends without a marker we look for)."""
        due = time.perf_counter() - SWEEP_S
        _wake([s for s in self._streams.values() if s.waiter is not None and s.chunks and s.oldest <= due])

    def close(self) -> None:
        self._watcher.stop()
        self._sweeper.stop()
        self._watcher.close()
        self._sweeper.close()
        self._ep.close()
        if self._keep_stamps is not None:
            self._keep_stamps.close()


def _wake(streams: list[_Stream]) -> None:
    """Switch to each stream's waiting user in turn (from the hub; each runs until it waits again)."""
    for stream in streams:
        waiter = stream.waiter
        if waiter is not None:
            stream.waiter = None
            waiter.switch(None)


def _stamp(anc: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time (ns, CLOCK_REALTIME) from recvmsg's ancillary data, or 0."""
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec * 1_000_000_000 + nsec
    return 0


_REACTOR: tuple[int, Any, StreamReactor] | None = None


def reactor() -> StreamReactor:
    """This process's (and this thread's hub's) reactor, made on first use."""
    global _REACTOR
    hub = gevent.get_hub()
    pid = os.getpid()
    if _REACTOR is None or _REACTOR[0] != pid or _REACTOR[1] is not hub:
        if _REACTOR is not None:
            _REACTOR[2].close()  # a forked child's copy, or the reactor of a hub that is gone
        _REACTOR = (pid, hub, StreamReactor(hub))
    return _REACTOR[2]


def plain_stream_socket(gsock: Any) -> _socket.socket | None:
    """The OS-level stream socket under a plain gevent socket; None for anything else (TLS, a closed or
    foreign object). `socket.socket` is gevent's own class once Locust has patched the standard library."""
    if type(gsock) is not gevent.socket.socket:
        return None
    raw = getattr(gsock, "_sock", None)
    return raw if isinstance(raw, _socket.socket) and raw.type == socket.SOCK_STREAM else None


class ReactorBody:
    """A streaming response's body through the process's reactor: the `next_chunk` contract of
    `loadgen.stream.read_chunks` (body bytes with their arrival time, b"" at the end).

    Each queued read goes through geventhttpclient's parser (`resp.feed`), which strips the transfer
    framing, so the connection's state stays exact for `resp.release()`. `timeout_s` is a silence
    timeout: it fires when no bytes have arrived for that long, however the wake-ups were batched.
    """

    __slots__ = ("_body", "_clock", "_feed", "_pending", "_reactor", "_resp", "_stream", "_timeout_s")

    def __init__(self, resp: Any, raw: _socket.socket, clock: Callable[[], float], timeout_s: float) -> None:
        self._resp = resp
        self._feed = resp.feed
        self._body: bytearray = resp._body_buffer
        self._clock = clock
        self._timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self._reactor = reactor()
        self._stream: _Stream | None = self._reactor.attach(raw)
        self._pending: list[tuple[bytes, float]] = []
        self._reactor.read_if_due()

    @classmethod
    def open(cls, resp: Any, clock: Callable[[], float], timeout_s: float) -> ReactorBody | None:
        """A reactor body for a plain gevent TCP socket on the perf_counter clock; None otherwise (TLS,
        a scripted clock, or a response whose socket geventhttpclient already let go)."""
        if clock is not time.perf_counter or _epoll is None:
            return None
        raw = plain_stream_socket(getattr(resp, "_sock", None))
        if raw is None or not isinstance(getattr(resp, "_body_buffer", None), bytearray) or not hasattr(resp, "feed"):
            return None
        return cls(resp, raw, clock, timeout_s)

    def next_chunk(self) -> tuple[bytes, float]:
        body = self._body
        if body:  # arrived together with the headers
            data = bytes(body)
            del body[:]
            return data, self._clock()
        resp = self._resp
        feed = self._feed
        pending = self._pending
        while not resp.message_complete:
            if not pending:
                pending = self._take()
            while pending:
                data, t = pending.pop()
                if not data:  # EOF: the end of a close-delimited body, else a lost connection
                    with contextlib.suppress(HTTPParseError):
                        feed(data)
                    if not resp.message_complete:
                        raise HTTPConnectionClosed("connection closed.")
                    return b"", t
                feed(data)
                if body:
                    out = bytes(body)
                    del body[:]
                    return out, t
                if resp.message_complete:
                    break
        return b"", self._clock()

    def _take(self) -> list[tuple[bytes, float]]:
        """Wait until the reactor has reads for this body, then take them all (oldest last, for pop())."""
        stream = self._stream
        assert stream is not None
        self._reactor.read_if_due()
        while not stream.chunks:
            if stream.error is not None:
                raise stream.error
            self._wait(stream)
        chunks = stream.chunks
        stream.chunks = []
        stream.reads = 0
        stream.nbytes = 0
        chunks.reverse()
        self._pending = chunks
        return chunks

    def _wait(self, stream: _Stream) -> None:
        waiter = Waiter()
        stream.waiter = waiter
        timeout_s = self._timeout_s
        if timeout_s is None:
            try:
                waiter.get()
            finally:
                stream.waiter = None
            return
        # Bytes that arrive without waking us (batched) end the silence too: checked when the timer fires.
        timer = gevent.get_hub().loop.timer(timeout_s)
        timer.start(waiter.switch, _STALL)
        try:
            if waiter.get() is _STALL and not stream.chunks and stream.error is None:
                raise TimeoutError("timed out")
        finally:
            stream.waiter = None
            timer.close()

    def close(self) -> None:
        """Hand every byte already read to the parser (so a finished body leaves its connection reusable)
        and leave the reactor."""
        stream = self._stream
        if stream is None:
            return
        self._stream = None
        rest = self._pending[::-1] + stream.chunks
        self._pending = []
        stream.chunks = []
        self._reactor.detach(stream)
        resp = self._resp
        if not resp.message_complete:
            # A body read up to `[DONE]` usually has its transfer terminator right behind it, in our
            # queue or still in the kernel: take it, so the connection goes back to the pool.
            with contextlib.suppress(OSError):
                rest.append((stream.raw.recv(_RECV_BYTES), 0.0))
        for data, _t in rest:
            if resp.message_complete or not data:
                break
            try:
                self._feed(data)
            except Exception:
                break
        del self._body[:]
