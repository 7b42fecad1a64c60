"""What GuideLLM and AIPerf leave behind, read back for `benchmarks/run_all.py`; and the per-event delay log
their wrappers write (benchmarks/guidellm_peer.py, benchmarks/aiperf_peer.py).

Standard library only: the wrappers import this module inside the peers' own venvs.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing.util
import os
from array import array
from pathlib import Path
from typing import Any

__all__ = ["DelayLog", "aiperf_samples", "guidellm_samples", "read_delays"]

_FLUSH_VALUES = 3 * 1024  # (arrival_ns, emit_ns, first) triples buffered per write


class DelayLog:
    """Per-process binary log of token events: client arrival (CLOCK_MONOTONIC ns), the simulator's
    `sim_emit_ns`, and whether the event is its request's first. One file per process (the peers run
    several); buffered so that a record costs an append, flushed at exit and every 1,024 events."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.pid = -1
        self.values: array[int] = array("q")
        self.seen: set[Any] = set()

    def add(self, arrival_ns: int, emit_ns: int, request_id: Any) -> None:
        if self.pid != os.getpid():
            self._start_process()
        first = request_id not in self.seen
        if first:
            self.seen.add(request_id)
        self.values.extend((arrival_ns, emit_ns, first))
        if len(self.values) >= _FLUSH_VALUES:
            self.flush()

    def flush(self) -> None:
        if self.values and self.pid == os.getpid():
            with (self.out_dir / f"delays-{self.pid}.bin").open("ab") as fh:
                self.values.tofile(fh)
            del self.values[:]

    def _start_process(self) -> None:
        # A forked child inherits the parent's buffer: the parent writes those events, the child starts empty.
        self.pid = os.getpid()
        del self.values[:]
        self.seen.clear()
        atexit.register(self.flush)
        multiprocessing.util.Finalize(self, self.flush, exitpriority=100)  # multiprocessing children skip atexit


def read_delays(out_dir: Path, window_mono_s: tuple[float, float]) -> tuple[list[float], list[float]]:
    """Client delay (ms) of the first-token and later-token events that arrived within the window."""
    events: set[tuple[int, int, int]] = set()  # a message parsed by two processes counts once
    for path in sorted(out_dir.glob("delays-*.bin")):
        values = array("q")
        values.frombytes(path.read_bytes()[: path.stat().st_size // 24 * 24])
        events.update(zip(values[0::3], values[1::3], values[2::3], strict=True))
    first: list[float] = []
    later: list[float] = []
    t0_ns, t1_ns = window_mono_s[0] * 1e9, window_mono_s[1] * 1e9
    for arrival_ns, emit_ns, is_first in sorted(events):
        if t0_ns <= arrival_ns <= t1_ns:
            (first if is_first else later).append((arrival_ns - emit_ns) / 1e6)
    return first, later


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{where}: expected a field {key!r}")
    return obj[key]


def guidellm_samples(path: Path, window_wall_s: tuple[float, float]) -> tuple[list[float], list[float]]:
    """TTFT and ITL (ms) of GuideLLM's successful requests that started and ended within the window, from its
    benchmarks JSON (`outputs: [{kind: json}]`). GuideLLM keeps only a request's first and last token
    times, so its ITL is one value per request: (last − first) ÷ (output tokens − 1)."""
    data = json.loads(path.read_text())
    ttft: list[float] = []
    itl: list[float] = []
    for i, bench in enumerate(_field(data, "benchmarks", str(path))):
        requests = _field(_field(bench, "requests", f"{path}: benchmarks[{i}]"), "successful", f"{path}: requests")
        for j, req in enumerate(requests):
            where = f"{path}: benchmarks[{i}].requests.successful[{j}]"
            start, end = _field(req, "request_start_time", where), _field(req, "request_end_time", where)
            if start < window_wall_s[0] or end > window_wall_s[1]:
                continue
            first = _field(req, "time_to_first_token_ms", where)
            gap = _field(req, "inter_token_latency_ms", where)
            if first is not None:
                ttft.append(float(first))
            if gap is not None:
                itl.append(float(gap))
    return ttft, itl


def aiperf_samples(path: Path, window_wall_s: tuple[float, float]) -> tuple[list[float], list[float]]:
    """TTFT and every inter-chunk gap (ms) of AIPerf's profiling-phase records that started and ended within
    the window, from its per-record export (profile_export.jsonl, `--export-level records`, the default)."""
    ttft: list[float] = []
    itl: list[float] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        record = json.loads(line)
        meta = _field(record, "metadata", where)
        if meta.get("benchmark_phase", "profiling") != "profiling" or meta.get("was_cancelled"):
            continue
        start_ns = _field(meta, "request_start_ns", f"{where} metadata")
        end_ns = _field(meta, "request_end_ns", f"{where} metadata")
        if start_ns < window_wall_s[0] * 1e9 or end_ns > window_wall_s[1] * 1e9:
            continue
        metrics = _field(record, "metrics", where)
        if "time_to_first_token" not in metrics:
            continue  # an errored request
        ttft.append(_ms(metrics["time_to_first_token"], f"{where} time_to_first_token"))
        if "inter_chunk_latency" in metrics:
            gaps = metrics["inter_chunk_latency"]
            unit = {"unit": gaps.get("unit")}
            itl.extend(_ms(unit | {"value": v}, f"{where} inter_chunk_latency") for v in gaps["value"])
    return ttft, itl


_TO_MS = {"ms": 1.0, "ns": 1e-6, "us": 1e-3, "s": 1e3, "sec": 1e3}


def _ms(metric: dict[str, Any], where: str) -> float:
    unit = metric.get("unit")
    if unit not in _TO_MS:
        raise ValueError(f"{where}: unit {unit!r}, expected one of {sorted(_TO_MS)}")
    return float(metric["value"]) * _TO_MS[unit]
