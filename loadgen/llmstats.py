"""LLM statistics per request name: TTFT, TPOT, ITL, end-to-end, tokens and tok/s, live while requests stream.

TTFT, TPOT and e2e are each a separate `locust.stats.RequestStats`, so Locust's histogram, percentiles,
worker→master serialization and merging apply, and the request table's Aggregated row stays Locust's.
ITL (one value per token) goes to a lighter mergeable histogram. TTFT is logged when the first token
arrives and tokens are counted as they arrive (`loadgen.live`), so the view moves while requests stream.
Percentiles here have ~2 significant digits (Locust's buckets); the request log is exact.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable
from typing import IO, Any

from locust.stats import RequestStats, StatsEntry

from loadgen.live import DEFAULT_WINDOW_S, Histogram, LiveTokens, RollingRate, TokenTotals, sum_totals
from loadgen.requestlog import RequestRecord
from loadgen.stream import StreamResult

__all__ = ["CSV_COLUMNS", "METRICS", "TABLE_STRUCTURE", "LLMStats"]

_PCTS = (0.5, 0.9, 0.95, 0.99)
METRICS = ("ttft", "tpot", "itl", "e2e")
_AGGREGATED = "Aggregated"

CSV_COLUMNS = (
    "type",
    "name",
    "requests",
    "in_flight",
    "input_tokens",
    "output_tokens",
    "input_tok_s",
    "throughput_tok_s",
    "input_tok_s_current",
    "throughput_tok_s_current",
    "ttft_avg_ms",
    "ttft_min_ms",
    "ttft_max_ms",
    *(f"ttft_p{round(p * 100)}_ms" for p in _PCTS),
    *(f"{m}_{stat}_ms" for m in METRICS[1:] for stat in ("avg", *(f"p{round(p * 100)}" for p in _PCTS))),
)

# Columns of the web UI's "LLM" tab (keys of the rows returned by `rows()`).
TABLE_STRUCTURE = [
    {"key": "name", "title": "Name (API endpoint)"},
    {"key": "requests", "title": "Completed"},
    {"key": "in_flight", "title": "In flight"},
    {"key": "input_tok_s_current", "title": f"Input tok/s ({DEFAULT_WINDOW_S:.0f} s)"},
    {"key": "throughput_tok_s_current", "title": f"Output tok/s ({DEFAULT_WINDOW_S:.0f} s)"},
    {"key": "throughput_tok_s", "title": "Output tok/s (run)"},
    *(
        {"key": f"{m}_p{p}_ms", "title": f"{m.upper() if m != 'e2e' else 'E2E'} p{p} (ms)"}
        for m in METRICS
        for p in (50, 95, 99)
    ),
    {"key": "input_tokens", "title": "Input tokens"},
    {"key": "output_tokens", "title": "Output tokens"},
]


def _num(value: float | None, digits: int = 1) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def _stats() -> RequestStats:
    return RequestStats(use_response_times_cache=True)


class LLMStats:
    """The LLM view of one process (local or worker) or of the master (merging its workers' reports)."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.ttft = _stats()
        self.tpot = _stats()
        self.e2e = _stats()
        self.itl: dict[str, Histogram] = {}
        self.itl_total = Histogram()
        self.live = LiveTokens()
        self.remote: dict[str, dict[str, TokenTotals]] = {}
        self.rate = RollingRate(window_s)
        # Open loop: when the arrival schedule started (wall s; the earliest of every sending process).
        self.schedule_start_s: float | None = None

    def mark_schedule_start(self, wall_s: float) -> None:
        if self.schedule_start_s is None or wall_s < self.schedule_start_s:
            self.schedule_start_s = wall_s

    # -- logging (in the process that sends the requests) -------------------------------------------------

    def log_first_token(self, request_type: str, name: str, ttft_ms: float) -> None:
        self.ttft.log_request(request_type, name, ttft_ms, 0)  # type: ignore[arg-type]

    def log_completed(
        self, request_type: str, name: str, e2e_ms: float, tpot_ms: float | None, itl_ms: Iterable[float]
    ) -> None:
        """One successful request (Locust's histogram takes float milliseconds as well as ints)."""
        self.e2e.log_request(request_type, name, e2e_ms, 0)  # type: ignore[arg-type]
        if tpot_ms is not None:
            self.tpot.log_request(request_type, name, tpot_ms, 0)  # type: ignore[arg-type]
        values = list(itl_ms)
        if values:
            self.itl.setdefault(name, Histogram()).add_many(values)
            self.itl_total.add_many(values)

    def watch(self, name: str, request_type: str = "POST") -> StreamWatcher:
        """The `loadgen.client.StreamWatch` for the requests of one name."""
        return StreamWatcher(self, name, request_type)

    def log_first_tokens(self, request_type: str = "POST") -> None:
        """Log the TTFT of every request whose first token arrived since the last call (the live ticker)."""
        for name, ttft_ms in self.live.first_tokens():
            self.log_first_token(request_type, name, ttft_ms)

    def totals(self) -> dict[str, TokenTotals]:
        """Tokens so far per name: this process's plus the latest report of every worker."""
        return sum_totals([self.live.totals(), *self.remote.values()])

    def sample(self, now_s: float) -> None:
        """Feed the rolling window (about once a second, on the process that shows the view)."""
        self.rate.add(now_s, self.totals())

    def freeze(self, now_s: float) -> None:
        """Stop: hold the rolling rates and the run's end where they are."""
        self.rate.freeze(now_s, self.totals())

    def reset(self) -> None:
        for stats in (self.ttft, self.tpot, self.e2e):
            stats.reset_all()
        self.itl.clear()
        self.itl_total = Histogram()
        self.live.reset()
        self.remote.clear()
        self.rate.clear()
        self.schedule_start_s = None

    def clear(self) -> None:
        for stats in (self.ttft, self.tpot, self.e2e):
            stats.clear_all()
        self.itl.clear()
        self.itl_total = Histogram()
        self.live.clear()
        self.remote.clear()
        self.rate.clear()
        self.schedule_start_s = None

    # -- distributed: workers send stripped reports, the master extends its entries --------------------

    def report(self) -> dict[str, Any]:
        """Serialize and clear what accumulated since the last report (worker side); token totals are
        cumulative, so a lost report loses nothing."""
        out: dict[str, Any] = {
            key: {"entries": stats.serialize_stats(), "total": stats.total.get_stripped_report()}
            for key, stats in self._request_stats()
        }
        out["itl"] = {name: h.serialize() for name, h in self.itl.items()}
        self.itl.clear()
        self.itl_total = Histogram()
        out["tokens"] = {name: t.as_list() for name, t in self.live.totals().items()}
        if self.schedule_start_s is not None:
            out["schedule_start_s"] = self.schedule_start_s
        return out

    def merge(self, report: dict[str, Any], worker_id: str = "") -> None:
        """Add a worker's report (master side)."""
        for key, stats in self._request_stats():
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
        for name, data in (report.get("itl") or {}).items():
            self.itl.setdefault(name, Histogram()).extend(data)
            self.itl_total.extend(data)
        if report.get("schedule_start_s") is not None:
            self.mark_schedule_start(report["schedule_start_s"])
        if "tokens" in report:
            self.remote[worker_id] = {name: TokenTotals(*values) for name, values in report["tokens"].items()}

    def _request_stats(self) -> tuple[tuple[str, RequestStats], ...]:
        return (("ttft", self.ttft), ("tpot", self.tpot), ("e2e", self.e2e))

    # -- views ------------------------------------------------------------------------------------------

    def rows(self, run_start_s: float | None = None, now_s: float | None = None) -> list[dict[str, Any]]:
        """One row per name plus an Aggregated row. `*_tok_s` are tokens over [run_start_s, now_s] (or the
        freeze at Stop); `*_tok_s_current` over the rolling window."""
        end_s = self.rate.frozen_at if self.rate.frozen_at is not None else time.time() if now_s is None else now_s
        totals = self.totals()
        rates = self.rate.rates()
        seen = {key[0] for s in (self.ttft, self.e2e) for key, e in s.entries.items() if e.num_requests}
        names = sorted(seen | set(totals))
        rows = []
        for name in names:
            method = next((k[1] for s in (self.e2e, self.ttft) for k in s.entries if k[0] == name), "POST")
            rows.append(
                self._row(
                    method,
                    name,
                    {m: s.entries.get((name, method)) for m, s in self._request_stats()},
                    self.itl.get(name),
                    totals.get(name, TokenTotals()),
                    rates.get(name),
                )
            )
        all_rates = list(rates.values())
        total_rate = (sum(r[0] for r in all_rates), sum(r[1] for r in all_rates)) if all_rates else None
        aggregate = TokenTotals()
        for t in totals.values():
            aggregate.add(t)
        entries: dict[str, StatsEntry | None] = {m: s.total for m, s in self._request_stats()}
        rows.append(self._row("", _AGGREGATED, entries, self.itl_total, aggregate, total_rate))
        start = run_start_s if run_start_s is not None else self.ttft.total.start_time
        elapsed = max(end_s - start, 1e-9)
        for row in rows:
            row["throughput_tok_s"] = _num(row["output_tokens"] / elapsed)
            row["input_tok_s"] = _num(row["input_tokens"] / elapsed)
        return rows

    @staticmethod
    def _row(
        method: str,
        name: str,
        entries: dict[str, StatsEntry | None],
        itl: Histogram | None,
        tokens: TokenTotals,
        rate: tuple[float, float] | None,
    ) -> dict[str, Any]:
        ttft, e2e = entries["ttft"], entries["e2e"]
        completed = e2e.num_requests if e2e is not None else 0
        row: dict[str, Any] = {
            "type": method,
            "name": name,
            "requests": completed,
            "in_flight": tokens.in_flight,
            "input_tokens": tokens.input_tokens,
            "output_tokens": tokens.output_tokens,
            "input_tok_s_current": _num(rate[0]) if rate else None,
            "throughput_tok_s_current": _num(rate[1]) if rate else None,
        }
        has_ttft = ttft is not None and ttft.num_requests > 0
        row["ttft_min_ms"] = _num(ttft.min_response_time) if has_ttft and ttft else None
        row["ttft_max_ms"] = _num(ttft.max_response_time) if has_ttft and ttft else None
        row["ttft_avg_ms"] = _num(ttft.avg_response_time) if has_ttft and ttft else None
        for metric in ("ttft", "tpot", "e2e"):
            entry = entries[metric]
            has = entry is not None and entry.num_requests > 0
            if metric != "ttft":
                row[f"{metric}_avg_ms"] = _num(entry.avg_response_time, 2) if has and entry else None
            for p in _PCTS:
                row[f"{metric}_p{round(p * 100)}_ms"] = entry.get_response_time_percentile(p) if has and entry else None
        row["itl_avg_ms"] = _num(itl.mean, 2) if itl is not None and itl.n else None
        for p in _PCTS:
            row[f"itl_p{round(p * 100)}_ms"] = itl.percentile(p) if itl is not None else None
        return row

    def write_csv(self, stream: IO[str], rows: Iterable[dict[str, Any]]) -> None:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS])


class StreamWatcher:
    """Registers one name's requests with the live token count; logs a TTFT no tick has logged yet."""

    def __init__(self, stats: LLMStats, name: str, request_type: str) -> None:
        self._stats, self._name, self._type = stats, name, request_type

    def opened(self, key: str, result: StreamResult) -> None:
        self._stats.live.opened(key, self._name, result)

    def closed(self, key: str, record: RequestRecord) -> None:
        first = self._stats.live.closed(key, record.output_tokens, record.prompt_tokens)
        if first is not None:
            self._stats.log_first_token(self._type, *first)
