"""A partial `make bench` re-renders BENCHMARKS.md: sections with new JSON are regenerated, the others keep
their previous text (marked), and a run of some clients merges into the capacity JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))

import benchmarks_render  # noqa: E402
import run_all  # noqa: E402

PREVIOUS = """# Benchmarks

- Date: 2026-11-28T07:18:44+00:00
- Machine: AMD EPYC, 2 cores

## Goals

| goal | measured | met |
|---|---|---|
| analysis: 1M records → capacity table ≤ 3 s | 2.188 s best of 3 | yes |

## 4. Analysis speed

Old analysis figures: 2.188 s.

## 8. What-if projections vs simulated A100/H100

Old what-if table.

"""


def _run(client: str, streams: int, events: float) -> dict[str, Any]:
    return {
        "client": client, "streams": streams, "events_per_client_cpu_s": events,
        "client_cpu_us_per_event": 1e6 / events,
        "client_cpu_pct": 10.0, "delay_all_p50_ms": 0.1, "delay_all_p99_ms": 0.5, "delay_first_p50_ms": 0.1,
        "delay_first_p99_ms": 0.4, "delay_later_p50_ms": 0.1, "delay_later_p99_ms": 0.5, "server_cpu_pct": 50.0,
        "server_lag_p99_ms": 0.2, "ttft_p50_ms": 200.0, "ttft_p99_ms": 201.0, "ttft_abs_err_p50_ms": 0.1,
        "ttft_abs_err_p99_ms": 1.0, "itl_p50_ms": 20.0, "itl_p99_ms": 20.5, "itl_abs_err_p50_ms": 0.01,
        "itl_abs_err_p99_ms": 0.5, "requests": 10, "client_rss_mb": 60.0, "load_average": [[0.5, 0.5, 0.5]],
    }  # fmt: skip


def _capacity(clients: list[str], events: float, date: str, window_s: float = 10.0) -> dict[str, Any]:
    setup = {"ttft_ms": 200.0, "itl_ms": 20.0, "tokens_per_request": 200, "prompt_tokens": 256, "window_s": window_s,
             "settle_s": 2.0, "ramp_s": 2.0, "streams": [32], "clients": clients, "repeats": 1,
             "pinned_client_cpu0_server_cpu1": True, "clients_missing": {}}  # fmt: skip
    meta = {"date": date, "machine": {"cores": 2}, "load_average_start": [0.5, 0.5, 0.5], "command": "run_all.py"}
    return {"setup": setup, "runs": [_run(c, 32, events) for c in clients], "profiles": {}, "meta": meta}


def test_sections_without_new_json_keep_their_previous_text_marked(tmp_path: Path) -> None:
    (tmp_path / "loadgen_capacity.json").write_text(json.dumps(_capacity(["ours", "naive"], 20_000.0, "2026-12-05")))
    out = benchmarks_render.render(tmp_path, PREVIOUS)
    assert "- Date: 2026-12-05" in out and "2026-11-28" not in out.split("## Goals")[0]
    assert "## 1. Load-generator capacity at realistic pacing" in out  # regenerated from the JSON
    kept = out.split("## 4. Analysis speed")[1].split("## ")[0]
    assert benchmarks_render.KEPT_NOTE in kept and "Old analysis figures: 2.188 s." in kept
    assert "Old what-if table." in out.split("## 8. What-if projections")[1]
    goals = out.split("## Goals")[1].split("## 1.")[0]
    assert "| analysis: 1M records → capacity table ≤ 3 s | 2.188 s best of 3 | yes |" in goals
    assert "1 row(s) kept from an earlier run" in goals
    # Rendering again from its own output changes nothing: notes are not stacked.
    assert benchmarks_render.render(tmp_path, out) == out


def test_a_run_of_some_clients_replaces_their_rows_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "loadgen_capacity.json"
    path.write_text(json.dumps(_capacity(["ours", "vllm"], 20_000.0, "2026-12-01")))
    merged = run_all._merge_capacity(path, _capacity(["ours"], 30_000.0, "2026-12-05"))
    by_client = {run["client"]: run for run in merged["runs"]}
    assert by_client["ours"]["events_per_client_cpu_s"] == 30_000.0 and by_client["ours"]["date"] == "2026-12-05"
    assert by_client["vllm"]["events_per_client_cpu_s"] == 20_000.0 and by_client["vllm"]["date"] == "2026-12-01"
    assert merged["setup"]["clients"] == ["ours", "vllm"]
    # Another stream count of a client adds rows beside its earlier ones.
    more = _capacity(["ours"], 25_000.0, "2026-12-06")
    more["runs"][0]["streams"] = 64
    path.write_text(json.dumps(merged))
    both = run_all._merge_capacity(path, more)
    assert sorted((r["client"], r["streams"]) for r in both["runs"]) == [("ours", 32), ("ours", 64), ("vllm", 32)]
    assert both["setup"]["streams"] == [32, 64]
    # Another shape (a longer window) is another experiment: nothing of the old file is kept.
    other = run_all._merge_capacity(path, _capacity(["ours"], 30_000.0, "2026-12-05", window_s=20.0))
    assert [run["client"] for run in other["runs"]] == ["ours"]


def test_a_client_that_failed_or_held_fewer_streams_is_shown_so(tmp_path: Path) -> None:
    cap = _capacity(["ours", "naive"], 20_000.0, "2026-12-05")
    cap["runs"][1]["streams_running"] = 20  # of 32
    cap["runs"].append({"client": "vllm", "streams": 32, "failed": "vllm at 32 streams did not ramp up: boom\nmore"})
    (tmp_path / "loadgen_capacity.json").write_text(json.dumps(cap))
    out = benchmarks_render.render(tmp_path, "")
    assert "| 32 (held 20) | naive Locust user |" in out
    assert "- `vllm bench serve` at 32 streams: vllm at 32 streams did not ramp up: boom" in out
    per_core = out.split("Max streams per core")[1]
    assert "| naive Locust user | none |" in per_core  # it did not hold its streams
