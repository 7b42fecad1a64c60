"""The two OpenAI-compatible APIs as a small strategy: where to POST, what to send, where the text is.

Everything else (streaming, timing, usage, errors) is shared by one stream loop in `loadgen.stream`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "API_NAMES",
    "ChatApi",
    "CompletionsApi",
    "GenerationParams",
    "LLMApi",
    "Prompt",
    "bearer_headers",
    "get_api",
]

# A prompt is plain text for /v1/completions, or chat messages ({"role", "content"}) for chat.
Prompt = str | list[dict[str, str]]


def bearer_headers(key: str | None) -> dict[str, str]:
    """The OpenAI API's Authorization header for `key`; none without a key."""
    return {"Authorization": f"Bearer {key}"} if key else {}


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling settings shared by every request of a user."""

    model: str
    max_new_tokens: int
    temperature: float = 0.0
    ignore_eos: bool = True


class LLMApi(Protocol):
    name: str
    path: str

    def build_payload(self, prompt: Prompt, params: GenerationParams, stream_options: bool) -> dict[str, Any]:
        """The JSON body; `stream_options` asks for continuous usage (dropped for servers that reject it)."""
        ...

    def extract_text(self, choice: dict[str, Any]) -> str | None:
        """The output text one streamed choice carries (None or "" when it carries none)."""
        ...


def _common(params: GenerationParams, stream_options: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": params.model,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "stream": True,
    }
    if params.ignore_eos:
        body["ignore_eos"] = True  # vLLM extension: generate exactly max_tokens
    if stream_options:
        body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    return body


def _as_messages(prompt: Prompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def _as_text(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1:
        return prompt[0]["content"]
    # A conversation sent to /v1/completions becomes a plain transcript that asks for the next reply.
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in prompt]
    return "\n\n".join([*lines, "Assistant:"])


class CompletionsApi:
    name = "completions"
    path = "/v1/completions"

    def build_payload(self, prompt: Prompt, params: GenerationParams, stream_options: bool) -> dict[str, Any]:
        return {**_common(params, stream_options), "prompt": _as_text(prompt)}

    def extract_text(self, choice: dict[str, Any]) -> str | None:
        return choice.get("text")


class ChatApi:
    name = "chat"
    path = "/v1/chat/completions"

    def build_payload(self, prompt: Prompt, params: GenerationParams, stream_options: bool) -> dict[str, Any]:
        return {**_common(params, stream_options), "messages": _as_messages(prompt)}

    def extract_text(self, choice: dict[str, Any]) -> str | None:
        delta = choice.get("delta")
        if not delta:
            return None
        # Reasoning models stream thinking tokens separately; they are output tokens all the same.
        return delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")


_APIS: dict[str, LLMApi] = {"completions": CompletionsApi(), "chat": ChatApi()}
API_NAMES = tuple(_APIS)


def get_api(name: str) -> LLMApi:
    try:
        return _APIS[name]
    except KeyError:
        raise ValueError(f"unknown api {name!r}; choose one of: {', '.join(API_NAMES)}") from None
