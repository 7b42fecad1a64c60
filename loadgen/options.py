"""Command-line options registered on Locust's own parser, and the settings object read from them once.

Registering through `events.init_command_line_parser` makes every option work in `locust.conf`, as a
`LOCUST_*` environment variable, in the web UI's custom-parameters form, and on workers (Locust forwards
non-default options from the master; the API key is the exception, see `loadgen.plugin`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loadgen.apis import API_NAMES, bearer_headers
from loadgen.traffic import TrafficSettings, add_traffic_arguments

__all__ = ["DEFAULT_HOST", "LOOPBACK", "Credential", "Settings", "add_arguments", "is_loopback", "origin"]

DEFAULT_HOST = "http://127.0.0.1:8000"
# Locust's web UI (no authentication: anyone who reaches it can point the load, and the key, at another
# host) and its master port (any process that connects gets the options) listen here unless told otherwise.
LOOPBACK = "127.0.0.1"

# Silence allowed between reads of one response before it fails (the grid and scenarios use it too).
DEFAULT_REQUEST_TIMEOUT_S = 60.0


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _positive_or_none(value: Any) -> float | None:
    return float(value) if value and float(value) > 0 else None


def _ratio(value: str) -> float:
    ratio = float(value)
    if not 0.0 <= ratio < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return ratio


# A server slower than this per token is not serving; with the silence timeout it bounds a request's total
# time when --request-deadline is not given.
DEADLINE_S_PER_TOKEN = 1.0


def _seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be seconds > 0, got {value}")
    return seconds


def origin(url: str) -> str:
    """`scheme://host:port` of a base URL, lower-cased with the default port filled in: what an API key is
    bound to. An unparsable URL is its own origin (it then matches only itself)."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return url
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def is_loopback(bind_host: str | None) -> bool:
    return (bind_host or "").strip() in (LOOPBACK, "localhost", "::1", "[::1]")


