"""Each injected fault produces its fault; fixed-timing mode hits its timings; firehose streams whole."""

from __future__ import annotations

import itertools
import json
import statistics

import pytest

from tests.integration.sim_http import call

FAST = ("--fixed-ttft-ms", "2", "--fixed-itl-ms", "1")
STREAM = {"prompt": "Hi", "max_tokens": 10, "ignore_eos": True, "stream": True}


def _stream(sim, **extra):  # type: ignore[no-untyped-def]
    return call(sim.url, "POST", "/v1/completions", {**STREAM, **extra})


@pytest.mark.parametrize(("flag", "status", "err_type"), [
    ("--fault-503-rate", 503, "ServiceUnavailableError"),
    ("--fault-429-rate", 429, "RateLimitError"),
    ("--fault-500-rate", 500, "InternalServerError"),
])  # fmt: skip
def test_http_error_faults(simulator_factory, flag, status, err_type) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST, flag, "1")
    reply = _stream(sim)
    assert reply.status == status
    assert reply.json()["error"]["type"] == err_type and reply.json()["error"]["code"] == status
    if status == 429:
        assert reply.headers["retry-after"] == "1"


def test_reset_mid_stream(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST, "--fault-reset-rate", "1")
    reply = _stream(sim)
    assert reply.status == 200 and reply.reset
    assert len(reply.data_json()) == 5 and b"[DONE]" not in reply.body


def test_stall_mid_stream(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST, "--fault-stall-rate", "1", "--fault-stall-ms", "300")
    reply = _stream(sim)
    gaps = [b[0] - a[0] for a, b in zip(reply.reads, reply.reads[1:], strict=False)]
    assert max(gaps) >= 0.29
    assert len(reply.data_json()) == 10 and reply.body.endswith(b"data: [DONE]\n\n")


def test_malformed_and_non_json_lines(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST, "--fault-malformed-sse-rate", "2", "--fault-non-json-rate", "1")
    first, second = _stream(sim), _stream(sim)  # request 2 is malformed (every 2nd), request 1 non-JSON
    assert b"data: this line is not JSON\n\n" in first.body
    assert b'\ndata {"malformed"' in second.body
    for reply in (first, second):
        assert reply.status == 200 and len(reply.data_json()) == 10


def test_error_event_inside_200_stream(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST, "--fault-error-event-rate", "1")
    reply = _stream(sim)
    assert reply.status == 200
    events = reply.events()
    assert events[-1] == b"data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["type"] == "InternalServerError" and error["code"] == 500 and error["param"] is None
    assert events[-2].startswith(b'data: {"error": {"message": ')  # vLLM json.dumps spacing


def test_zero_token_completion(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST, "--fault-zero-token-rate", "1")
    reply = _stream(sim, stream_options={"include_usage": True})
    chunks = reply.data_json()
    assert chunks[0]["choices"][0]["text"] == "" and chunks[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 0
    plain = call(sim.url, "POST", "/v1/completions", {"prompt": "Hi"}).json()
    assert plain["usage"]["completion_tokens"] == 0 and plain["choices"][0]["text"] == ""


def test_fixed_timing_hits_its_schedule(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory("--fixed-ttft-ms", "50", "--fixed-itl-ms", "10")
    ttft_err_ms: list[float] = []
    itl_err_ms: list[float] = []
    seen_ttft_err_ms: list[float] = []
    seen_itl_err_ms: list[float] = []
    call(sim.url, "POST", "/v1/completions", {**STREAM, "max_tokens": 2})  # warm-up: first-use costs
    for _ in range(7):
        reply = call(sim.url, "POST", "/v1/completions", {**STREAM, "max_tokens": 20})
        # Server side: sim_emit_ns is time.monotonic_ns() at write, the same host-wide clock as t_send_ns.
        stamps = [c["sim_emit_ns"] for c in reply.data_json()]
        assert len(stamps) == 20
        ttft_err_ms.append((stamps[0] - reply.t_send_ns) / 1e6 - 50)
        itl_err_ms += [(b - a) / 1e6 - 10 for a, b in itertools.pairwise(stamps)]
        # Client side: arrival of each read; includes this test process's own scheduling delays.
        arrivals = [t for t, raw in reply.reads for _ in range(raw.count(b'"text":'))]
        seen_ttft_err_ms.append((arrivals[0] - reply.t_send) * 1e3 - 50)
        seen_itl_err_ms += [(b - a) * 1e3 - 10 for a, b in itertools.pairwise(arrivals)]
    assert abs(statistics.median(ttft_err_ms)) < 1.0
    assert abs(statistics.median(itl_err_ms)) < 1.0
    # Looser: on a busy shared CI machine the client itself may be descheduled for milliseconds.
    assert abs(statistics.median(seen_itl_err_ms)) < 2.0
    assert abs(statistics.median(seen_ttft_err_ms)) < 10.0


def test_firehose_streams_everything(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory("--firehose")
    reply = call(sim.url, "POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "go"}], "max_tokens": 3000, "ignore_eos": True, "stream": True,
        "stream_options": {"include_usage": True},
    })  # fmt: skip
    chunks = reply.data_json()
    assert len(chunks) == 3002 and chunks[-1]["usage"]["completion_tokens"] == 3000
    assert reply.body.endswith(b"data: [DONE]\n\n")
