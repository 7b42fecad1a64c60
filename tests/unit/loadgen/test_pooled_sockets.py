"""A pooled keep-alive socket is checked without yielding to the hub, so a request is written the moment
its send time is stamped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import gevent
import gevent.socket
import locust  # noqa: F401  (patches the standard library, as in every Locust run: select() is gevent's)
from geventhttpclient import HTTPClient

from loadgen.client import idle_socket_alive, steady_pool
from loadgen.reactor import plain_stream_socket


@contextmanager
def socket_pairs() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def pair(stack: ExitStack) -> tuple[gevent.socket.socket, gevent.socket.socket]:
    a, b = gevent.socket.socketpair()
    stack.callback(a.close)
    stack.callback(b.close)
    return a, b


def alive(sock: gevent.socket.socket) -> bool:
    raw = plain_stream_socket(sock)
    assert raw is not None
    return idle_socket_alive(raw)


def test_an_idle_open_socket_is_alive_and_a_closed_or_dirty_one_is_not() -> None:
    with socket_pairs() as stack:
        idle, peer = pair(stack)
        assert alive(idle)
        peer.sendall(b"x")  # stray bytes: the connection's state is unknown
        assert not alive(idle)
        assert idle.recv(1) == b"x"  # the check only peeked

        closed_by_peer, peer2 = pair(stack)
        peer2.close()  # the server's FIN
        assert not alive(closed_by_peer)
        mine, _peer3 = pair(stack)
        raw = plain_stream_socket(mine)
        assert raw is not None
        mine.close()
        assert not idle_socket_alive(raw)
        assert plain_stream_socket(object()) is None


def test_the_pool_checks_its_sockets_without_a_switch_and_is_patched_once() -> None:
    with socket_pairs() as stack:
        listener = gevent.socket.socket()
        stack.callback(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        http = HTTPClient("127.0.0.1", listener.getsockname()[1], concurrency=1)
        stack.callback(http.close)
        steady_pool(http)
        pool = http._connection_pool
        check = pool._is_socket_alive
        steady_pool(http)
        assert pool._is_socket_alive is check

        idle, _peer = pair(stack)
        others: list[int] = []
        other = gevent.spawn(others.append, 1)  # runs only if the check yields to the hub
        assert check(idle) is True
        assert others == []  # geventhttpclient's own check (gevent's select, once patched) lets it run
        other.join(timeout=5)
        assert others == [1]
