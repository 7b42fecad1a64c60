"""Reading GuideLLM's benchmarks JSON, AIPerf's per-record JSONL and the peers' delay logs into the samples
`make bench` tabulates; fixtures are written here in each tool's format (fields as GuideLLM 0.8.1 and
AIPerf 0.13.0 write them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.peer_results import DelayLog, aiperf_samples, guidellm_samples, read_delays

T0 = 1_796_410_000.0  # wall-clock window start (s)
WINDOW = (T0, T0 + 10.0)


def _guidellm_request(start: float, end: float, ttft_ms: float | None, itl_ms: float | None) -> dict:
    return {
        "type_": "generative_request_stats",
        "request_id": f"r{start}",
        "request_start_time": start,
        "request_end_time": end,
        "time_to_first_token_ms": ttft_ms,
        "inter_token_latency_ms": itl_ms,
        "output_tokens": 200,
    }


def test_guidellm_samples_keep_requests_inside_the_window(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.json"
    requests = [
        _guidellm_request(T0 - 1.0, T0 + 3.2, 201.0, 20.1),  # started before the window
        _guidellm_request(T0 + 0.5, T0 + 4.7, 209.5, 19.9),
        _guidellm_request(T0 + 5.0, T0 + 9.3, 250.0, 21.0),
        _guidellm_request(T0 + 8.0, T0 + 12.2, 205.0, 20.0),  # ended after it
        _guidellm_request(T0 + 6.0, T0 + 6.1, None, None),  # no token: counted by neither
    ]
    data = {"benchmarks": [{"requests": {"successful": requests, "errored": [], "incomplete": []}}]}
    path.write_text(json.dumps(data))
    ttft, itl = guidellm_samples(path, WINDOW)
    assert ttft == [209.5, 250.0]
    assert itl == [19.9, 21.0]


def test_guidellm_samples_name_the_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps({"benchmarks": [{"requests": {"successful": [{"request_start_time": T0}]}}]}))
    with pytest.raises(ValueError, match=r"successful\[0\].*request_end_time"):
        guidellm_samples(path, WINDOW)


def _aiperf_record(start_s: float, end_s: float, metrics: dict, phase: str = "profiling") -> str:
    meta = {"request_start_ns": int(start_s * 1e9), "request_end_ns": int(end_s * 1e9), "benchmark_phase": phase}
    return json.dumps({"metadata": meta | {"was_cancelled": False}, "metrics": metrics})


def test_aiperf_samples_read_ttft_and_every_inter_chunk_gap(tmp_path: Path) -> None:
    path = tmp_path / "profile_export.jsonl"
    ok = {
        "time_to_first_token": {"value": 214.399282, "unit": "ms"},
        "inter_chunk_latency": {"value": [18.9, 21.0, 0.0], "unit": "ms"},
        "inter_token_latency": {"value": 12.3, "unit": "ms"},
    }
    in_ns = {
        "time_to_first_token": {"value": 230_500_000, "unit": "ns"},
        "inter_chunk_latency": {"value": [20_000_000], "unit": "ns"},
    }
    lines = [
        _aiperf_record(T0 + 1, T0 + 5.2, ok),
        _aiperf_record(T0 + 2, T0 + 6.2, in_ns),
        _aiperf_record(T0 + 1, T0 + 5.2, ok, phase="warmup"),
        _aiperf_record(T0 - 1, T0 + 3.2, ok),  # started before the window
        _aiperf_record(T0 + 3, T0 + 3.1, {"request_latency": {"value": 5.0, "unit": "ms"}}),  # errored: no TTFT
        "",
    ]
    path.write_text("\n".join(lines))
    ttft, itl = aiperf_samples(path, WINDOW)
    assert ttft == [214.399282, 230.5]
    assert itl == [18.9, 21.0, 0.0, 20.0]


def test_aiperf_samples_reject_an_unknown_unit(tmp_path: Path) -> None:
    path = tmp_path / "profile_export.jsonl"
    path.write_text(_aiperf_record(T0 + 1, T0 + 2, {"time_to_first_token": {"value": 3, "unit": "fortnights"}}))
    with pytest.raises(ValueError, match=r"profile_export.jsonl:1 time_to_first_token: unit 'fortnights'"):
        aiperf_samples(path, WINDOW)


def test_delay_log_round_trip_marks_first_tokens_and_bounds_the_window(tmp_path: Path) -> None:
    log = DelayLog(tmp_path)
    log.add(1_000_500_000, 1_000_000_000, "cmpl-a")  # arrives before the window (1.5 s)
    log.add(2_000_300_000, 2_000_000_000, "cmpl-a")
    log.add(2_001_000_000, 2_000_000_000, "cmpl-b")
    log.add(2_020_250_000, 2_020_000_000, "cmpl-b")
    log.add(9_000_000_000, 8_999_000_000, "cmpl-b")  # after the window
    log.flush()
    first, later = read_delays(tmp_path, (1.5, 3.0))
    assert first == [1.0]  # cmpl-b's first event: 1 ms late
    assert later == [0.3, 0.25]  # cmpl-a's second event, cmpl-b's second


def test_delay_logs_of_several_processes_merge_and_count_a_shared_event_once(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'benchmarks');"
        "from peer_results import DelayLog; log = DelayLog(Path(sys.argv[1]));"
        "log.add(int(sys.argv[2]), 5_000_000_000, 'cmpl-x')"  # flushed at exit
    )
    repo = Path(__file__).resolve().parents[3]
    for arrival in ("5_002_000_000", "5_002_000_000", "5_004_000_000"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path), arrival], cwd=repo, check=True)
    assert len(list(tmp_path.glob("delays-*.bin"))) == 3
    assert os.path.getsize(next(tmp_path.glob("delays-*.bin"))) == 24
    first, later = read_delays(tmp_path, (0.0, 10.0))
    assert sorted(first) == [2.0, 4.0] and later == []
