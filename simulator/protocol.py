"""OpenAI/vLLM request validation and error bodies, shaped like vLLM's OpenAI-compatible server.

Unknown request fields are accepted and ignored (vLLM logs and ignores them). Error bodies are
`{"error": {"message", "type", "param", "code"}}` with `code` = the HTTP status, as vLLM's ErrorResponse.
Request-schema errors use the status phrase as `type` ("Bad Request"), as vLLM's validation handler does;
errors raised while serving use vLLM's exception names ("BadRequestError", "NotFoundError", ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson

from simulator.tokenizer import apply_chat_template, pieces

__all__ = ["ApiError", "GenerationRequest", "error_body", "parse_generation_request"]


class ApiError(Exception):
    """An error answered with vLLM's error JSON and `status`."""

    def __init__(self, status: int, message: str, err_type: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type or HTTPStatus(status).phrase
        self.param = param

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.err_type, self.param)


def error_body(status: int, message: str, err_type: str, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": err_type, "param": param, "code": status}})


@dataclass(frozen=True)
class GenerationRequest:
    """A validated completion or chat request, reduced to what the simulator needs."""

    chat: bool
    model: str | None
    prompt_text: str  # the prompt as the model sees it (chat: after the chat template)
    prompt_tokens: int
    max_tokens: int | None  # None: up to max_model_len (chat default)
    stream: bool
    include_usage: bool
    continuous_usage: bool
    ignore_eos: bool
    seed: int | None
    stop: list[str]
    logprobs: int | None = None  # completions only: per-token logprobs (vLLM: top-N + the chosen token)
    echo: bool = False  # completions only: the prompt is prepended to the text (and to logprobs)
    prompt_logprobs: int | None = None  # vLLM extension: logprobs of every prompt token


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, message, "Bad Request", param)


def _invalid(message: str, param: str) -> ApiError:
    """vLLM's VLLMValidationError: BadRequestError naming the parameter in the message and in `param`."""
    return ApiError(HTTPStatus.BAD_REQUEST, f"{message} (parameter={param})", "BadRequestError", param)


def _opt(body: dict[str, Any], key: str, kinds: tuple[type, ...], name: str) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise _bad(f"{key}: Input should be a valid {name}", key)
    if not isinstance(value, kinds):
        raise _bad(f"{key}: Input should be a valid {name}", key)
    return value


def _stop_list(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise _bad("stop: Input should be a valid string or list of strings", "stop")


def _completion_prompt(body: dict[str, Any]) -> tuple[str, int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str) and prompt:
        return prompt, len(pieces(prompt)) + 1  # + BOS (add_special_tokens defaults to true)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return " ".join(map(str, prompt)), len(prompt)
    if prompt is None or prompt == "" or prompt == []:
        raise _invalid("Either prompt or prompt_embeds must be provided and non-empty.", "prompt")
    raise _bad("prompt: the simulator accepts one prompt: a string or a list of token ids", "prompt")


def _chat_prompt(body: dict[str, Any]) -> tuple[str, int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: Field required (a non-empty list)", "messages")
    turns: list[tuple[str, str]] = []
    for k, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise _bad(f"messages.{k}: each message needs a string 'role'", "messages")
        content = msg.get("content")
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            content = "\n".join(t for t in texts if isinstance(t, str))
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise _bad(f"messages.{k}.content: Input should be a valid string or list of parts", "messages")
        turns.append((msg["role"], content))
    text = apply_chat_template(turns)
    return text, len(pieces(text))


def parse_generation_request(raw: bytes, chat: bool) -> GenerationRequest:
    """Validate a /v1/completions or /v1/chat/completions body; raises ApiError(400) like vLLM."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"JSON decode error: {exc}") from exc
    if not isinstance(body, dict):
        raise _bad("Input should be a valid dictionary or object to extract fields from")
    model = _opt(body, "model", (str,), "string")
    prompt_text, prompt_tokens = _chat_prompt(body) if chat else _completion_prompt(body)
    max_tokens = _opt(body, "max_completion_tokens", (int,), "integer") if chat else None
    if max_tokens is None:
        max_tokens = _opt(body, "max_tokens", (int,), "integer")
    if max_tokens is None and not chat:
        max_tokens = 16  # vLLM's CompletionRequest default
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"max_tokens must be at least 1, got {max_tokens}.", "BadRequestError")
    n = _opt(body, "n", (int,), "integer")
    if n is not None and n != 1:
        raise ApiError(HTTPStatus.BAD_REQUEST, "The simulator supports n=1 only.", "BadRequestError", "n")
    temperature = _opt(body, "temperature", (int, float), "number")
    if temperature is not None and temperature < 0:
        raise _bad("temperature: Input should be greater than or equal to 0", "temperature")
    stream = bool(_opt(body, "stream", (bool,), "boolean"))
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("stream_options: Input should be a valid dictionary", "stream_options")
    if options and not stream:
        raise _invalid("Stream options can only be defined when `stream=True`.", "stream_options")
    # As vLLM's should_include_usage: any stream_options object turns usage on unless include_usage is false.
    include_usage = options is not None and bool(options.get("include_usage", True))
    continuous = options is not None and bool(options.get("continuous_usage_stats", False))
    logprobs, echo, prompt_logprobs = (None, False, None) if chat else _logprob_options(body, stream)
    return GenerationRequest(
        chat=chat,
        model=model,
        prompt_text=prompt_text,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=bool(include_usage),
        continuous_usage=continuous and bool(include_usage),
        ignore_eos=bool(_opt(body, "ignore_eos", (bool,), "boolean")),
        seed=_opt(body, "seed", (int,), "integer"),
        stop=_stop_list(body),
        logprobs=logprobs,
        echo=echo,
        prompt_logprobs=prompt_logprobs,
    )


def _logprob_options(body: dict[str, Any], stream: bool) -> tuple[int | None, bool, int | None]:
    """`logprobs`, `echo` and `prompt_logprobs` of a completion request, checked as vLLM checks them."""
    values = []
    for key in ("logprobs", "prompt_logprobs"):
        value = _opt(body, key, (int,), "integer")
        if value is not None and value < 0 and value != -1:
            raise _invalid(f"`{key}` must be a positive value or -1.", key)
        values.append(value)
    logprobs, prompt_logprobs = values
    echo = bool(_opt(body, "echo", (bool,), "boolean"))
    if stream and (logprobs is not None or echo or prompt_logprobs is not None):
        raise _invalid("The simulator returns logprobs, echo and prompt_logprobs only when `stream=False`.", "stream")
    return logprobs, echo, prompt_logprobs
