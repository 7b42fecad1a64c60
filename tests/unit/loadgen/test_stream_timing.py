"""The stream loop and METRICS.md timing, pinned with canned streams and a scripted clock."""

from __future__ import annotations

import math

import pytest

from loadgen.apis import get_api
from loadgen.stream import StreamResult, read_stream
from loadgen.timing import RequestTiming
from runformat.batchmeans import percentile
from tests.unit.loadgen.streams import ScriptedStream, chat_chunk, completion_chunk, sse, usage_only

T_SEND = 100.0


def run(events: list[tuple[float, bytes]], api: str = "completions", **kw: object) -> StreamResult:
    stream = ScriptedStream(events)
    result = StreamResult(RequestTiming(T_SEND))
    read_stream(stream.readline, stream.clock, get_api(api), result, **kw)  # type: ignore[arg-type]
    return result


def test_completions_with_continuous_usage() -> None:
    events = [
        (100.200, sse(completion_chunk(" a", 1))),
        (100.220, sse(completion_chunk(" b", 2))),
        (100.245, sse(completion_chunk(" c", 3))),
        (100.260, sse(completion_chunk(" d", 4, finish="length"))),
        (100.900, sse(usage_only(4))),  # late usage chunk must not extend e2e
        (100.950, sse("[DONE]")),
    ]
    result = run(events)
    summary = result.timing.summarize(result.output_tokens)
    assert result.done and result.finish_reason == "length" and result.error is None
    assert (result.output_tokens, result.tokens_source, result.prompt_tokens) == (4, "usage", 10)
    assert summary.ttft_ms == pytest.approx(200.0)
    assert summary.e2e_ms == pytest.approx(260.0)
    assert summary.itl_ms == pytest.approx([20.0, 25.0, 15.0])
    assert summary.e2e_ms - summary.ttft_ms == pytest.approx(sum(summary.itl_ms), abs=1e-9)
    assert summary.tpot_ms == pytest.approx(60.0 / 3)
    assert summary.itl_p99_ms == pytest.approx(percentile([20.0, 25.0, 15.0], 99))


def test_chat_role_only_and_empty_deltas_do_not_count() -> None:
    events = [
        (100.050, sse(chat_chunk({"role": "assistant", "content": ""}, 0))),
        (100.100, sse(chat_chunk({"content": ""}, 0))),
        (100.300, sse(chat_chunk({"content": "Hi"}, 1))),
        (100.330, sse(chat_chunk({"content": "!"}, 2, finish="stop"))),
        (100.400, sse(usage_only(2))),
        (100.401, sse("[DONE]")),
    ]
    result = run(events, api="chat", collect_text=True)
    summary = result.timing.summarize(result.output_tokens)
    assert summary.ttft_ms == pytest.approx(300.0)
    assert summary.e2e_ms == pytest.approx(330.0)
    assert result.text_parts == ["Hi", "!"]
    assert result.output_tokens == 2


def test_multi_token_event_contributes_k_gaps() -> None:
    events = [
        (100.100, sse(completion_chunk("a", 1))),
        (100.160, sse(completion_chunk("bcd", 4))),  # 3 tokens in one chunk, 60 ms after the last
        (100.170, sse(completion_chunk("e", 5, finish="length"))),
        (100.171, sse("[DONE]")),
    ]
    result = run(events)
    summary = result.timing.summarize(result.output_tokens)
    assert result.timing.counts == [1, 3, 1]
    assert summary.itl_ms == pytest.approx([20.0, 20.0, 20.0, 10.0])
    assert len(summary.itl_ms) == result.output_tokens - 1
    assert summary.e2e_ms - summary.ttft_ms == pytest.approx(sum(summary.itl_ms), abs=1e-9)