def add_arguments(parser: Any) -> None:
    """Add the suite's options to Locust's argument parser (a configargparse parser), and make Locust's web
    UI and master listen on loopback unless --web-host / --master-bind-host say otherwise."""
    parser.set_defaults(web_host=LOOPBACK, master_bind_host=LOOPBACK)

    def add(flag: str, **kwargs: Any) -> None:
        # Straight on the parser (only LocustArgumentParser.add_argument understands include_in_web_ui),
        # with the LOCUST_* environment variable Locust's own options have.
        env = "LOCUST_" + flag.lstrip("-").replace("-", "_").upper()
        parser.add_argument(flag, env_var=env, **kwargs)

    add("--model", default=None, help="Model name to request. Default: the first model of GET /v1/models.")
    add(
        "--api",
        choices=API_NAMES,
        default="completions",
        help="OpenAI-compatible API to drive: /v1/completions or /v1/chat/completions. Default: completions.",
    )
    add(
        "--max-new-tokens",
        type=int,
        default=None,
        help="max_tokens per request. Default: the user class's (chat 128, batch 256).",
    )
    add(
        "--output-range-ratio",
        type=_ratio,
        default=0.0,
        metavar="R",
        help="Draw each request's max_tokens uniformly from [floor(M*(1-R)), ceil(M*(1+R))] around "
        "--max-new-tokens M (vllm bench serve's --random-range-ratio for outputs). With equal lengths every "
        "closed-loop user finishes in the same engine step, so requests arrive in waves and TTFT depends on "
        "how tightly a client fires each wave; R=0.5 spreads arrivals as real traffic does. Default: 0.",
    )
    add("--temperature", type=float, default=0.0, help="Sampling temperature. Default: 0.")
    add(
        "--ignore-eos",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Ask the server to ignore end-of-sequence and generate exactly max_tokens (vLLM's ignore_eos). "
        "Default: true, because capacity runs need a fixed output length: otherwise throughput and "
        "latency depend on when the model happens to stop, and runs are not comparable. "
        "--no-ignore-eos lets the model stop by itself.",
    )
    add(
        "--docs",
        default=None,
        metavar="PATH",
        help="Prompt source (.txt with documents separated by a '---' line or blank lines, .jsonl with "
        "{'text': ...}, .csv with a 'text' column). Documents for batch, prompts for chat. "
        "Default: the documents shipped with loadgen.",
    )
    add(
        "--prompt-tokens",
        type=int,
        default=None,
        help="Target prompt length in tokens: each text is cut or extended to it, calibrated with the "
        "server's /tokenize when available, else ~4 characters per token. Default: texts as they are.",
    )
    add(
        "--request-timeout",
        type=_seconds,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        help="Seconds the server may stay silent (connecting, before the first byte, or between events) "
        "before the request fails as stalled. Default: 60.",
    )
    add(
        "--request-deadline",
        type=_seconds,
        default=None,
        help="Seconds a whole request may take, however steadily bytes arrive (a server trickling one byte a "
        f"second never trips --request-timeout). Default: --request-timeout + {DEADLINE_S_PER_TOKEN:g} s per "
        "requested token (max_tokens).",
    )
    add(
        "--api-key",
        default=None,
        include_in_web_ui=False,
        help="Bearer token for the server. Default: $OPENAI_API_KEY. Sent only to the --host it was given "
        "with (a host changed in the web UI gets no key), never forwarded to workers (each reads its own "
        "flag or environment), never written to logs or files, and not shown in the web UI.",
    )
    add(
        "--target-label",
        default="",
        help="Label of the system under test written into every request record, e.g. RTX2000-16GB-BF16.",
    )
    add(
        "--request-log",
        default=None,
        metavar="PATH_PREFIX",
        help="Write per-request records to PATH_PREFIX_requests_<host>-<pid>.csv (plus _tokens_ and _client_ "
        "files), one set per process. Default: the --csv prefix, if given.",
    )
    add(
        "--chat-turns",
        type=int,
        default=1,
        help="Turns per chat conversation; later turns resend the history. Default: 1 (single-turn).",
    )
    add(
        "--worker-local-records",
        action=argparse.BooleanOptionalAction,
        default=False,
        include_in_web_ui=False,
        help="Distributed runs: each worker also writes its own PREFIX_*_<host>-<pid>.csv files instead of "
        "shipping its records to the master (which then writes none). Default: ship to the master.",
    )
    add(
        "--record-buffer-mb",
        type=float,
        default=64.0,
        include_in_web_ui=False,
        help="Distributed runs: the most record bytes a worker keeps sent but not yet acknowledged by the "
        "master; past it, new records wait (then are dropped and counted as lost). Default: 64.",
    )
    add(
        "--record-emit-lag",
        action=argparse.BooleanOptionalAction,
        default=False,
        include_in_web_ui=False,
        help="Benchmarks only: when the server stamps events with sim_emit_ns (the simulator's fixed-timing "
        "mode), also write client arrival minus server emission per event to PREFIX_emitlag_*.csv.",
    )
    add(
        "--until-ci",
        type=float,
        default=None,
        metavar="PCT",
        help="End the run once the steady window's throughput_tok_s and p95 end-to-end latency both have a "
        "95%% CI half-width of at most PCT %% of their value (batch means, checked at batch boundaries; "
        "decided on the master from all workers' records), or at -t, which stays the cap. Writes the reason "
        "to PREFIX_stop.json next to the request log. Default: off (run for -t).",
    )
    add(
        "--warmup",
        type=float,
        default=0.0,
        metavar="S",
        help="Seconds from the first request that --until-ci leaves out of its window (the scenario's "
        "warmup_s). Default: 0.",
    )
    add(
        "--min-duration",
        type=float,
        default=0.0,
        metavar="S",
        help="With --until-ci: never stop before S seconds from the first request. Default: 0.",
    )
    add(
        "--unique-prompts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Start every prompt with a short random tag, so no two requests share a first token and a "
        "server's prefix cache (on by default in vLLM) cannot serve resent documents from cache. The tag "
        "fits inside --prompt-tokens. Default: true; --no-unique-prompts resends texts as they are.",
    )
    add(
        "--shared-prefix-tokens",
        type=int,
        default=0,
        metavar="N",
        help="Prepend the same N-token prefix (cut from the prompt source) to every prompt, before the "
        "unique tag: traffic that shares a system prompt, whose prefix a server may cache. Adds to "
        "--prompt-tokens. Default: 0 (nothing shared).",
    )
    add_traffic_arguments(add)


@dataclass(frozen=True)
class Settings:
    """The options a user needs, read once from Locust's parsed options (and the environment)."""

    model: str | None = None
    api: str = "completions"
    max_new_tokens: int | None = None
    output_range_ratio: float = 0.0
    temperature: float = 0.0
    ignore_eos: bool = True
    docs: str | None = None
    prompt_tokens: int | None = None
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    request_deadline_s: float | None = None
    api_key: str | None = field(default=None, repr=False)
    target_label: str = ""
    request_log: str | None = None
    chat_turns: int = 1
    record_emit_lag: bool = False
    worker_local_records: bool = False
    record_buffer_mb: float = 64.0
    until_ci_pct: float | None = None
    warmup_s: float = 0.0
    min_duration_s: float = 0.0
    unique_prompts: bool = True
    shared_prefix_tokens: int = 0
    traffic: TrafficSettings = field(default_factory=TrafficSettings)

    @classmethod
    def from_options(cls, options: Any, environ: Mapping[str, str] | None = None) -> Settings:
        """Build from a parsed-options namespace; missing attributes (e.g. a bare Environment) get defaults."""
        env = os.environ if environ is None else environ
        get = getattr
        api_key = get(options, "api_key", None) or env.get("OPENAI_API_KEY") or None
        request_log = get(options, "request_log", None) or get(options, "csv_prefix", None)
        return cls(
            model=get(options, "model", None) or None,
            api=get(options, "api", "completions") or "completions",
            max_new_tokens=get(options, "max_new_tokens", None),
            output_range_ratio=float(get(options, "output_range_ratio", 0.0) or 0.0),
            temperature=float(get(options, "temperature", 0.0) or 0.0),
            ignore_eos=_bool(get(options, "ignore_eos", True)),
            docs=get(options, "docs", None) or None,
            prompt_tokens=get(options, "prompt_tokens", None) or None,
            request_timeout_s=float(_given(get(options, "request_timeout", None), DEFAULT_REQUEST_TIMEOUT_S)),
            request_deadline_s=_given(get(options, "request_deadline", None), None),
            api_key=api_key,
            target_label=get(options, "target_label", "") or "",
            request_log=request_log or None,
            chat_turns=max(1, int(get(options, "chat_turns", 1) or 1)),
            record_emit_lag=_bool(get(options, "record_emit_lag", False)),
            worker_local_records=_bool(get(options, "worker_local_records", False)),
            record_buffer_mb=float(get(options, "record_buffer_mb", 64.0) or 64.0),
            until_ci_pct=_positive_or_none(get(options, "until_ci", None)),
            warmup_s=float(get(options, "warmup", 0.0) or 0.0),
            min_duration_s=float(get(options, "min_duration", 0.0) or 0.0),
            unique_prompts=_bool(get(options, "unique_prompts", True)),
            shared_prefix_tokens=max(0, int(get(options, "shared_prefix_tokens", 0) or 0)),
            traffic=TrafficSettings.from_options(options),
        )

    def auth_headers(self) -> dict[str, str]:
        return bearer_headers(self.api_key)

    def deadline_s(self, max_new_tokens: int) -> float:
        """The total time one request asking for `max_new_tokens` may take."""
        if self.request_deadline_s is not None:
            return self.request_deadline_s
        return self.request_timeout_s + DEADLINE_S_PER_TOKEN * max_new_tokens


def _given(value: Any, default: Any) -> Any:
    """An option's value; None (not set) means the default. A value set in the web UI is not validated by
    the parser, so a non-positive number of seconds is refused here rather than silently replaced."""
    if value is None or value == "":
        return default
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(f"expected seconds > 0, got {value}")
    return seconds


@dataclass
class Credential:
    """The API key and the one origin it may be sent to. `host` None means "pin to the first host asked
    for" (a worker without --host learns its host from the master)."""

    key: str | None = field(default=None, repr=False)
    host: str | None = None

    def headers_for(self, url: str) -> dict[str, str]:
        """The Authorization header for `url`, or none when the key belongs to another origin."""
        if not self.key:
            return {}
        if self.host is None:
            self.host = url
        if origin(url) != origin(self.host):
            return {}
        return bearer_headers(self.key)
