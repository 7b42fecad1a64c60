"""LLM stats on Locust's machinery: per-name rows, worker report → master merge, and the CSV."""

from __future__ import annotations

import csv
import io

import pytest

from loadgen.llmstats import CSV_COLUMNS, LLMStats
from loadgen.options import Settings


def test_rows_and_merge_across_workers() -> None:
    workers = [LLMStats(), LLMStats()]
    workers[0].log("POST", "batch", 200.0, 20.0, 256)
    workers[0].log("POST", "batch", 210.0, 22.0, 256)
    workers[1].log("POST", "chat", 50.0, None, 1)
    master = LLMStats()
    for w in workers:
        master.merge(w.report())
    assert all(w.ttft.total.num_requests == 0 for w in workers)  # reports are stripped
    rows = {r["name"]: r for r in master.rows(run_start_s=0.0, now_s=10.0)}
    assert rows["batch"]["requests"] == 2 and rows["batch"]["output_tokens"] == 512
    assert rows["batch"]["ttft_avg_ms"] == pytest.approx(205.0)
    assert rows["batch"]["tpot_avg_ms"] == pytest.approx(21.0)
    assert rows["chat"]["tpot_avg_ms"] is None
    assert rows["Aggregated"]["requests"] == 3 and rows["Aggregated"]["output_tok_s"] == pytest.approx(51.3)


def test_csv_has_a_header_and_one_row_per_name() -> None:
    stats = LLMStats()
    stats.log("POST", "batch", 200.0, 20.0, 4)
    buf = io.StringIO()
    stats.write_csv(buf, stats.rows(run_start_s=0.0, now_s=1.0))
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS and [r[1] for r in rows[1:]] == ["batch", "Aggregated"]


def test_settings_read_the_key_once_and_never_show_it() -> None:
    class Opts:
        api_key = None
        csv_prefix = "/tmp/x"

    s = Settings.from_options(Opts(), environ={"OPENAI_API_KEY": "sk-from-env"})
    assert s.api_key == "sk-from-env" and "sk-from-env" not in repr(s)
    assert s.auth_headers() == {"Authorization": "Bearer sk-from-env"}
    assert s.request_log == "/tmp/x" and s.ignore_eos and s.api == "completions"
    assert Settings.from_options(object(), environ={}).auth_headers() == {}
