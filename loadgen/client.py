"""HTTP transport for streamed generations on a FastHttpUser's geventhttpclient connection pool.

It sends one request, hands the body's `readline` to the shared stream loop, turns every way a request
can go wrong into a failure reason, always releases the connection, and returns a complete record.
It fires no Locust events itself (see `loadgen.users`), so it can be driven against any server.
"""

from __future__ import annotations

import _socket
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
import gevent.socket
import orjson
from geventhttpclient import URL
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

from loadgen.apis import GenerationParams, LLMApi, Prompt
from loadgen.backoff import parse_retry_after
from loadgen.reactor import ReactorBody, plain_stream_socket
from loadgen.requestlog import RequestRecord
from loadgen.sse import preview
from loadgen.stream import StreamResult, read_chunks
from loadgen.timing import RequestTiming
from runformat.records import INTERRUPTED_PREFIX

__all__ = ["ClientIdentity", "GenerationInterrupted", "GenerationOutcome", "LLMClient", "ServerState", "StreamWatch"]

_ERROR_BODY_BYTES = 200


@dataclass
class ServerState:
    """What this process learned about the server; shared by all its users."""

    rejects_stream_options: bool = False
    model: str | None = None
    chars_per_token: float | None = None


@dataclass(frozen=True)
class ClientIdentity:
    """Labels copied into every record."""

    target_label: str = ""
    workload: str = ""
    user_id: str = ""
    worker_id: str = ""


class StreamWatch(Protocol):
    """Sees a request while it streams: `opened` when it is sent (again, under the same key, on a retry)
    with the result its events fill, `closed` once with its final record."""

    def opened(self, key: str, result: StreamResult) -> None: ...

    def closed(self, key: str, record: RequestRecord) -> None: ...


@dataclass
class GenerationOutcome:
    record: RequestRecord
    text: str | None = None  # only when asked for (multi-turn chat)

    @property
    def success(self) -> bool:
        return self.record.success


