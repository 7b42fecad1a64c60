"""The simulator over real sockets: vLLM SSE byte parity, usage vs /tokenize, /metrics, bad input."""

from __future__ import annotations

import re

import pytest

from tests.integration.sim_http import call, metric

FAST = ("--fixed-ttft-ms", "2", "--fixed-itl-ms", "1", "--model", "m")
USAGE = {"include_usage": True, "continuous_usage_stats": True}

# What vLLM sends for these requests, reasoned out from its source and checked against a running
# vLLM 0.32.0 (completion_stream_generator / chat_completion_stream_generator):
# - chunks are pydantic model_dump_json(exclude_unset=True): compact JSON, fields in declaration order,
#   explicitly passed Nones kept (logprobs, finish_reason, stop_reason, prompt_token_ids, token_ids),
#   unset fields dropped (a chat delta has only role/content);
# - chat's first chunk carries only the role (content ""), plus prompt_token_ids/prompt_text = null;
# - the last token's chunk carries finish_reason and stop_reason;
# - continuous_usage_stats puts UsageInfo (prompt_tokens, total_tokens, completion_tokens order; chat also
#   completion_tokens_details = null) in every chunk;
# - include_usage adds a chunk with choices [] dumped with exclude_none (so no details) and the
#   system_fingerprint, then "data: [DONE]".
# Text values become <T>, `created` 0 and the fingerprint hash FP before comparing: not part of the format.
_C = '{"id":"cmpl-fixture","object":"text_completion","created":0,"model":"m","choices":['
_C_TOKEN = (
    '{"index":0,"text":"<T>","logprobs":null,"finish_reason":%s,"stop_reason":null,'
    '"prompt_token_ids":null,"token_ids":null}'
)
_USAGE = '"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d%s}'
_FP = ',"system_fingerprint":"vllm-0.32.0-FP"'
_NULL_DETAILS = ',"completion_tokens_details":null'
VLLM_COMPLETION_STREAM = (
    f"data: {_C}{_C_TOKEN % 'null'}],{_USAGE % (3, 4, 1, '')}}}\n\n"
    f"data: {_C}{_C_TOKEN % 'null'}],{_USAGE % (3, 5, 2, '')}}}\n\n"
    f"data: {_C}{_C_TOKEN % (chr(34) + 'length' + chr(34))}],{_USAGE % (3, 6, 3, '')}}}\n\n"
    f"data: {_C}],{_USAGE % (3, 6, 3, '')}{_FP}}}\n\n"
    "data: [DONE]\n\n"
).encode()
_H = '{"id":"chatcmpl-fixture","object":"chat.completion.chunk","created":0,"model":"m","choices":['
_ROLE = '{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}'
_TOK = '{"index":0,"delta":{"content":"<T>"},"logprobs":null,"finish_reason":null,"token_ids":null}'
_LAST = (
    '{"index":0,"delta":{"content":"<T>"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}'
)
VLLM_CHAT_STREAM = (
    f"data: {_H}{_ROLE}],{_USAGE % (12, 12, 0, _NULL_DETAILS)},"
    '"prompt_token_ids":null,"prompt_text":null}\n\n'
    f"data: {_H}{_TOK}],{_USAGE % (12, 13, 1, _NULL_DETAILS)}}}\n\n"
    f"data: {_H}{_LAST}],{_USAGE % (12, 14, 2, _NULL_DETAILS)}}}\n\n"
    f"data: {_H}],{_USAGE % (12, 14, 2, '')}{_FP}}}\n\n"
    "data: [DONE]\n\n"
).encode()


def _normalize(body: bytes) -> bytes:
    body = re.sub(rb',"sim_emit_ns":\d+', b"", body)
    body = re.sub(rb'"created":\d+', b'"created":0', body)
    body = re.sub(rb'"vllm-0\.32\.0-[0-9a-f]{8}"', b'"vllm-0.32.0-FP"', body)
    return re.sub(rb'"(text|content)":"(?:[^"\\]|\\.)+"', rb'"\1":"<T>"', body)


def test_sse_byte_parity_with_vllm(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    hdr = {"X-Request-Id": "fixture"}
    body = {"model": "m", "prompt": "Hello world", "max_tokens": 3, "ignore_eos": True, "stream": True}
    reply = call(sim.url, "POST", "/v1/completions", {**body, "stream_options": USAGE}, hdr)
    assert reply.status == 200 and reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert reply.headers["x-request-id"] == "fixture"
    assert _normalize(reply.body) == VLLM_COMPLETION_STREAM
    chat = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2, "stream": True}
    reply = call(sim.url, "POST", "/v1/chat/completions", {**chat, "ignore_eos": True, "stream_options": USAGE}, hdr)
    assert _normalize(reply.body) == VLLM_CHAT_STREAM
    # Fixed-timing mode stamps every JSON event with the server's emission time.
    stamps = [int(m) for m in re.findall(rb'"sim_emit_ns":(\d+)', reply.body)]
    assert len(stamps) == 4 and stamps == sorted(stamps)


