"""Byte-exact SSE events and JSON bodies in vLLM's layout, rendered cheaply from per-request templates.

vLLM serializes stream chunks with pydantic `model_dump_json(exclude_unset=True)` (compact JSON, fields
in declaration order, explicitly-passed Nones kept) and the final usage chunk with `exclude_none=True`.
The per-request constant parts are built once; per event only the token text, usage numbers and,
in fixed-timing mode, `sim_emit_ns` are formatted.
"""

from __future__ import annotations

import zlib

import orjson

__all__ = ["DONE_EVENT", "VLLM_VERSION", "EventRenderer", "json_str", "system_fingerprint"]

# The vLLM release whose wire format this file reproduces (checked against a running vLLM 0.32.0).
VLLM_VERSION = "0.32.0"
DONE_EVENT = b"data: [DONE]\n\n"
_JSON_CACHE: dict[str, bytes] = {}


def system_fingerprint(model: str) -> str:
    """`vllm-<version>-<8 hex>` like vLLM's; the hex part is a stable hash of the served model name."""
    return f"vllm-{VLLM_VERSION}-{zlib.crc32(model.encode()):08x}"


def json_str(text: str) -> bytes:
    """JSON string literal for `text`, memoized (generated text reuses a small vocabulary)."""
    cached = _JSON_CACHE.get(text)
    if cached is None:
        cached = orjson.dumps(text)
        if len(_JSON_CACHE) < 100_000:
            _JSON_CACHE[text] = cached
    return cached


class EventRenderer:
    """Renders the events of one response (completion or chat) given its id, timestamps and usage mode."""

    def __init__(
        self, chat: bool, request_id: str, created: int, model: str, prompt_tokens: int, continuous_usage: bool
    ) -> None:
        self.chat = chat
        self.request_id = request_id
        self.created = created
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.continuous_usage = continuous_usage
        self.fingerprint = system_fingerprint(model)
        self._fingerprint = b',"system_fingerprint":' + json_str(self.fingerprint)
        obj = b"chat.completion.chunk" if chat else b"text_completion"
        self._head = (
            b'data: {"id":'
            + json_str(request_id)
            + b',"object":"'
            + obj
            + b'","created":%d' % created
            + b',"model":'
            + json_str(model)
            + b',"choices":['
        )
        if chat:
            self._open = self._head + b'{"index":0,"delta":{"content":'
            self._mid = b'},"logprobs":null,"finish_reason":null,"token_ids":null}]'
        else:
            self._open = self._head + b'{"index":0,"text":'
            self._mid = (
                b',"logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]'
            )

    def _usage(self, completion_tokens: int, final: bool = False) -> bytes:
        # Chat's per-chunk usage passes completion_tokens_details=None explicitly; the final usage
        # chunk is dumped with exclude_none, so it has no such key.
        p = self.prompt_tokens
        details = b',"completion_tokens_details":null' if (self.chat and not final) else b""
        return b'"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d%b}' % (
            p,
            p + completion_tokens,
            completion_tokens,
            details,
        )

    @staticmethod
    def _close(emit_ns: int | None) -> bytes:
        return b"}\n\n" if emit_ns is None else b',"sim_emit_ns":%d}\n\n' % emit_ns

    def finish_tail(self, finish_reason: str, stop_reason: str | None) -> bytes:
        """The choice tail of the last token event (carries finish_reason, as vLLM's last delta does)."""
        reason = (
            json_str(finish_reason) + b',"stop_reason":' + (b"null" if stop_reason is None else json_str(stop_reason))
        )
        if self.chat:
            return b'},"logprobs":null,"finish_reason":' + reason + b',"token_ids":null}]'
        return b',"logprobs":null,"finish_reason":' + reason + b',"prompt_token_ids":null,"token_ids":null}]'

    def token_event(
        self, text: str, completion_tokens: int, tail: bytes | None, emit_ns: int | None, fingerprint: bool = False
    ) -> bytes:
        """One token chunk; `tail` is `finish_tail(...)` for the last token, None otherwise.

        `fingerprint`: the terminal chunk carries system_fingerprint when no usage chunk follows it.
        """
        out = self._open + json_str(text) + (self._mid if tail is None else tail)
        if self.continuous_usage:
            out += b"," + self._usage(completion_tokens)
        if fingerprint:
            out += self._fingerprint
        return out + self._close(emit_ns)

    def role_event(self, emit_ns: int | None) -> bytes:
        """Chat's first chunk: the assistant role with empty content, before any token."""
        out = (
            self._head + b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]'
        )
        if self.continuous_usage:
            out += b"," + self._usage(0)
        return out + b',"prompt_token_ids":null,"prompt_text":null' + self._close(emit_ns)

    def usage_event(self, completion_tokens: int, emit_ns: int | None) -> bytes:
        """The trailing usage-only chunk (stream_options.include_usage): empty choices."""
        return (
            self._head + b"]," + self._usage(completion_tokens, final=True) + self._fingerprint + self._close(emit_ns)
        )

    def full_response(
        self,
        text: str,
        finish_reason: str,
        stop_reason: str | None,
        completion_tokens: int,
        choice_extras: dict[str, object] | None = None,
    ) -> bytes:
        """Non-streaming body (vLLM's CompletionResponse / ChatCompletionResponse, `model_dump`).

        `choice_extras` replaces completion choice fields (echoed text, logprobs, prompt_logprobs)."""
        p = self.prompt_tokens
        usage = {
            "prompt_tokens": p,
            "total_tokens": p + completion_tokens,
            "completion_tokens": completion_tokens,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        }
        top = {"service_tier": None, "system_fingerprint": self.fingerprint, "usage": usage}
        tail = {"kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
        body: dict[str, object]
        if self.chat:
            message: dict[str, object] = {
                "role": "assistant",
                "content": text,
                "refusal": None,
                "annotations": None,
                "audio": None,
                "function_call": None,
                "reasoning": None,
            }
            choice = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": stop_reason,
                "token_ids": None,
                "routed_experts": None,
            }
            body = {"id": self.request_id, "object": "chat.completion", "created": self.created, "model": self.model}
            body |= {"choices": [choice], **top, "prompt_logprobs": None, "prompt_token_ids": None}
            body |= {"prompt_text": None, **tail}
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": stop_reason,
                "token_ids": None,
                "prompt_logprobs": None,
                "prompt_token_ids": None,
                "routed_experts": None,
            }
            choice |= choice_extras or {}
            body = {"id": self.request_id, "object": "text_completion", "created": self.created, "model": self.model}
            body |= {"choices": [choice], **top, **tail}
        return orjson.dumps(body)