def test_first_event_with_several_tokens() -> None:
    events = [
        (100.100, sse(completion_chunk("ab", 2))),
        (100.130, sse(completion_chunk("c", 3, finish="length"))),
        (100.131, sse("[DONE]")),
    ]
    result = run(events)
    summary = result.timing.summarize(result.output_tokens)
    assert summary.itl_ms == pytest.approx([30.0])
    assert summary.tpot_ms == pytest.approx(15.0)  # (e2e - ttft) / (3 - 1)


def test_usage_token_without_text_is_token_carrying() -> None:
    # A detokenizer holding back a partial character: the token exists, its text comes later.
    events = [
        (100.100, sse(completion_chunk("", 1))),
        (100.120, sse(completion_chunk("é", 2, finish="length"))),
        (100.121, sse("[DONE]")),
    ]
    result = run(events)
    assert result.timing.summarize(2).ttft_ms == pytest.approx(100.0)


def test_without_usage_tokens_come_from_events() -> None:
    events = [
        (100.1, sse(completion_chunk("a"))),
        (100.2, sse(completion_chunk(""))),
        (100.3, sse(completion_chunk("b", finish="length"))),
        (100.4, sse("[DONE]")),
    ]
    result = run(events)
    assert (result.output_tokens, result.tokens_source) == (2, "events")


def test_final_usage_only_chunk_gives_the_count_without_adding_tokens() -> None:
    events = [
        (100.1, sse(completion_chunk("a"))),
        (100.2, sse(completion_chunk("b", finish="length"))),
        (100.3, sse(usage_only(2))),
        (100.4, sse("[DONE]")),
    ]
    result = run(events)
    assert (result.output_tokens, result.tokens_source) == (2, "usage")
    assert result.timing.arrivals == [100.1, 100.2]


def test_done_stops_reading() -> None:
    stream = ScriptedStream(
        [(100.1, sse(completion_chunk("a", 1, "length"))), (100.2, sse("[DONE]")), (101, b"junk\n")]
    )
    result = StreamResult(RequestTiming(T_SEND))
    read_stream(stream.readline, stream.clock, get_api("completions"), result)
    assert result.done and result.error is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (sse({"error": {"message": "boom", "code": 500}}), "error event in stream: boom (code 500)"),
        (sse({"object": "error", "message": "overloaded"}), "error event in stream: overloaded"),
        (b"event: error\ndata: {}\n\n", "error event in stream"),
        (b"data: this line is not JSON\n\n", "malformed SSE: non-JSON data"),
        (b'data {"x": 1}\n\n', "malformed SSE: not an SSE line"),
        (b"data: [1, 2]\n\n", "malformed SSE: data is not a JSON object"),
    ],
)
def test_protocol_failures(raw: bytes, expected: str) -> None:
    events = [(100.1, sse(completion_chunk("a", 1))), (100.2, raw), (100.3, sse("[DONE]"))]
    result = run(events)
    assert result.error is not None and result.error.startswith(expected)
    assert not result.done
    assert result.output_tokens == 1  # what arrived before the fault is kept


def test_truncated_stream_is_not_clean() -> None:
    result = run([(100.1, sse(completion_chunk("a", 1)))])
    assert not result.ended_cleanly and result.error is None


def test_no_tokens_gives_undefined_metrics() -> None:
    summary = RequestTiming(1.0).summarize(0)
    assert summary.ttft_ms is None and summary.itl_ms == [] and summary.tpot_ms is None


def test_percentile_matches_numpy_linear() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 99) == pytest.approx(4.96)
    assert math.isnan(percentile([], 50))


def test_emit_lag_is_recorded_only_when_asked() -> None:
    chunk = {**completion_chunk("a", 1, "length"), "sim_emit_ns": 1_000}
    events = [(100.1, sse(chunk)), (100.2, sse("[DONE]"))]
    assert run(events).emit_lag_us is None
    stream = ScriptedStream(events)
    result = StreamResult(RequestTiming(T_SEND))
    read_stream(stream.readline, stream.clock, get_api("completions"), result, emit_clock_ns=lambda: 3_000)
    assert result.emit_lag_us == [2.0]
