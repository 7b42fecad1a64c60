"""SSE framing: line and chunk decoding, multi-line data, comments, CRLF, and non-SSE lines."""

from __future__ import annotations

import pytest

from loadgen.sse import SSEDecoder, SSEProtocolError

BODY = b'data: {"a":1}\n\n: keep-alive\n\nevent: error\ndata: {"b":2}\n\ndata: x\ndata: y\n\ndata: [DONE]\n\n'


def test_decoder_dispatches_on_blank_line_with_first_data_time() -> None:
    dec = SSEDecoder()
    assert dec.feed_line(b"data: one\n", 1.0) is None
    assert dec.feed_line(b"data: two\n", 2.0) is None
    event = dec.feed_line(b"\n", 3.0)
    assert event is not None
    assert (event.data, event.t, event.event) == (b"one\ntwo", 1.0, None)


def test_decoder_handles_crlf_no_space_and_event_type() -> None:
    dec = SSEDecoder()
    dec.feed_line(b"event: error\r\n", 0.0)
    dec.feed_line(b'data:{"x":1}\r\n', 0.5)
    event = dec.feed_line(b"\r\n", 0.6)
    assert event is not None
    assert (event.data, event.event) == (b'{"x":1}', b"error")


def test_comments_and_known_fields_are_ignored() -> None:
    dec = SSEDecoder()
    for line in (b": ping\n", b"id: 7\n", b"retry: 100\n", b"\n"):
        assert dec.feed_line(line, 0.0) is None


def test_non_sse_line_is_a_protocol_error() -> None:
    with pytest.raises(SSEProtocolError, match="not an SSE line"):
        SSEDecoder().feed_line(b'data {"malformed": true}\n', 0.0)


def test_flush_dispatches_an_unterminated_event() -> None:
    dec = SSEDecoder()
    dec.feed_line(b"data: [DONE]", 4.0)
    event = dec.flush()
    assert event is not None and event.data == b"[DONE]"
    assert dec.flush() is None
