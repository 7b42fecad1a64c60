"""LLMClient against a fake transport: success, retries, and every failure becoming a clear record."""

from __future__ import annotations

import json
from typing import Any

import gevent
import pytest
from geventhttpclient.response import HTTPParseError

from loadgen.apis import GenerationParams, get_api
from loadgen.client import ClientIdentity, GenerationInterrupted, LLMClient, ServerState
from tests.unit.loadgen.streams import ScriptedStream, completion_chunk, sse, usage_only

PARAMS = GenerationParams(model="m", max_new_tokens=3)
GOOD = [
    (10.2, sse(completion_chunk("a", 1))),
    (10.3, sse(completion_chunk("b", 2))),
    (10.4, sse(completion_chunk("c", 3, "length"))),
    (10.5, sse(usage_only(3))),
    (10.6, sse("[DONE]")),
]


class FakeResponse:
    """The slice of a geventhttpclient response the client uses; the scripted stream is its socket, one
    line per recv, each arriving at its scripted time."""

    block_size = 65536

    def __init__(
        self,
        status: int,
        stream: ScriptedStream | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status, self.stream, self.body = status, stream, body
        self.headers = {"content-type": "text/event-stream", **(headers or {})}
        self.released = False
        self._body_buffer = bytearray()
        self.message_complete = False
        self._sock = self if stream is not None else None

    def get_code(self) -> int:
        return self.status

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def recv(self, size: int) -> bytes:
        assert self.stream is not None
        return self.stream.readline()

    def feed(self, data: bytes) -> None:
        if data:
            self._body_buffer += data
        else:
            self.message_complete = True

    def read(self) -> bytes:
        return self.body

    def release(self) -> None:
        self.released = True


class FakeHTTP:
    """Answers each request with the next scripted response (or raises it, if it is an exception)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.responses: list[FakeResponse] = []
        self.now = 10.0

    def request(self, method: str, uri: str, body: bytes, headers: dict[str, str]) -> FakeResponse:
        self.requests.append((uri, json.loads(body) if body else {}, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        self.responses.append(answer)
        return answer

    def clock(self) -> float:
        for r in self.responses[::-1]:
            if r.stream is not None:
                return max(self.now, r.stream.now)
        return self.now


def make_client(http: FakeHTTP, state: ServerState | None = None) -> LLMClient:
    return LLMClient(
        "http://sim:8000",
        lambda url: http,
        timeout_s=5,
        headers={"Authorization": "Bearer sk-secret"},
        state=state,
        identity=ClientIdentity(target_label="T", workload="batch", user_id="3", worker_id="w"),
        clock=http.clock,
        wall_clock=lambda: 1_700_000_000.0,
    )


def test_success_record() -> None:
    http = FakeHTTP(FakeResponse(200, ScriptedStream(GOOD)))
    rec = make_client(http).generate(get_api("completions"), "hi", PARAMS).record
    uri, body, headers = http.requests[0]
    assert uri == "/v1/completions"
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert body["ignore_eos"] is True and body["max_tokens"] == 3 and body["prompt"] == "hi"
    assert headers["X-Request-Id"] == rec.request_id and len(rec.request_id) == 32
    assert rec.success and rec.error is None and rec.http_status == 200
    assert rec.ttft_ms == pytest.approx(200.0) and rec.e2e_ms == pytest.approx(400.0)
    assert (rec.output_tokens, rec.tokens_source, rec.finish_reason) == (3, "usage", "length")
    assert (rec.target_label, rec.workload, rec.user_id, rec.worker_id) == ("T", "batch", "3", "w")
    assert rec.start_wall_s == 1_700_000_000.0 and rec.t_send_s == 10.0
    assert rec.arrivals_ms == pytest.approx([200.0, 300.0, 400.0])
    assert http.responses[0].released


def test_rejected_stream_options_retries_once_without() -> None:
    events = [
        (10.2, sse(completion_chunk("a"))),
        (10.3, sse(completion_chunk("b", finish="length"))),
        (10.4, sse("[DONE]")),
    ]
    rejected = FakeResponse(400, body=b'{"error": "Unrecognized request argument supplied: stream_options"}')
    state = ServerState()
    http = FakeHTTP(rejected, FakeResponse(200, ScriptedStream(events)))
    rec = make_client(http, state).generate(get_api("completions"), "hi", PARAMS).record
    assert "stream_options" not in http.requests[1][1]
    assert rec.success and rec.tokens_source == "events" and rec.output_tokens == 2
    assert state.rejects_stream_options and rejected.released
    # Later requests of the process do not ask again.
    http.answers.append(FakeResponse(200, ScriptedStream(events)))
    make_client(http, state).generate(get_api("completions"), "hi", PARAMS)
    assert "stream_options" not in http.requests[2][1]


def test_other_400_is_not_retried() -> None:
    http = FakeHTTP(FakeResponse(400, body=b'{"error": "max_tokens is too large"}'))
    rec = make_client(http).generate(get_api("completions"), "hi", PARAMS).record
    assert len(http.requests) == 1
    assert rec.error == 'HTTP 400: \'{"error": "max_tokens is too large"}\'' and not rec.success


@pytest.mark.parametrize("status", [429, 500, 503])
def test_http_errors_carry_status_and_short_body(status: int) -> None:
    body = json.dumps({"error": {"message": "x" * 500}}).encode()
    http = FakeHTTP(FakeResponse(status, body=body))
    rec = make_client(http).generate(get_api("chat"), "hi", PARAMS).record
    assert rec.error is not None and rec.error.startswith(f"HTTP {status}: ")
    assert len(rec.error) < 260 and rec.http_status == status and not rec.success
    assert http.responses[0].released


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (TimeoutError("timed out"), "stalled: no data for 5 s (--request-timeout)"),
    ],
)
def test_connect_failures(exc: BaseException, reason: str) -> None:
    rec = make_client(FakeHTTP(exc)).generate(get_api("completions"), "hi", PARAMS).record
    assert rec.error == reason and rec.http_status is None and not rec.success


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionResetError(104, "reset"), "connection reset (mid-stream)"),
        (HTTPParseError("Incomplete response."), "connection lost: Incomplete response (mid-stream)"),
        (TimeoutError("timed out"), "stalled: no data for 5 s (--request-timeout) (mid-stream)"),
    ],
)
def test_mid_stream_failures_keep_what_arrived(exc: BaseException, reason: str) -> None:
    stream = ScriptedStream(GOOD[:2], end_with=exc)
    http = FakeHTTP(FakeResponse(200, stream))
    rec = make_client(http).generate(get_api("completions"), "hi", PARAMS).record
    assert rec.error == reason and not rec.success and rec.http_status == 200
    assert rec.output_tokens == 2 and rec.ttft_ms == pytest.approx(200.0)
    assert http.responses[0].released


def test_zero_tokens_and_truncation_are_failures() -> None:
    zero = [(10.1, sse(completion_chunk("", 0, "stop"))), (10.2, sse(usage_only(0))), (10.3, sse("[DONE]"))]
    rec = (
        make_client(FakeHTTP(FakeResponse(200, ScriptedStream(zero))))
        .generate(get_api("completions"), "hi", PARAMS)
        .record
    )
    assert rec.error == "zero output tokens" and not rec.success
    truncated = GOOD[:2]
    rec = (
        make_client(FakeHTTP(FakeResponse(200, ScriptedStream(truncated))))
        .generate(get_api("completions"), "x", PARAMS)
        .record
    )
    assert rec.error is not None and "truncated" in rec.error and not rec.success


def test_error_event_in_200_stream() -> None:
    events = [GOOD[0], (10.3, sse({"error": {"message": "engine died", "code": 500}})), (10.4, sse("[DONE]"))]
    rec = (
        make_client(FakeHTTP(FakeResponse(200, ScriptedStream(events))))
        .generate(get_api("completions"), "hi", PARAMS)
        .record
    )
    assert rec.error == "error event in stream: engine died (code 500)" and not rec.success


def test_killed_greenlet_still_yields_a_record() -> None:
    stream = ScriptedStream(GOOD[:1], end_with=gevent.GreenletExit())
    http = FakeHTTP(FakeResponse(200, stream))
    with pytest.raises(GenerationInterrupted) as info:
        make_client(http).generate(get_api("completions"), "hi", PARAMS)
    rec = info.value.outcome.record
    assert rec.error == "interrupted: user stopped mid-stream" and rec.output_tokens == 1 and not rec.success
    assert http.responses[0].released


def test_model_discovery() -> None:
    models = FakeResponse(200, body=json.dumps({"data": [{"id": "llama"}, {"id": "other"}]}).encode())
    assert make_client(FakeHTTP(models)).discover_model() == "llama"
    with pytest.raises(RuntimeError, match="model discovery failed: connection refused"):
        make_client(FakeHTTP(ConnectionRefusedError(111, "x"))).discover_model()


def _whole(body: bytes, headers: dict[str, str] | None = None) -> FakeResponse:
    """A response that arrived in one piece with its headers: geventhttpclient already let go of the socket."""
    resp = FakeResponse(200, headers=headers)
    resp._body_buffer += body
    resp.message_complete = True
    return resp


def test_a_whole_response_is_judged_like_a_paced_one_final_done_without_newline_included() -> None:
    body = b"".join(raw for _, raw in GOOD[:-1]) + b"data: [DONE]"
    rec = make_client(FakeHTTP(_whole(body))).generate(get_api("completions"), "hi", PARAMS).record
    assert rec.success and rec.error is None and rec.output_tokens == 3


def test_a_json_200_is_not_an_event_stream() -> None:
    body = b'{"choices": [{"text": "abc", "finish_reason": "length"}]}'
    resp = _whole(b"", headers={"content-type": "application/json"})
    resp.body = body
    rec = make_client(FakeHTTP(resp)).generate(get_api("completions"), "hi", PARAMS).record
    assert not rec.success and rec.error is not None
    assert rec.error.startswith("not an event stream: HTTP 200 with application/json: ") and "abc" in rec.error


@pytest.mark.parametrize(
    ("final_usage", "suspect"),
    [(1000, True), (2, True), (3, False)],  # above max_tokens, fewer than the token events, consistent
)
def test_usage_that_contradicts_the_events_or_max_tokens_is_suspect(final_usage: int, suspect: bool) -> None:
    events = [
        (10.2, sse(completion_chunk("a"))),
        (10.3, sse(completion_chunk("b"))),
        (10.4, sse(completion_chunk("c", finish="length"))),
        (10.5, sse(usage_only(final_usage))),
        (10.6, sse("[DONE]")),
    ]
    rec = (
        make_client(FakeHTTP(FakeResponse(200, ScriptedStream(events))))
        .generate(get_api("completions"), "hi", PARAMS)
        .record
    )
    assert rec.success
    assert (rec.tokens_source, rec.output_tokens) == (("suspect", 3) if suspect else ("usage", 3))


class TrickleResponse(FakeResponse):
    """A server that sends one byte at a time, never falling silent for long, never finishing."""

    def recv(self, size: int) -> bytes:
        gevent.sleep(0.01)
        return b"d"


def test_a_trickle_fails_at_the_total_deadline_not_never() -> None:
    http = FakeHTTP(TrickleResponse(200, ScriptedStream([])))
    client = make_client(http)
    client._deadline_s = lambda max_new_tokens: 0.2
    with gevent.Timeout(10):  # the test's own bound
        rec = client.generate(get_api("completions"), "hi", PARAMS).record
    assert not rec.success
    assert rec.error == "deadline: not finished within 0.2 s (--request-deadline) (before the first token)"


@pytest.mark.parametrize(("status", "header", "recorded"), [(429, "2", 2.0), (503, "1.5", 1.5), (500, "2", None)])
def test_retry_after_is_recorded_on_429_and_503(status: int, header: str, recorded: float | None) -> None:
    http = FakeHTTP(FakeResponse(status, body=b"busy", headers={"retry-after": header}))
    rec = make_client(http).generate(get_api("completions"), "hi", PARAMS).record
    assert rec.retry_after_s == recorded and not rec.success


def test_the_silence_timeout_starts_over_with_every_read() -> None:
    """A steady trickle is not silence: 12 bytes 50 ms apart against a 200 ms silence timeout (600 ms in all)."""
    import time
    from types import SimpleNamespace

    import gevent.socket

    from loadgen.reactor import ReactorBody

    reader, writer = gevent.socket.socketpair()
    resp = SimpleNamespace(_sock=reader, _body_buffer=bytearray(), message_complete=False)

    def feed(data: bytes) -> None:
        resp._body_buffer += data
        resp.message_complete = not data

    resp.feed = feed

    def trickle() -> None:
        for _ in range(12):
            gevent.sleep(0.05)
            writer.sendall(b"x")
        writer.close()

    sender = gevent.spawn(trickle)
    body = ReactorBody.open(resp, time.perf_counter, 0.2)
    assert body is not None
    received = b""
    with gevent.Timeout(10):
        while chunk := body.next_chunk()[0]:
            received += chunk
    body.close()
    sender.join()
    reader.close()
    assert received == b"x" * 12
