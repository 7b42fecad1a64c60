"""Options for how traffic arrives and what it contains: arrival rate and process, trace replay, datasets.

Registered on Locust's parser next to the suite's other options (so they work in `locust.conf`, as
`LOCUST_*` variables and on workers); read once into `TrafficSettings`. Closed loop stays the default:
with neither --arrival-rate nor --trace every user sends its next request when the last one ends.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadgen.arrivals import ArrivalError, ArrivalKind, ArrivalSpec
from loadgen.workloads import MOONCAKE_BLOCK_TOKENS

__all__ = ["TrafficSettings", "add_traffic_arguments"]


def _positive(what: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not number > 0 or number == float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what} > 0, got {value}")
        return number

    return parse


def _ratio(value: str) -> float:
    ratio = float(value)
    if not 0.0 <= ratio < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return ratio


def add_traffic_arguments(add: Callable[..., None]) -> None:
    """Register the traffic options through `add(flag, **argparse_kwargs)` (see loadgen.options)."""
    add(
        "--arrival-rate",
        type=_positive("requests per second"),
        default=None,
        metavar="R",
        help="Open loop: R requests per second for the whole test (split across --processes / workers), on "
        "their own schedule however fast the server answers; -u is then the pool of users that can have a "
        "request in flight. An arrival that finds every user busy is dropped and counted (see "
        "--arrival-queue). Default: off (closed loop).",
    )
    add(
        "--arrival",
        choices=[k.value for k in ArrivalKind],
        default=ArrivalKind.POISSON.value,
        help="Arrival process for --arrival-rate: poisson (exponential gaps), gamma (gaps of shape "
        "--burstiness) or constant (equal gaps). Default: poisson.",
    )
    add(
        "--burstiness",
        type=_positive("a gamma shape"),
        default=1.0,
        metavar="B",
        help="Gamma shape of the gaps with --arrival gamma, as vllm bench serve's --burstiness: below 1 "
        "burstier than Poisson, above 1 more regular, 1 is Poisson. Default: 1.",
    )
    add("--arrival-seed", type=int, default=0, help="Seed of the arrival schedule. Default: 0.")
    add(
        "--arrival-queue",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="When every pooled user is busy, queue an arrival for the next free user (its queueing delay "
        "is the request's schedule_lag_ms) instead of dropping it. Default: drop and count.",
    )
    add(
        "--trace",
        default=None,
        metavar="FILE.jsonl",
        help="Replay a trace (Mooncake format: one JSON object per line with timestamp in ms, input_length, "
        "output_length, optional hash_ids): each row is sent at its timestamp with a prompt of input_length "
        "tokens and max_tokens = output_length, open loop, drops counted as with --arrival-rate.",
    )
    add(
        "--trace-time-scale",
        type=_positive("a factor"),
        default=1.0,
        metavar="F",
        help="Multiply trace timestamps by F (0.5 replays twice as fast). Default: 1.",
    )
    add(
        "--trace-block-tokens",
        type=int,
        default=MOONCAKE_BLOCK_TOKENS,
        metavar="N",
        help="Tokens per trace hash id: a row's prompt is the blocks its hash_ids name, N tokens each, equal ids "
        "giving identical blocks (so a prefix cache sees the trace's sharing). Default: %(default)s (Mooncake's).",
    )
    add(
        "--trace-salt",
        default=None,
        metavar="TEXT",
        help="Mixed into every hash-id block, so blocks of this replay differ from an earlier replay's that a "
        "server may still cache. Default: drawn at random per run; give one to send the same blocks again.",
    )
    add(
        "--dataset",
        default=None,
        metavar="PATH",
        help="Requests from a dataset: ShareGPT-format JSON (first human turn = prompt, the recorded "
        "reply's length = max_tokens), or .jsonl/.csv rows with 'prompt' and optional 'output_tokens'. "
        "Overrides --docs. Default: none.",
    )
    add(
        "--prompt-tokens-range-ratio",
        type=_ratio,
        default=0.0,
        metavar="R",
        help="With --prompt-tokens P: draw each prompt's length uniformly from [P*(1-R), P*(1+R)] (vllm "
        "bench serve's --random-range-ratio for inputs). Default: 0.",
    )
    add(
        "--prefix-groups",
        type=int,
        default=1,
        metavar="G",
        help="With --shared-prefix-tokens L: G different L-token prefixes (system prompts), each request "
        "using one of them, so a prefix cache holds G prefixes. Default: 1.",
    )


@dataclass(frozen=True)
class TrafficSettings:
    """The traffic options as parsed; `arrival_spec()` / `open_loop` say whether the run is open loop."""

    arrival_rate: float | None = None
    arrival: str = ArrivalKind.POISSON.value
    burstiness: float = 1.0
    arrival_seed: int = 0
    arrival_queue: bool = False
    trace: str | None = None
    trace_time_scale: float = 1.0
    trace_block_tokens: int = MOONCAKE_BLOCK_TOKENS
    trace_salt: str | None = None
    dataset: str | None = None
    prompt_tokens_range_ratio: float = 0.0
    prefix_groups: int = 1

    @property
    def open_loop(self) -> bool:
        return self.arrival_rate is not None or self.trace is not None

    @classmethod
    def from_options(cls, options: Any) -> TrafficSettings:
        get = getattr
        rate = get(options, "arrival_rate", None)
        return cls(
            arrival_rate=float(rate) if rate not in (None, "") else None,
            arrival=str(get(options, "arrival", "poisson") or "poisson"),
            burstiness=float(get(options, "burstiness", 1.0) or 1.0),
            arrival_seed=int(get(options, "arrival_seed", 0) or 0),
            arrival_queue=_bool(get(options, "arrival_queue", False)),
            trace=get(options, "trace", None) or None,
            trace_time_scale=float(get(options, "trace_time_scale", 1.0) or 1.0),
            trace_block_tokens=int(get(options, "trace_block_tokens", MOONCAKE_BLOCK_TOKENS) or 0),
            trace_salt=get(options, "trace_salt", None) or None,
            dataset=get(options, "dataset", None) or None,
            prompt_tokens_range_ratio=float(get(options, "prompt_tokens_range_ratio", 0.0) or 0.0),
            prefix_groups=int(get(options, "prefix_groups", 1) or 1),
        )

    def check(self) -> None:
        """Raise `ArrivalError` for combinations no parser type can catch (named after the options)."""
        if self.arrival_rate is not None and self.trace is not None:
            raise ArrivalError("--arrival-rate and --trace exclude each other: a trace brings its own schedule")
        if self.arrival_rate is not None:
            self.arrival_spec()
        if self.burstiness != 1.0 and self.arrival != ArrivalKind.GAMMA:
            raise ArrivalError(f"--burstiness {self.burstiness:g} applies only to --arrival gamma")
        if self.trace_block_tokens < 1:
            raise ArrivalError(f"--trace-block-tokens: expected an integer >= 1, got {self.trace_block_tokens}")
        if self.prefix_groups < 1:
            raise ArrivalError(f"--prefix-groups: expected an integer >= 1, got {self.prefix_groups}")

    def arrival_spec(self) -> ArrivalSpec:
        if self.arrival_rate is None:
            raise ArrivalError("--arrival-rate is not set")
        try:
            kind = ArrivalKind(self.arrival)
        except ValueError:
            allowed = ", ".join(k.value for k in ArrivalKind)
            raise ArrivalError(f"--arrival: {self.arrival!r} is not one of {allowed}") from None
        return ArrivalSpec(self.arrival_rate, kind, self.burstiness, self.arrival_seed)


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")
