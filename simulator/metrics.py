"""Server metrics in Prometheus text format with vLLM's names (`vllm:*`, labels model_name and engine).

Hot-path updates are plain integer/float additions and a bisect into fixed buckets; prometheus_client
only renders them at scrape time through a custom collector, so counting every token costs ~100 ns.
`sim:emission_lag_seconds` (not a vLLM metric) is actual − scheduled write time of each token event;
`sim:engine_step_seconds` is each engine step's modelled duration and `sim:engine_step_overrun_seconds`
how much later than that the next back-to-back step began (host time the model does not contain: token
writes, request parsing, a loaded CPU). Overrun sum ÷ step sum is how far the server fell off its model
(by default); with anchored steps, `sim:engine_step_misses_total` counts the steps that fell off it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

__all__ = ["CONTENT_TYPE", "EmissionLagLog", "FastHistogram", "ServerMetrics"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

TTFT_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                  20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
E2E_BUCKETS_S = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
ITL_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                 40.0, 80.0)  # fmt: skip
LAG_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
STEP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class FastHistogram:
    """Fixed-bucket histogram with O(log buckets) observe and no locking (single event-loop thread)."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def family(self, name: str, doc: str, labels: dict[str, str]) -> HistogramMetricFamily:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            running += count
            cumulative.append((bound, running))
        fam = HistogramMetricFamily(name, doc, labels=list(labels))
        fam.add_metric(list(labels.values()), cumulative, self.sum)
        return fam


class EmissionLagLog:
    """Raw per-event (scheduled time, lag) pairs in ns for benchmarks; bounded so it cannot exhaust memory."""

    def __init__(self, path: Path, max_samples: int = 20_000_000) -> None:
        self.path = path
        self.max_samples = max_samples
        self.due_ns = array("q")
        self.lag_ns = array("q")

    def add(self, due_ns: int, lag_ns: int) -> None:
        if len(self.lag_ns) < self.max_samples:
            self.due_ns.append(due_ns)
            self.lag_ns.append(lag_ns)

    def write(self) -> None:
        """One event per line: `scheduled_monotonic_ns lag_ns`."""
        lines = [f"{d} {lag}" for d, lag in zip(self.due_ns, self.lag_ns, strict=True)]
        self.path.write_text("\n".join(lines) + ("\n" if lines else ""))


class ServerMetrics:
    """All counters and histograms of one simulator; gauges are read from `gauges()` at scrape time."""

    def __init__(self, model_name: str, gauges: Callable[[], tuple[int, int, float]]) -> None:
        self.labels = {"model_name": model_name, "engine": "0"}
        self.gauges = gauges
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.preemptions = 0
        self.prefix_cache_queries = 0
        self.prefix_cache_hits = 0
        self.step_misses = 0
        self.success_by_reason: dict[str, int] = {"stop": 0, "length": 0, "abort": 0, "error": 0}
        self.ttft = FastHistogram(TTFT_BUCKETS_S)
        self.e2e = FastHistogram(E2E_BUCKETS_S)
        self.itl = FastHistogram(ITL_BUCKETS_S)
        self.emission_lag = FastHistogram(LAG_BUCKETS_S)
        self.engine_step = FastHistogram(STEP_BUCKETS_S)
        self.step_overrun = FastHistogram(LAG_BUCKETS_S)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        names, values = list(self.labels), list(self.labels.values())
        running, waiting, kv_usage = self.gauges()
        for name, doc, value in (
            ("vllm:num_requests_running", "Number of requests in model execution batches.", running),
            ("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting),
            ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv_usage),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=names)
            gauge.add_metric(values, value)
            yield gauge
        for name, doc, total in (
            ("vllm:prompt_tokens", "Number of prefill tokens processed.", self.prompt_tokens),
            ("vllm:generation_tokens", "Number of generation tokens processed.", self.generation_tokens),
            ("vllm:num_preemptions", "Cumulative number of preemption from the engine.", self.preemptions),
            (
                "vllm:prefix_cache_queries",
                "Prefix cache queries, in terms of number of queried tokens.",
                self.prefix_cache_queries,
            ),
            (
                "vllm:prefix_cache_hits",
                "Prefix cache hits, in terms of number of cached tokens.",
                self.prefix_cache_hits,
            ),
            (
                "sim:engine_step_misses",
                "Anchored steps that started later than their own duration (simulator only).",
                self.step_misses,
            ),
        ):
            counter = CounterMetricFamily(name, doc, labels=names)
            counter.add_metric(values, total)
            yield counter
        success = CounterMetricFamily(
            "vllm:request_success", "Count of successfully processed requests.", labels=[*names, "finished_reason"]
        )
        for reason, count in self.success_by_reason.items():
            success.add_metric([*values, reason], count)
        yield success
        yield self.ttft.family(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", self.labels
        )
        yield self.e2e.family(
            "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", self.labels
        )
        yield self.itl.family(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", self.labels
        )
        yield self.emission_lag.family(
            "sim:emission_lag_seconds", "Token event write time minus its scheduled time (simulator only).", self.labels
        )
        yield self.engine_step.family(
            "sim:engine_step_seconds", "Modelled duration of each engine step (simulator only).", self.labels
        )
        yield self.step_overrun.family(
            "sim:engine_step_overrun_seconds",
            "Start of a back-to-back engine step minus the modelled end of the one before (simulator only).",
            self.labels,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
