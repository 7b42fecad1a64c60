"""Command line for the simulated vLLM server (`python -m simulator`, console script `llm-sim`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulator.faults import FAULT_KINDS, FaultConfig
from simulator.profiles import DEFAULT_PROFILE, ProfileError, describe, load_profiles
from simulator.server import ServerSettings, serve
from simulator.textgen import Divergence

__all__ = ["build_parser", "main"]

_FAULT_HELP = {
    "http_503": "answer 503 Service Unavailable with vLLM's error JSON",
    "http_429": "answer 429 Too Many Requests with a Retry-After header (--fault-retry-after-s)",
    "http_500": "answer 500 with vLLM's error JSON (type InternalServerError)",
    "zero_token": "answer 200 with a finished response that carries no output token",
    "reset": "reset the TCP connection (RST) halfway through the response",
    "stall": "send no bytes for --fault-stall-ms halfway through the response, then continue",
    "malformed_sse": "insert a malformed SSE line (field name without colon) halfway through the stream",
    "non_json": "insert a `data:` line that is not JSON halfway through the stream",
    "error_event": "end a 200 stream halfway with vLLM's streaming error event, then [DONE]",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="A vLLM-compatible OpenAI API server that simulates a GPU with a roofline model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Fault values: 0 = off, 0<v<=1 = probability per request, v>1 = every v-th request. "
        "Faults combine; the first that fires (in the order listed) wins.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (0 = any free port)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="GPU/model profile name (see --list-profiles)")
    parser.add_argument("--profiles-file", type=Path, default=None, help="profiles TOML")
    parser.add_argument("--list-profiles", action="store_true", help="print profiles with assumptions and exit")
    parser.add_argument("--model", default=None, help="served model name (None: the profile's model)")
    parser.add_argument("--max-model-len", type=int, default=None, help="context length")
    parser.add_argument("--max-num-seqs", type=int, default=None, help="max running sequences")
    parser.add_argument("--max-num-batched-tokens", type=int, default=None, help="token budget per step")
    parser.add_argument("--seed", type=int, default=0, help="seed for text when a request gives none, and faults")
    parser.add_argument("--fixed-ttft-ms", type=float, default=None, help="fixed timing: first token X ms after read")
    parser.add_argument("--fixed-itl-ms", type=float, default=None, help="fixed timing: Y ms between tokens")
    parser.add_argument("--firehose", action="store_true", help="write all events as fast as the socket takes them")
    parser.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024, help="larger bodies get 413")
    parser.add_argument(
        "--anchored-steps",
        action="store_true",
        help="back-to-back engine steps follow the model's timeline (host time shorter than a step is absorbed)",
    )
    parser.add_argument(
        "--emission-lag-log", type=Path, default=None, help="on exit, write each token's emission lag (ns) here"
    )
    parser.add_argument(
        "--divergence-rate",
        type=float,
        default=None,
        help="share of prompts whose output diverges from the undiverged text from one token on "
        "(None: 0 for 16-bit weights, 0.15 for quantized profiles)",
    )
    parser.add_argument("--divergence-seed", type=int, default=0, help="picks which prompts and positions diverge")
    parser.add_argument(
        "--logprob-drift",
        type=float,
        default=None,
        help="extra logprob penalty (nats, up to this per token) when scoring text "
        "(None: 0 for 16-bit weights, 0.1 for quantized profiles)",
    )
    for kind in FAULT_KINDS:
        flag = "--fault-" + kind.replace("_", "-").replace("http-", "") + "-rate"
        parser.add_argument(flag, dest=f"fault_{kind}", type=float, default=0.0, help=_FAULT_HELP[kind])
    parser.add_argument("--fault-stall-ms", type=float, default=2000.0, help="length of an injected stall")
    parser.add_argument("--fault-retry-after-s", type=int, default=1, help="Retry-After value of injected 429s")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        profiles = load_profiles(args.profiles_file)
    except (ProfileError, OSError) as exc:
        sys.exit(f"error: {exc}")
    if args.list_profiles:
        print("\n\n".join(describe(p) for p in profiles.values()))
        return
    if args.profile not in profiles:
        sys.exit(f"error: unknown profile {args.profile!r}; available: {', '.join(profiles)}")
    profile = profiles[args.profile]
    try:
        faults = FaultConfig(
            **{kind: getattr(args, f"fault_{kind}") for kind in FAULT_KINDS},
            stall_ms=args.fault_stall_ms,
            retry_after_s=args.fault_retry_after_s,
        )
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    quantized = profile.weight_bytes_per_param < 2.0
    rate = args.divergence_rate if args.divergence_rate is not None else (0.15 if quantized else 0.0)
    drift = args.logprob_drift if args.logprob_drift is not None else (0.1 if quantized else 0.0)
    if not 0.0 <= rate <= 1.0 or drift < 0:
        sys.exit("error: --divergence-rate must be in [0, 1] and --logprob-drift >= 0")
    if (args.fixed_ttft_ms is None) != (args.fixed_itl_ms is None):
        sys.exit("error: --fixed-ttft-ms and --fixed-itl-ms go together")
    settings = ServerSettings(
        profile=profile,
        model_name=args.model or profile.model,
        max_model_len=args.max_model_len or profile.max_model_len,
        max_num_seqs=args.max_num_seqs or profile.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens or profile.max_num_batched_tokens,
        seed=args.seed,
        fixed_ttft_ms=args.fixed_ttft_ms,
        fixed_itl_ms=args.fixed_itl_ms,
        firehose=args.firehose,
        faults=faults,
        max_body_bytes=args.max_body_bytes,
        emission_lag_log=args.emission_lag_log,
        divergence=Divergence(rate, args.divergence_seed),
        logprob_drift=drift,
        anchored_steps=args.anchored_steps,
    )
    if settings.max_model_len > profile.kv_capacity_tokens:
        sys.exit(f"error: max_model_len {settings.max_model_len} exceeds KV capacity {profile.kv_capacity_tokens}")
    serve(settings, args.host, args.port)