def test_usage_matches_tokenize_and_text(sim) -> None:  # type: ignore[no-untyped-def]
    prompt = "The quick brown fox, it jumps over 12345 lazy dogs!"
    reply = call(sim.url, "POST", "/v1/completions", {"prompt": prompt, "max_tokens": 5, "ignore_eos": True})
    assert reply.status == 200
    body = reply.json()
    tokenized = call(sim.url, "POST", "/tokenize", {"prompt": prompt}).json()
    assert body["usage"]["prompt_tokens"] == tokenized["count"] == len(tokenized["tokens"])
    assert body["usage"]["completion_tokens"] == 5 and body["usage"]["total_tokens"] == tokenized["count"] + 5
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    assert body["choices"][0]["finish_reason"] == "length" and body["choices"][0]["text"].strip()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    chat = call(sim.url, "POST", "/v1/chat/completions", {"messages": messages, "max_tokens": 4}).json()
    assert chat["object"] == "chat.completion" and chat["id"].startswith("chatcmpl-")
    assert chat["usage"]["prompt_tokens"] == call(sim.url, "POST", "/tokenize", {"messages": messages}).json()["count"]


def test_same_prompt_and_seed_give_same_text(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    req = {"prompt": "Tell me a story", "max_tokens": 12, "seed": 5, "temperature": 0.8}
    texts = {call(sim.url, "POST", "/v1/completions", req).json()["choices"][0]["text"] for _ in range(3)}
    assert len(texts) == 1
    other = call(sim.url, "POST", "/v1/completions", {**req, "seed": 6}).json()["choices"][0]["text"]
    assert other not in texts
    stopped = call(sim.url, "POST", "/v1/completions", {**req, "stop": [next(iter(texts)).split()[2]]}).json()
    assert stopped["choices"][0]["finish_reason"] == "stop" and stopped["choices"][0]["stop_reason"]


def test_metrics_counters_move_by_exactly_the_tokens_served(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    before_gen = metric(sim.url, "vllm:generation_tokens_total")
    before_prompt = metric(sim.url, "vllm:prompt_tokens_total")
    served = prompts = 0
    for k in range(6):
        stream = k % 2 == 0
        req = {"prompt": f"request {k}", "max_tokens": 40, "ignore_eos": k < 3, "stream": stream}
        if stream:
            req["stream_options"] = {"include_usage": True}
        reply = call(sim.url, "POST", "/v1/completions", req)
        usage = reply.data_json()[-1]["usage"] if stream else reply.json()["usage"]
        served += usage["completion_tokens"]
        prompts += usage["prompt_tokens"]
    assert metric(sim.url, "vllm:generation_tokens_total") - before_gen == served
    assert metric(sim.url, "vllm:prompt_tokens_total") - before_prompt == prompts
    assert metric(sim.url, "vllm:e2e_request_latency_seconds_count") == 6
    assert metric(sim.url, "vllm:time_to_first_token_seconds_count") == 6
    text = call(sim.url, "GET", "/metrics").body.decode()
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert f'{name}{{engine="0",model_name="m"}}' in text
    assert "vllm:num_preemptions_total" in text


def test_engine_mode_streams_and_counts(sim) -> None:  # type: ignore[no-untyped-def]
    req = {"prompt": "Hi", "max_tokens": 4, "ignore_eos": True, "stream": True, "stream_options": USAGE}
    reply = call(sim.url, "POST", "/v1/completions", req)
    chunks = reply.data_json()
    assert [c["usage"]["completion_tokens"] for c in chunks] == [1, 2, 3, 4, 4]
    assert reply.body.endswith(b"data: [DONE]\n\n") and b"sim_emit_ns" not in reply.body
    assert metric(sim.url, "vllm:generation_tokens_total") == 4


@pytest.mark.parametrize(
    ("path", "body", "status", "err_type"),
    [
        ("/v1/completions", b"{not json", 400, "Bad Request"),
        ("/v1/completions", {"max_tokens": 3}, 400, "BadRequestError"),
        ("/v1/completions", {"prompt": "x", "max_tokens": "three"}, 400, "Bad Request"),
        ("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}}, 400, "BadRequestError"),
        ("/v1/completions", {"prompt": "x", "n": 2}, 400, "BadRequestError"),
        ("/v1/completions", {"prompt": "x", "model": "nope"}, 404, "NotFoundError"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 9000}, 400, "BadRequestError"),
        ("/v1/chat/completions", {"messages": []}, 400, "Bad Request"),
        ("/v1/chat/completions", {"messages": "hi"}, 400, "Bad Request"),
        ("/v1/completions", b"x" * 5000, 413, "Request Entity Too Large"),
    ],
)
def test_bad_input_gets_vllm_status_and_error_json(simulator_factory, path, body, status, err_type) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST, "--max-body-bytes", "4096")
    reply = call(sim.url, "POST", path, body)
    assert reply.status == status
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status and error["type"] == err_type and error["message"]
    assert call(sim.url, "GET", "/health").status == 200  # the server survived


def test_unknown_fields_are_ignored_and_get_endpoints(simulator_factory) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    reply = call(sim.url, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 2, "frobnicate": 1})
    assert reply.status == 200
    assert call(sim.url, "POST", "/v1/models").json() == {"detail": "Method Not Allowed"}
    assert call(sim.url, "GET", "/nothing").json() == {"detail": "Not Found"}
    models = call(sim.url, "GET", "/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "m"
    assert models["data"][0]["object"] == "model" and models["data"][0]["max_model_len"] == 8192
    assert "version" in call(sim.url, "GET", "/version").json()
    health = call(sim.url, "GET", "/health")
    assert health.status == 200 and health.body == b""
