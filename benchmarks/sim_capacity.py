"""Capacity of one simulator process: N concurrent streams in fixed-timing mode (ITL 20 ms by default).

Starts `python -m simulator` pinned to CPU 0 (taskset, when available) with --emission-lag-log, pins
this client to CPU 1, and keeps N keep-alive connections busy with streaming completions (closed loop:
each connection sends its next request as soon as the previous one ends). Stream starts are staggered
evenly over one request duration (the ramp); the warm-up (ramp + 1 s by default) is excluded. Reports
output tokens/s counted by the client over the --duration-s window, and the server-side emission lag
(actual write time − scheduled time, same host-wide monotonic clock) percentiles over that window.

    .venv/bin/python benchmarks/sim_capacity.py [--streams 512] [--tokens 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from runformat.batchmeans import percentile
from simulator.launch import start_simulator

REPO = Path(__file__).resolve().parents[1]


class StreamClient(asyncio.Protocol):
    """One keep-alive connection issuing streaming requests back to back; counts token events."""

    def __init__(self, request: bytes, stats: dict[str, float], stop_at: float, window_start: float) -> None:
        self.request = request
        self.stats = stats
        self.stop_at = stop_at
        self.window_start = window_start
        self.transport: asyncio.Transport | None = None
        self.tail = b""
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.tail + data
        events = buf.count(b"data: {")
        now = time.monotonic()
        if now >= self.window_start:
            self.stats["window_tokens"] += events
        self.stats["tokens"] += events
        if b"0\r\n\r\n" in buf[-16:] and b"data: [DONE]" in buf:
            self.stats["requests"] += 1
            self.tail = b""
            if now < self.stop_at:
                self.transport.write(self.request)  # type: ignore[union-attr]
            else:
                self.transport.close()  # type: ignore[union-attr]
            return
        self.tail = buf[-32:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def run_clients(
    port: int, streams: int, tokens: int, itl_s: float, duration_s: float, warmup_s: float
) -> dict[str, float]:
    body = json.dumps(
        {"prompt": "Measure the simulator.", "max_tokens": tokens, "ignore_eos": True, "stream": True}
    ).encode()
    request = (
        b"POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%b" % (len(body), body)
    )
    loop = asyncio.get_running_loop()
    stats = {"tokens": 0.0, "window_tokens": 0.0, "requests": 0.0}
    start = time.monotonic()
    window_start = start + warmup_s
    stop_at = start + warmup_s + duration_s
    clients = []
    # Stagger starts evenly over one request's duration, as a ramping load generator would. Streams that
    # start together stay phase-locked: all their tokens fall due at one instant and all their follow-up
    # requests arrive in one burst, which measures burst handling rather than steady-state capacity.
    stagger_s = tokens * itl_s / streams
    for k in range(streams):
        await asyncio.sleep(max(0.0, start + k * stagger_s - time.monotonic()))
        _, proto = await loop.create_connection(
            lambda: StreamClient(request, stats, stop_at, window_start), "127.0.0.1", port
        )
        clients.append(proto)
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    window_end = time.monotonic()
    tokens_at_end = stats["window_tokens"]
    await asyncio.wait_for(asyncio.gather(*(c.closed for c in clients)), timeout=120)
    stats["window_s"] = window_end - window_start
    stats["window_start_ns"] = window_start * 1e9  # time.monotonic is the server's monotonic_ns clock
    stats["window_end_ns"] = window_end * 1e9
    stats["throughput_tok_s"] = tokens_at_end / stats["window_s"]
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=512, help="concurrent streams (connections)")
    parser.add_argument("--tokens", type=int, default=200, help="max_tokens per request (ignore_eos)")
    parser.add_argument("--itl-ms", type=float, default=20.0, help="fixed inter-token latency")
    parser.add_argument("--ttft-ms", type=float, default=20.0, help="fixed time to first token")
    parser.add_argument("--duration-s", type=float, default=15.0, help="measurement window")
    parser.add_argument("--warmup-s", type=float, default=None, help="excluded from all figures (default: ramp + 1 s)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = parser.parse_args()

    if args.warmup_s is None:
        args.warmup_s = (args.ttft_ms + args.tokens * args.itl_ms) / 1e3 + 1.0
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    with tempfile.TemporaryDirectory() as tmp:
        lag_path = Path(tmp) / "lag.txt"
        sim_args = ["--fixed-ttft-ms", str(args.ttft_ms), "--fixed-itl-ms", str(args.itl_ms)]
        sim_args += ["--emission-lag-log", str(lag_path)]
        if pin:
            os.sched_setaffinity(0, {1})
        try:
            sim = start_simulator(sim_args, cpu=0 if pin else None)
        except RuntimeError as exc:
            sys.exit(str(exc))
        port = sim.port
        try:
            try:
                import uvloop

                asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            except ImportError:
                pass
            stats = asyncio.run(
                run_clients(port, args.streams, args.tokens, args.itl_ms / 1e3, args.duration_s, args.warmup_s)
            )
        finally:
            sim.stop(timeout_s=30)
        rows = [line.split() for line in lag_path.read_text().splitlines()]
    lo, hi = stats["window_start_ns"], stats["window_end_ns"]
    lags = sorted(int(lag) for due, lag in rows if lo <= int(due) < hi)
    result = {
        "streams": args.streams,
        "tokens_per_request": args.tokens,
        "itl_ms": args.itl_ms,
        "ttft_ms": args.ttft_ms,
        "pinned_server_cpu0_client_cpu1": pin,
        "window_s": round(stats["window_s"], 3),
        "throughput_tok_s": round(stats["throughput_tok_s"], 1),
        "ideal_tok_s": round(args.streams / (args.itl_ms / 1e3), 1),
        "requests_completed": int(stats["requests"]),
        "lag_events_in_window": len(lags),
        "lag_events_total": len(rows),
        "lag_p50_ms": round(percentile(lags, 50.0) / 1e6, 4),
        "lag_p99_ms": round(percentile(lags, 99.0) / 1e6, 4),
        "lag_p999_ms": round(percentile(lags, 99.9) / 1e6, 4),
        "lag_max_ms": round(lags[-1] / 1e6, 4) if lags else float("nan"),
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
