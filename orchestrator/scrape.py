"""Server-side truth while a cell runs: scrape a target's Prometheus `/metrics` into `server_metrics.csv`.

Runs in the grid runner's process (a thread), never in the load generator, so it costs the measured
client nothing. Parsing uses prometheus_client's own text parser.
"""

from __future__ import annotations

import csv
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["MetricsScraper", "prefix_cache_delta", "scrape_once"]

# The vLLM series a capacity report needs; histogram _sum/_count series are added as found.
CORE_SERIES = {
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:kv_cache_usage_perc": "kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc": "kv_cache_usage_perc",  # older vLLM name
    "vllm:num_preemptions_total": "preemptions_total",
    "vllm:num_preemptions": "preemptions_total",
    "vllm:prompt_tokens_total": "prompt_tokens_total",
    "vllm:prompt_tokens": "prompt_tokens_total",
    "vllm:generation_tokens_total": "generation_tokens_total",
    "vllm:generation_tokens": "generation_tokens_total",
    # Automatic prefix caching, in prompt tokens: queried, and found in the cache.
    "vllm:prefix_cache_queries_total": "prefix_cache_queries_total",
    "vllm:prefix_cache_queries": "prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total": "prefix_cache_hits_total",
    "vllm:prefix_cache_hits": "prefix_cache_hits_total",
}
CORE_COLUMNS = [
    "running",
    "waiting",
    "kv_cache_usage_perc",
    "preemptions_total",
    "prompt_tokens_total",
    "generation_tokens_total",
    "prefix_cache_queries_total",
    "prefix_cache_hits_total",
]


def scrape_once(base_url: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None) -> dict[str, float]:
    """One scrape → {column: value}, summing label sets (e.g. several model_name values)."""
    req = urllib.request.Request(f"{base_url}/metrics", headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        text = resp.read().decode("utf-8", "replace")
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            column = CORE_SERIES.get(name)
            if column is None and family.type == "counter" and name.endswith("_total"):
                column = CORE_SERIES.get(name[: -len("_total")])
            if column is None and family.type == "histogram" and name.endswith(("_sum", "_count")):
                column = name.replace("vllm:", "")
            if column is None and family.type == "counter" and name.startswith("sim:") and name.endswith("_total"):
                column = name  # the simulator's own health counters
            if column is not None:
                values[column] = values.get(column, 0.0) + float(sample.value)
    return values


class MetricsScraper:
    """Background thread: scrape every `interval_s` into a CSV, keep the first and last scrape."""

    def __init__(self, base_url: str, out_csv: Path, interval_s: float = 1.0, headers: dict[str, str] | None = None):
        self.base_url = base_url
        self.out_csv = out_csv
        self.interval_s = interval_s
        self.headers = headers
        self.first: dict[str, float] | None = None
        self.last: dict[str, float] | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-scraper", daemon=True)

    def start(self) -> MetricsScraper:
        self.first = self._try()
        self._thread.start()
        return self

    def _try(self) -> dict[str, float] | None:
        try:
            return scrape_once(self.base_url, headers=self.headers)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.error = f"{self.base_url}/metrics: {exc}"
            return None

    def _run(self) -> None:
        columns: list[str] | None = None
        with self.out_csv.open("w", newline="") as fh:
            writer = csv.writer(fh)
            while not self._stop.wait(self.interval_s):
                sample = self._try()
                if sample is None:
                    continue
                self.last = sample
                if columns is None:
                    extra = sorted(k for k in sample if k not in CORE_COLUMNS)
                    columns = CORE_COLUMNS + extra
                    writer.writerow(["wall_s", *columns])
                writer.writerow([f"{time.time():.3f}", *(sample.get(c, "") for c in columns)])
                fh.flush()

    def stop(self) -> dict[str, float] | None:
        """Stop, take a final scrape (after the cell's streams drained) and return the counter deltas."""
        self._stop.set()
        self._thread.join(timeout=5)
        final = self._try()
        if final is not None:
            self.last = final
        if self.first is None or self.last is None:
            return None
        return {
            key: self.last.get(f"{key}_tokens_total", 0.0) - self.first.get(f"{key}_tokens_total", 0.0)
            for key in ("generation", "prompt")
        }

    def prefix_cache(self) -> dict[str, int] | None:
        """The cell's prefix-cache counters (after `stop()`): {"hits", "queries"} in prompt tokens."""
        return prefix_cache_delta(self.first, self.last)


def prefix_cache_delta(first: dict[str, float] | None, last: dict[str, float] | None) -> dict[str, int] | None:
    """{"hits": H, "queries": Q} between two scrapes; None when the server does not expose both counters."""
    keys = {"hits": "prefix_cache_hits_total", "queries": "prefix_cache_queries_total"}
    if first is None or last is None or not all(k in first and k in last for k in keys.values()):
        return None
    return {name: max(0, round(last[key] - first[key])) for name, key in keys.items()}
