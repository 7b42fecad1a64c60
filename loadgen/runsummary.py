"""The end-of-run LLM summary: a dict (the `llm` section of Locust's `--json` / `--json-file`) and its text block.

Pure: built from the LLM view's rows and Locust's request stats, formatted into lines; the plugin prints
them (Locust's console logger, after Locust's own tables) and puts the dict into Locust's JSON output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["JSON_SCHEMA_VERSION", "install_json_section", "llm_summary", "summary_lines"]

JSON_SCHEMA_VERSION = 1
_WIDTH = 60
_METRICS = (
    ("ttft", "Time to first token"),
    ("tpot", "Time per output token (excl. 1st)"),
    ("itl", "Inter-token latency"),
    ("e2e", "End-to-end latency (successful)"),
)


def llm_summary(
    rows: list[dict[str, Any]],
    failures: int,
    window: tuple[float, float],
    endpoints: list[str],
    open_loop: bool = False,
) -> dict[str, Any]:
    """The run's LLM figures from the Aggregated row of `LLMStats.rows()` (last row) and the per-name rows.

    `window` is (start, end) in wall seconds: the start of the test (open loop: of the arrival schedule)
    to Stop, no warm-up excluded."""
    agg = rows[-1]
    start_s, end_s = window
    duration_s = max(end_s - start_s, 0.0)
    per_s = 1.0 / duration_s if duration_s > 0 else 0.0
    summary: dict[str, Any] = {
        "schema_version": JSON_SCHEMA_VERSION,
        "source": "client (this Locust run); percentiles from Locust-style histograms, ~2 significant digits",
        "window": {
            "start_wall_s": round(start_s, 3),
            "end_wall_s": round(end_s, 3),
            "duration_s": round(duration_s, 3),
            "description": (
                "whole run, from the first scheduled arrival to Stop; no warm-up excluded"
                if open_loop
                else "whole run, from the start of the test to Stop; no warm-up excluded"
            ),
        },
        "endpoints": endpoints,
        "requests": {"completed": agg["requests"], "failed": failures},
        "tokens": {"input": agg["input_tokens"], "output": agg["output_tokens"]},
        "throughput": {
            "req_per_s": round(agg["requests"] * per_s, 3),
            "input_tok_s": round(agg["input_tokens"] * per_s, 2),
            "throughput_tok_s": round(agg["output_tokens"] * per_s, 2),
            "total_tok_s": round((agg["input_tokens"] + agg["output_tokens"]) * per_s, 2),
        },
    }
    for metric, _ in _METRICS:
        mean_key = f"{metric}_avg_ms"
        summary[f"{metric}_ms"] = {
            "mean": agg.get(mean_key),
            "median": agg.get(f"{metric}_p50_ms"),
            "p95": agg.get(f"{metric}_p95_ms"),
            "p99": agg.get(f"{metric}_p99_ms"),
        }
    summary["per_name"] = rows[:-1]
    return summary


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The text block printed at the end of a run (the layout `vllm bench serve` users know)."""
    window = summary["window"]
    req, tok, thr = summary["requests"], summary["tokens"], summary["throughput"]

    def line(label: str, value: str) -> str:
        return f"{label + ':':<40}{value:>20}"

    out = [
        " LLM summary ".center(_WIDTH, "="),
        f"Window: {window['description']}",
        f"API endpoint: {', '.join(summary['endpoints']) or 'n/a'}",
        line("Duration (s)", _fmt(window["duration_s"])),
        line("Completed requests", _fmt(req["completed"])),
        line("Failed requests", _fmt(req["failed"])),
        line("Input tokens", _fmt(tok["input"])),
        line("Output tokens (all that arrived)", _fmt(tok["output"])),
        line("Request throughput (req/s)", _fmt(thr["req_per_s"])),
        line("Input token throughput (tok/s)", _fmt(thr["input_tok_s"])),
        line("Output token throughput (tok/s)", _fmt(thr["throughput_tok_s"])),
        line("Total token throughput (tok/s)", _fmt(thr["total_tok_s"])),
    ]
    for metric, title in _METRICS:
        figures = summary[f"{metric}_ms"]
        name = metric.upper() if metric != "e2e" else "E2E"
        out.append(f" {title} ".center(_WIDTH, "-"))
        for stat in ("mean", "median", "p99"):
            out.append(line(f"{stat.capitalize()} {name} (ms)", _fmt(figures[stat])))
    out.append("Percentiles: ~2 significant digits (histogram); exact ones: python -m analysis capacity PREFIX")
    out.append("=" * _WIDTH)
    return out


def install_json_section(section_for: Callable[[Any], dict[str, Any] | None]) -> None:
    """Make Locust's `--json` and `--json-file PATH` write `{"stats": <Locust's list>, "llm": {...}}`.

    Locust's shutdown calls `locust.stats.print_stats_json` / `save_stats_json` by module attribute, so
    replacing them here keeps Locust's own entries unchanged under "stats". `section_for(request_stats)`
    returns the LLM section of the run those stats belong to (None: Locust's list alone, unchanged)."""
    import locust.stats as locust_stats

    if getattr(locust_stats.print_stats_json, "_llm_section", False):
        return

    def document(stats: Any) -> Any:
        section = section_for(stats)
        entries = stats.serialize_stats()
        return entries if section is None else {"stats": entries, "llm": section}

    def print_stats_json(stats: Any) -> None:
        print(json.dumps(document(stats), indent=4))

    def save_stats_json(stats: Any, filename: str) -> None:
        with open(f"{filename}.json", "w", encoding="utf-8") as file:
            json.dump(document(stats), file, indent=4)

    print_stats_json._llm_section = True  # type: ignore[attr-defined]
    locust_stats.print_stats_json = print_stats_json
    locust_stats.save_stats_json = save_stats_json
