"""LLM statistics (TTFT, TPOT, output tokens and tok/s) per request name, on Locust's own stats machinery.

Each metric is a separate `locust.stats.RequestStats`, so Locust's histogram, percentiles, worker→master
serialization and merging all apply, and the request table's Aggregated row stays pure e2e latency.
Percentiles here have Locust's histogram precision (~2 significant digits); the request log is exact.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable
from typing import IO, Any

from locust.stats import RequestStats, StatsEntry

__all__ = ["CSV_COLUMNS", "TABLE_STRUCTURE", "LLMStats"]

_PCTS = (0.5, 0.9, 0.95, 0.99)

CSV_COLUMNS = (
    "type",
    "name",
    "requests",
    "output_tokens",
    "avg_output_tokens",
    "output_tok_s",
    "output_tok_s_current",
    "ttft_avg_ms",
    "ttft_min_ms",
    "ttft_max_ms",
    *(f"ttft_p{round(p * 100)}_ms" for p in _PCTS),
    "tpot_avg_ms",
    *(f"tpot_p{round(p * 100)}_ms" for p in _PCTS),
)

# Columns of the web UI's "LLM" tab (keys of the rows returned by `rows()`).
TABLE_STRUCTURE = [
    {"key": "type", "title": "Type"},
    {"key": "name", "title": "Name"},
    {"key": "requests", "title": "# Requests"},
    {"key": "ttft_p50_ms", "title": "TTFT p50 (ms)"},
    {"key": "ttft_p95_ms", "title": "TTFT p95 (ms)"},
    {"key": "ttft_avg_ms", "title": "TTFT avg (ms)"},
    {"key": "tpot_p50_ms", "title": "TPOT p50 (ms)"},
    {"key": "tpot_p95_ms", "title": "TPOT p95 (ms)"},
    {"key": "tpot_avg_ms", "title": "TPOT avg (ms)"},
    {"key": "avg_output_tokens", "title": "Avg output tokens"},
    {"key": "output_tok_s_current", "title": "Output tok/s (current)"},
    {"key": "output_tok_s", "title": "Output tok/s (run)"},
]


def _num(value: float | None, digits: int = 1) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


class LLMStats:
    """TTFT and TPOT per (name, type); TTFT entries carry output tokens as their content length."""

    def __init__(self) -> None:
        self.ttft = RequestStats(use_response_times_cache=True)
        self.tpot = RequestStats(use_response_times_cache=True)

    def log(self, request_type: str, name: str, ttft_ms: float, tpot_ms: float | None, output_tokens: int) -> None:
        """Log one successful request (Locust's histogram takes float milliseconds as well as ints)."""
        self.ttft.log_request(request_type, name, ttft_ms, output_tokens)  # type: ignore[arg-type]
        if tpot_ms is not None:
            self.tpot.log_request(request_type, name, tpot_ms, 0)  # type: ignore[arg-type]

    def reset(self) -> None:
        self.ttft.reset_all()
        self.tpot.reset_all()

    def clear(self) -> None:
        self.ttft.clear_all()
        self.tpot.clear_all()

    # -- distributed: workers send stripped reports, the master extends its entries --------------------

    def report(self) -> dict[str, Any]:
        """Serialize and clear what accumulated since the last report (worker side)."""
        return {
            key: {"entries": stats.serialize_stats(), "total": stats.total.get_stripped_report()}
            for key, stats in (("ttft", self.ttft), ("tpot", self.tpot))
        }

    def merge(self, report: dict[str, Any]) -> None:
        """Add a worker's report (master side)."""
        for key, stats in (("ttft", self.ttft), ("tpot", self.tpot)):
            part = report.get(key)
            if not part:
                continue
            for data in part["entries"]:
                entry = StatsEntry.unserialize(data, stats)
                request_key = (entry.name, entry.method)
                if request_key not in stats.entries:
                    stats.entries[request_key] = StatsEntry(
                        stats, entry.name, entry.method, use_response_times_cache=True
                    )
                stats.entries[request_key].extend(entry)
            stats.total.extend(StatsEntry.unserialize(part["total"], stats))

    # -- views ------------------------------------------------------------------------------------------

    def rows(self, run_start_s: float | None = None, now_s: float | None = None) -> list[dict[str, Any]]:
        """One row per name plus an Aggregated row; `output_tok_s` is tokens over [run_start_s, now_s]."""
        now_s = time.time() if now_s is None else now_s
        pairs = [
            (entry, self.tpot.entries.get(key))
            for key, entry in sorted(self.ttft.entries.items())
            if entry.num_requests
        ]
        pairs.append((self.ttft.total, self.tpot.total))
        return [self._row(t, p, run_start_s, now_s) for t, p in pairs]

    @staticmethod
    def _row(ttft: StatsEntry, tpot: StatsEntry | None, run_start_s: float | None, now_s: float) -> dict[str, Any]:
        start = run_start_s if run_start_s is not None else ttft.start_time
        elapsed = max(now_s - start, 1e-9)
        n = ttft.num_requests
        row: dict[str, Any] = {
            "type": ttft.method,
            "name": ttft.name,
            "requests": n,
            "output_tokens": ttft.total_content_length,
            "avg_output_tokens": _num(ttft.avg_content_length) if n else None,
            "output_tok_s": _num(ttft.total_content_length / elapsed) if n else None,
            # Completions/s over Locust's ~10 s window times mean tokens per request.
            "output_tok_s_current": _num(ttft.current_rps * ttft.avg_content_length) if n else None,
            "ttft_avg_ms": _num(ttft.avg_response_time) if n else None,
            "ttft_min_ms": _num(ttft.min_response_time) if n else None,
            "ttft_max_ms": _num(ttft.max_response_time) if n else None,
        }
        for p in _PCTS:
            row[f"ttft_p{round(p * 100)}_ms"] = ttft.get_response_time_percentile(p) if n else None
        has_tpot = tpot is not None and tpot.num_requests > 0
        row["tpot_avg_ms"] = _num(tpot.avg_response_time, 2) if has_tpot and tpot else None
        for p in _PCTS:
            row[f"tpot_p{round(p * 100)}_ms"] = tpot.get_response_time_percentile(p) if has_tpot and tpot else None
        return row

    def write_csv(self, stream: IO[str], rows: Iterable[dict[str, Any]]) -> None:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS])
