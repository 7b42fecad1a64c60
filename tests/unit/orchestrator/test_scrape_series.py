"""Which /metrics series a scrape keeps: vLLM's core series, histogram sums and counts, the simulator's counters."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from orchestrator.scrape import scrape_once
from simulator.metrics import ServerMetrics


@pytest.fixture
def metrics_url() -> Iterator[str]:
    metrics = ServerMetrics("m", lambda: (3, 1, 0.25))
    metrics.step_misses = 7
    metrics.engine_step.observe(0.004)
    body = metrics.render()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_simulators_step_health_is_scraped_beside_the_vllm_series(metrics_url: str) -> None:
    values = scrape_once(metrics_url)
    assert values["running"] == 3 and values["kv_cache_usage_perc"] == 0.25
    assert values["sim:engine_step_misses_total"] == 7
    assert values["sim:engine_step_seconds_count"] == 1 and values["sim:engine_step_seconds_sum"] == 0.004
    assert "sim:engine_step_overrun_seconds_sum" in values