class LLMClient:
    """Streams generations from one base URL through `http_for(url)` (a geventhttpclient HTTPClient)."""

    def __init__(
        self,
        base_url: str,
        http_for: Callable[[URL], Any],
        *,
        timeout_s: float,
        deadline_s: Callable[[int], float] | None = None,
        headers: dict[str, str] | None = None,
        state: ServerState | None = None,
        identity: ClientIdentity | None = None,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        watch: StreamWatch | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http_for = http_for
        self.timeout_s = timeout_s
        self._deadline_s = deadline_s
        self._headers = dict(headers or {})
        self.state = state or ServerState()
        self.identity = identity or ClientIdentity()
        self._clock = clock
        self._wall_clock = wall_clock
        self._watch = watch

    def _url(self, path: str) -> URL:
        return URL(self.base_url + path)

    # -- small JSON calls (not part of the measured traffic) -------------------------------------------

    def _json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = self._url(path)
        payload = orjson.dumps(body) if body is not None else b""
        headers = {**self._headers, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        resp = self._http_for(url).request(method, url.request_uri, body=payload, headers=headers)
        try:
            status, raw = resp.get_code(), resp.read()
        finally:
            resp.release()
        try:
            return status, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return status, None

    def discover_model(self) -> str:
        """The first model id of GET /v1/models; raises RuntimeError with the reason otherwise."""
        try:
            status, data = self._json("GET", "/v1/models")
        except Exception as exc:
            raise RuntimeError(f"model discovery failed: {_transport_reason(exc)}") from exc
        models = data.get("data") if isinstance(data, dict) else None
        if status != 200 or not models or not isinstance(models[0], dict) or "id" not in models[0]:
            raise RuntimeError(f"model discovery failed: GET /v1/models returned HTTP {status} without a model")
        return str(models[0]["id"])

    def count_tokens(self, text: str, model: str) -> int | None:
        """Prompt token count from the server's /tokenize (vLLM), or None where it has none."""
        try:
            status, data = self._json("POST", "/tokenize", {"model": model, "prompt": text})
        except Exception:
            return None
        if status != 200 or not isinstance(data, dict):
            return None
        count = data.get("count")
        if count is None and isinstance(data.get("tokens"), list):
            count = len(data["tokens"])
        return int(count) if isinstance(count, int) and count > 0 else None

    # -- the measured request ---------------------------------------------------------------------------

    def failed(self, api: LLMApi, max_new_tokens: int, error: str) -> GenerationOutcome:
        """A record for a request that could not be sent at all (e.g. no model to ask for)."""
        ident = self.identity
        now = self._clock()
        return GenerationOutcome(
            RequestRecord(
                request_id=uuid.uuid4().hex,
                target_label=ident.target_label,
                workload=ident.workload,
                api=api.name,
                max_new_tokens=max_new_tokens,
                start_wall_s=self._wall_clock(),
                t_send_s=now,
                error=error,
                user_id=ident.user_id,
                worker_id=ident.worker_id,
            )
        )

    def generate(
        self,
        api: LLMApi,
        prompt: Prompt,
        params: GenerationParams,
        *,
        collect_text: bool = False,
        record_emit_lag: bool = False,
        ready: Callable[[], None] | None = None,
    ) -> GenerationOutcome:
        """One streamed generation. Never raises for server or network faults: they become the record's
        `error`. A killed greenlet (GreenletExit) still gets its record, marked interrupted, then re-raises
        via `GenerationInterrupted`.

        `ready` (open loop) is called once the request is built, right before it is sent: it waits for the
        request's arrival, so that the moment it is due only writes the bytes."""
        request_id = uuid.uuid4().hex
        url = self._url(api.path)
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "X-Request-Id": request_id,
        }
        ident = self.identity
        record = RequestRecord(
            request_id=request_id,
            target_label=ident.target_label,
            workload=ident.workload,
            api=api.name,
            max_new_tokens=params.max_new_tokens,
            start_wall_s=0.0,
            t_send_s=0.0,
            user_id=ident.user_id,
            worker_id=ident.worker_id,
        )
        result = StreamResult(RequestTiming(0.0))
        status: int | None = None
        use_options = not self.state.rejects_stream_options
        body = orjson.dumps(api.build_payload(prompt, params, use_options))
        if ready is not None:
            ready()
        deadline_s = self._deadline_s(params.max_new_tokens) if self._deadline_s is not None else None
        timer = gevent.Timeout(deadline_s, DeadlineExceeded(deadline_s)) if deadline_s else None
        if timer is not None:
            timer.start()
        try:
            attempts = 0
            while True:
                attempts += 1
                result = StreamResult(RequestTiming(0.0))
                status, retry = self._attempt(
                    url, body, headers, api, result, record, use_options, collect_text, record_emit_lag
                )
                if not (retry and attempts == 1):
                    break
                use_options = not self.state.rejects_stream_options
                body = orjson.dumps(api.build_payload(prompt, params, use_options))
        except DeadlineExceeded as exc:  # fired outside the attempt's own handlers
            record.error = str(exc)
        finally:
            if timer is not None:
                timer.close()
        self._finish(record, result, status)
        text = "".join(result.text_parts) if collect_text and result.text_parts is not None else None
        return GenerationOutcome(record, text)

    def _attempt(
        self,
        url: URL,
        body: bytes,
        headers: dict[str, str],
        api: LLMApi,
        result: StreamResult,
        record: RequestRecord,
        sent_options: bool,
        collect_text: bool,
        record_emit_lag: bool,
    ) -> tuple[int | None, bool]:
        """Send once; returns (HTTP status or None, whether to retry). Fills `record.error` on failure."""
        record.error = None
        http = self._http_for(url)
        steady_pool(http)
        record.start_wall_s = self._wall_clock()
        result.timing.t_send = record.t_send_s = self._clock()
        if self._watch is not None:
            self._watch.opened(record.request_id, result)
        try:
            resp = http.request("POST", url.request_uri, body=body, headers=headers)
        except HTTPConnectionClosed as exc:
            # A pooled keep-alive connection the server had already closed: nothing was generated.
            record.error = f"connection closed before a response ({exc})"
            return None, True
        except gevent.GreenletExit:
            record.error = f"{INTERRUPTED_PREFIX} user stopped before a response"
            raise GenerationInterrupted(self._interrupted(record, result, None)) from None
        except Exception as exc:
            record.error = _transport_reason(exc, self.timeout_s)
            return None, False
        status = resp.get_code()
        try:
            if status != 200:
                raw = _read_bounded(resp)
                if sent_options and status == 400 and _rejects_stream_options(raw):
                    # Remembered for the whole process: later requests skip the doomed first attempt.
                    self.state.rejects_stream_options = True
                    return status, True
                record.error = f"HTTP {status}: {preview(raw, _ERROR_BODY_BYTES)}"
                if status in (429, 503):
                    record.retry_after_s = parse_retry_after(_header(resp, "retry-after"), self._wall_clock())
                return status, False
            content_type = _header(resp, "content-type") or ""
            if "json" in content_type.lower():
                raw = _read_bounded(resp)
                record.error = f"not an event stream: HTTP 200 with {content_type}: {preview(raw, _ERROR_BODY_BYTES)}"
                return status, False
            # perf_counter and the simulator's monotonic_ns read the same clock (CLOCK_MONOTONIC).
            emit_ns = _perf_to_ns if record_emit_lag else None
            body_reader = ReactorBody.open(resp, self._clock, self.timeout_s) or _ResponseBody(
                resp, self._clock, self.timeout_s
            )
            try:
                read_chunks(body_reader.next_chunk, api, result, collect_text=collect_text, emit_ns=emit_ns)
            finally:
                body_reader.close()
        except gevent.GreenletExit:
            record.error = f"{INTERRUPTED_PREFIX} user stopped mid-stream"
            raise GenerationInterrupted(self._interrupted(record, result, status)) from None
        except Exception as exc:
            where = "mid-stream" if result.timing.arrivals else "before the first token"
            record.error = f"{_transport_reason(exc, self.timeout_s)} ({where})"
        finally:
            resp.release()  # returns the socket to the pool, or closes it if the body was not finished
        return status, False

    def _interrupted(self, record: RequestRecord, result: StreamResult, status: int | None) -> GenerationOutcome:
        error = record.error
        self._finish(record, result, status)
        record.error, record.success = error, False
        return GenerationOutcome(record)

    def _finish(self, record: RequestRecord, result: StreamResult, status: int | None) -> None:
        """Derive the metrics and decide success exactly as METRICS.md defines it."""
        timing = result.timing
        if usage_contradicts(result.usage_tokens, len(timing.arrivals), record.max_new_tokens):
            result.distrust_usage()
        output_tokens = result.output_tokens
        summary = timing.summarize(output_tokens)
        record.http_status = status
        record.ttft_ms, record.e2e_ms, record.tpot_ms = summary.ttft_ms, summary.e2e_ms, summary.tpot_ms
        record.itl_mean_ms, record.itl_p99_ms = summary.itl_mean_ms, summary.itl_p99_ms
        record.prompt_tokens = result.prompt_tokens
        record.output_tokens = output_tokens
        record.tokens_source = result.tokens_source
        record.finish_reason = result.finish_reason
        record.arrivals_ms = timing.arrival_offsets_ms()
        record.counts = timing.counts
        record.emit_lag_us = result.emit_lag_us
        if record.error is None:
            if result.error is not None:
                record.error = result.error
            elif not result.ended_cleanly:
                record.error = "stream ended without [DONE] or finish_reason (truncated)"
            elif output_tokens < 1 or not timing.arrivals:
                record.error = "zero output tokens"
        record.success = record.error is None and status == 200
        if self._watch is not None:
            self._watch.closed(record.request_id, record)


def usage_contradicts(usage_tokens: int | None, token_events: int, max_new_tokens: int) -> bool:
    """A usage count above max_tokens, or below the number of token-carrying events, is not believable."""
    if usage_tokens is None:
        return False
    return usage_tokens > max_new_tokens > 0 or usage_tokens < token_events


class DeadlineExceeded(Exception):
    """The request ran past its total deadline (--request-deadline), however steadily bytes arrived."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(f"deadline: not finished within {deadline_s:g} s (--request-deadline)")


class GenerationInterrupted(Exception):
    """The user's greenlet was killed mid-request; `outcome` holds the record to log before re-raising."""

    def __init__(self, outcome: GenerationOutcome) -> None:
        super().__init__("generation interrupted")
        self.outcome = outcome


class _ResponseBody:
    """The chunk contract of `ReactorBody` through the response object itself: for TLS sockets, a scripted
    clock, and a response that arrived whole with its headers (geventhttpclient has then already let go of
    the socket). Both readers hand raw chunks to `read_chunks`, so a last line without its newline is
    judged alike."""

    __slots__ = ("_clock", "_count", "_resp", "_timeout_s")

    def __init__(self, resp: Any, clock: Callable[[], float], timeout_s: float) -> None:
        self._resp = resp
        self._clock = clock
        self._timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self._count = 0

    def next_chunk(self) -> tuple[bytes, float]:
        resp = self._resp
        body: bytearray = resp._body_buffer
        while True:
            if body:
                data = bytes(body)
                del body[:]
                return data, self._clock()
            if resp.message_complete:
                return b"", self._clock()
            sock = resp._sock
            if sock is None:
                raise HTTPConnectionClosed("connection closed.")
            self._count += 1
            if self._count % 16 == 0:
                gevent.sleep(0)  # a recv with data ready does not switch: let other users read theirs
            with gevent.Timeout(self._timeout_s, TimeoutError("timed out")):
                data = sock.recv(resp.block_size)
            t = self._clock()
            resp.feed(data)
            if not data and not resp.message_complete:
                raise HTTPConnectionClosed("connection closed.")
            if body:
                out = bytes(body)
                del body[:]
                return out, t

    def close(self) -> None:
        pass


def idle_socket_alive(raw: _socket.socket) -> bool:
    """Whether a pooled keep-alive socket can carry the next request: open, with nothing to read (an idle
    socket that is readable holds the server's FIN or stray bytes). One non-blocking peek: no yield to the
    hub, and no descriptor limit."""
    if raw.fileno() < 0:
        return False
    try:
        raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True  # nothing to read: idle and open
    except OSError:
        return False
    return False  # b"": the server closed it; bytes: a stray response, the connection's state is unknown


def steady_pool(http: Any) -> None:
    """Check `http`'s pooled plain-TCP sockets with `idle_socket_alive` (TLS ones as before).

    geventhttpclient checks a pooled socket with gevent's select(), which yields to the hub on every call:
    under load a request then waits a whole loop turn between its send stamp and its write, and that wait
    is counted as server time (at 256 streams on a busy core: send-to-server-read p50 16 ms, p90 46 ms,
    and TTFT 18-28 ms over the server's own). Above 1,024 descriptors select() fails outright and every
    pooled socket looks dead, so each request would open a new connection."""
    pool = getattr(http, "_connection_pool", None)
    if pool is None or "_is_socket_alive" in vars(pool) or not hasattr(pool, "_is_socket_alive"):
        return
    fallback = pool._is_socket_alive

    def alive(sock: Any) -> bool:
        raw = plain_stream_socket(sock)
        return idle_socket_alive(raw) if raw is not None else bool(fallback(sock))

    pool._is_socket_alive = alive


def _perf_to_ns(t: float) -> int:
    return round(t * 1e9)


def _header(resp: Any, name: str) -> str | None:
    value = resp.get(name) if hasattr(resp, "get") else None
    return str(value) if value is not None else None


def _rejects_stream_options(body: bytes) -> bool:
    lowered = body.lower()
    return b"stream_options" in lowered or b"continuous_usage_stats" in lowered or b"include_usage" in lowered


def _read_bounded(resp: Any, limit: int = 4096) -> bytes:
    try:
        return bytes(resp.read())[:limit]
    except Exception:
        return b""


def _transport_reason(exc: BaseException, timeout_s: float | None = None) -> str:
    if isinstance(exc, DeadlineExceeded):
        return str(exc)
    if isinstance(exc, (socket.timeout, gevent.Timeout, TimeoutError)):
        return f"stalled: no data for {timeout_s:g} s (--request-timeout)" if timeout_s else "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, (HTTPParseError, HTTPConnectionClosed)):
        return f"connection lost: {exc}".rstrip(". ")
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
