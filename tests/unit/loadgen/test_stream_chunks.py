"""`read_chunks` (the socket path) gives the same records as the line path, however the bytes are cut."""

from __future__ import annotations

import pytest

from loadgen.apis import get_api
from loadgen.stream import StreamResult, read_chunks, read_stream
from loadgen.timing import RequestTiming
from tests.unit.loadgen.streams import ScriptedStream, chat_chunk, completion_chunk, sse, usage_only

EVENTS = [
    (100.200, sse(completion_chunk(" a", 1))),
    (100.220, sse(completion_chunk(" b", 2))),
    (100.245, sse(completion_chunk(" c", 4))),  # two tokens in one event (continuous usage)
    (100.260, sse(completion_chunk(" d", 5, finish="length"))),
    (100.900, sse(usage_only(5))),
    (100.950, sse("[DONE]")),
]


def by_lines(events: list[tuple[float, bytes]], api: str = "completions") -> StreamResult:
    stream = ScriptedStream(events)
    result = StreamResult(RequestTiming(100.0))
    read_stream(stream.readline, stream.clock, get_api(api), result, emit_clock_ns=lambda: 0)
    return result


def by_chunks(chunks: list[tuple[bytes, float]], api: str = "completions") -> StreamResult:
    it = iter([*chunks, (b"", 200.0)])
    result = StreamResult(RequestTiming(100.0))
    read_chunks(lambda: next(it), get_api(api), result, emit_ns=lambda t: 0)
    return result


def same(a: StreamResult, b: StreamResult) -> None:
    assert a.timing.arrivals == pytest.approx(b.timing.arrivals)
    assert a.timing.counts == b.timing.counts
    assert (a.done, a.finish_reason, a.usage_tokens, a.prompt_tokens, a.error) == (
        b.done,
        b.finish_reason,
        b.usage_tokens,
        b.prompt_tokens,
        b.error,
    )


def test_one_whole_event_per_read() -> None:
    same(by_chunks([(raw, t) for t, raw in EVENTS]), by_lines(EVENTS))


def test_events_cut_anywhere_are_stamped_when_their_first_data_line_completes() -> None:
    body = b"".join(raw for _, raw in EVENTS)
    cut = body.index(b" b") + 1  # inside the second event's data line
    result = by_chunks([(body[:cut], 1.0), (body[cut:], 2.0)])
    assert result.timing.arrivals == [1.0, 2.0, 2.0, 2.0]
    assert result.timing.counts == [1, 1, 2, 1]
    assert result.done and result.usage_tokens == 5


def test_crlf_lines_and_coalesced_events() -> None:
    events = [(t, raw.replace(b"\n", b"\r\n")) for t, raw in EVENTS]
    crlf = by_chunks([(raw, t) for t, raw in events])
    same(crlf, by_lines(EVENTS))
    coalesced = by_chunks([(events[0][1] + events[1][1], 5.0), *[(raw, t) for t, raw in events[2:]]])
    assert coalesced.timing.arrivals[:2] == [5.0, 5.0]


def test_chat_role_only_event_and_truncated_body() -> None:
    events = [
        (1.0, sse(chat_chunk({"role": "assistant", "content": ""}, 0))),
        (2.0, sse(chat_chunk({"content": "Hi"}, 1))),
    ]
    result = by_chunks([(raw, t) for t, raw in events], api="chat")
    assert result.timing.arrivals == [2.0]
    assert not result.ended_cleanly  # no [DONE], no finish_reason: the caller marks it truncated


def test_emit_lag_recorded_per_stamped_event() -> None:
    chunk = completion_chunk(" a", 1) | {"sim_emit_ns": 1_000}
    it = iter([(sse(chunk), 1.0), (sse("[DONE]"), 2.0)])
    result = StreamResult(RequestTiming(0.0))
    read_chunks(lambda: next(it), get_api("completions"), result, emit_ns=lambda t: 3_000)
    assert result.emit_lag_us == [2.0]


def test_a_line_that_never_ends_is_bounded() -> None:
    chunks = iter([(b'data: {"choices": [{"text": "' + b"a" * 600, 1.0)] + [(b"a" * 600, 1.0 + i) for i in range(10)])
    result = StreamResult(RequestTiming(0.0))
    read_chunks(lambda: next(chunks), get_api("completions"), result, max_event_bytes=2048)
    assert result.error == "malformed SSE: a line longer than 2048 bytes without an end"
    assert next(chunks, None) is not None  # stopped reading as soon as the bound was passed


def test_several_whole_events_in_one_read_share_its_stamp() -> None:
    """A fast server or a busy client: many whole events per read take the no-decoder path; a read that
    mixes in another SSE field (an `event:` line, a comment) is decoded line by line, with the same result."""
    body = b"".join(raw for _, raw in EVENTS)
    whole = by_chunks([(body, 7.0)])
    assert whole.timing.arrivals == [7.0] * 4 and whole.timing.counts == [1, 1, 2, 1]
    assert whole.done and whole.usage_tokens == 5 and whole.finish_reason == "length"
    mixed = body.replace(b"\n\ndata: ", b"\n\n: keep-alive\n\ndata: ", 1)
    same(by_chunks([(mixed, 7.0)]), whole)
    error = sse(completion_chunk(" a", 1)) + b'event: error\ndata: {"error": {"message": "boom"}}\n\n'
    failed = by_chunks([(error, 7.0)])
    assert failed.timing.counts == [1] and failed.error == "error event in stream: boom"
