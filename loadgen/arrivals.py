"""Open-loop arrival schedules: seeded Poisson, gamma and constant processes, and Mooncake-style traces.

Pure: a schedule is a sequence of `Arrival`s with offsets (seconds from the schedule's start) that the
scheduler in `loadgen.openloop` turns into send times. With several Locust processes each one gets a
share of the load (`ArrivalSpec.for_process`), so the processes together offer the whole rate.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

__all__ = [
    "Arrival",
    "ArrivalError",
    "ArrivalKind",
    "ArrivalSpec",
    "TraceRow",
    "arrival_offsets",
    "load_trace",
    "trace_arrivals",
]


class ArrivalError(ValueError):
    """An arrival option or trace file that cannot be used; the message names it and what is expected."""


class ArrivalKind(StrEnum):
    POISSON = "poisson"
    GAMMA = "gamma"
    CONSTANT = "constant"


@dataclass(frozen=True)
class TraceRow:
    """One request of a trace: when (ms from the trace's start) and how long its prompt and output are."""

    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Arrival:
    """One scheduled request: its offset from the schedule's start and, for trace rows, its shape."""

    offset_s: float
    row: TraceRow | None = None


@dataclass(frozen=True)
class ArrivalSpec:
    """What the arrival options ask for. `rate_per_s` is this process's share once `for_process` ran."""

    rate_per_s: float
    kind: ArrivalKind = ArrivalKind.POISSON
    burstiness: float = 1.0
    seed: int = 0
    process_index: int = 0
    processes: int = 1

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ArrivalError(f"--arrival-rate: expected requests per second > 0, got {self.rate_per_s}")
        if not (self.burstiness > 0 and math.isfinite(self.burstiness)):
            raise ArrivalError(f"--burstiness: expected a gamma shape > 0, got {self.burstiness}")

    def for_process(self, index: int, processes: int) -> ArrivalSpec:
        """This process's share (rate / processes), seeded apart from the others'."""
        processes = max(1, processes)
        return replace(self, rate_per_s=self.rate_per_s / processes, process_index=index, processes=processes)


def arrival_offsets(spec: ArrivalSpec) -> Iterator[float]:
    """Arrival offsets in seconds (endless). Poisson: exponential gaps of mean 1/rate; gamma: gaps with
    shape `burstiness` and the same mean (vllm bench serve's --burstiness: < 1 burstier, > 1 smoother,
    1 = Poisson); constant: exactly 1/rate apart, phase-shifted per process so that N processes interleave."""
    rng = random.Random(f"arrivals-{spec.seed}-{spec.process_index}")
    mean_gap = 1.0 / spec.rate_per_s
    if spec.kind is ArrivalKind.CONSTANT:
        phase = mean_gap * spec.process_index / spec.processes
        n = 0
        while True:
            yield phase + n * mean_gap
            n += 1
    t = 0.0
    shape = 1.0 if spec.kind is ArrivalKind.POISSON else spec.burstiness
    while True:
        t += rng.gammavariate(shape, mean_gap / shape)
        yield t


def trace_arrivals(rows: list[TraceRow], time_scale: float, index: int = 0, processes: int = 1) -> Iterator[Arrival]:
    """The trace rows this process sends (every `processes`-th, from `index`), each at timestamp × scale.

    Offsets are relative to the trace's first timestamp, so a trace need not start at 0."""
    if not rows:
        return
    t0 = rows[0].timestamp_ms
    for row in rows[index :: max(1, processes)]:
        yield Arrival((row.timestamp_ms - t0) / 1000.0 * time_scale, row)


def load_trace(path: str | Path) -> list[TraceRow]:
    """Rows of a Mooncake-style JSONL trace: {"timestamp": ms, "input_length": n, "output_length": n,
    optional "hash_ids": [...]}. Raises `ArrivalError` naming the file and line of the first bad row."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArrivalError(f"--trace {str(path)!r}: cannot be read ({exc})") from exc
    rows: list[TraceRow] = []
    for lineno, line in enumerate(lines, 1):
        if line.strip():
            rows.append(_trace_row(line, f"--trace {p}:{lineno}", rows[-1].timestamp_ms if rows else None))
    if not rows:
        raise ArrivalError(f"--trace {p}: no rows (expected JSON lines with timestamp, input_length, output_length)")
    return rows


def _trace_row(line: str, where: str, previous_ms: float | None) -> TraceRow:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ArrivalError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(obj, dict):
        raise ArrivalError(f"{where}: expected an object with timestamp, input_length, output_length")
    ts = obj.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts < 0:
        raise ArrivalError(f"{where}: timestamp: expected milliseconds >= 0, got {ts!r}")
    if previous_ms is not None and ts < previous_ms:
        raise ArrivalError(f"{where}: timestamp {ts} is earlier than the previous row's {previous_ms} (sort the trace)")
    lengths = []
    for key in ("input_length", "output_length"):
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArrivalError(f"{where}: {key}: expected an integer >= 1, got {value!r}")
        lengths.append(value)
    hash_ids = obj.get("hash_ids", [])
    if not isinstance(hash_ids, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in hash_ids):
        raise ArrivalError(f"{where}: hash_ids: expected a list of integers, got {hash_ids!r}")
    return TraceRow(float(ts), lengths[0], lengths[1], tuple(hash_ids))
