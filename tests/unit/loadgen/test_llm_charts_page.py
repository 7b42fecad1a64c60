"""The live LLM charts page: shipped with the package, polling the web UI's own stats under its base path."""

from __future__ import annotations

from loadgen.webui import charts_page


def test_the_page_polls_the_stats_under_the_web_base_path() -> None:
    page = charts_page("/locust")
    assert 'const BASE = "/locust";' in page and "`${BASE}/stats/requests`" in page
    assert "__BASE_JSON__" not in page
    for key in ("throughput_tok_s_current", "input_tok_s_current", "ttft_p95_ms", "itl_p95_ms", "in_flight"):
        assert f'"{key}"' in page  # the LLM tab's row keys it draws


def test_a_base_path_cannot_break_out_of_the_script_string() -> None:
    assert 'const BASE = "/a\\"b";' in charts_page('/a"b')
