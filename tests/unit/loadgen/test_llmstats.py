"""LLM stats on Locust's machinery: live first tokens and token counts, worker report → master merge, CSV."""

from __future__ import annotations

import csv
import io

import pytest

from loadgen.llmstats import CSV_COLUMNS, LLMStats
from loadgen.options import Settings
from loadgen.requestlog import RequestRecord
from loadgen.stream import StreamResult
from loadgen.timing import RequestTiming


def _record(key: str, output_tokens: int, prompt_tokens: int) -> RequestRecord:
    rec = RequestRecord(key, "t", "batch", "completions", 16, 0.0, 0.0)
    rec.output_tokens, rec.prompt_tokens = output_tokens, prompt_tokens
    return rec


def test_first_token_and_tokens_are_seen_before_the_request_ends() -> None:
    stats = LLMStats()
    watch = stats.watch("batch")
    result = StreamResult(RequestTiming(t_send=10.0))
    watch.opened("r1", result)
    assert stats.rows(0.0, 1.0)[0]["in_flight"] == 1 and stats.ttft.total.num_requests == 0
    result.timing.arrivals += [10.25, 10.27]
    result.timing.counts += [1, 3]
    result.prompt_tokens = 100
    stats.log_first_tokens()
    stats.log_first_tokens()  # logged once
    row = stats.rows(0.0, 2.0)[0]
    assert row["requests"] == 0 and row["ttft_avg_ms"] == pytest.approx(250.0)
    assert stats.ttft.total.num_requests == 1
    assert row["output_tokens"] == 4 and row["input_tokens"] == 100 and row["throughput_tok_s"] == 2.0
    watch.closed("r1", _record("r1", 5, 100))  # the server's usage is authoritative at the end
    row = stats.rows(0.0, 2.0)[0]
    assert row["in_flight"] == 0 and row["output_tokens"] == 5 and stats.ttft.total.num_requests == 1


def test_a_request_that_ends_between_ticks_still_gets_its_ttft() -> None:
    stats = LLMStats()
    watch = stats.watch("chat")
    result = StreamResult(RequestTiming(t_send=0.0))
    watch.opened("r", result)
    result.timing.arrivals.append(0.1)
    result.timing.counts.append(1)
    watch.closed("r", _record("r", 1, 5))
    assert stats.ttft.total.num_requests == 1 and stats.ttft.total.avg_response_time == pytest.approx(100.0)


def test_rows_and_merge_across_workers() -> None:
    workers = [LLMStats(), LLMStats()]
    workers[0].log_completed("POST", "batch", 1000.0, 20.0, [20.0, 20.0])
    workers[0].log_completed("POST", "batch", 1100.0, 22.0, [22.0])
    workers[0].log_first_token("POST", "batch", 200.0)
    workers[1].log_completed("POST", "chat", 50.0, None, [])
    workers[1].log_first_token("POST", "chat", 50.0)
    master = LLMStats()
    for i, w in enumerate(workers):
        result = StreamResult(RequestTiming(0.0))
        w.live.opened("k", "batch" if i == 0 else "chat", result)
        result.timing.counts += [1] * 10
        master.merge(w.report(), f"w{i}")
    assert all(w.e2e.total.num_requests == 0 and not w.itl for w in workers)  # reports are stripped
    rows = {r["name"]: r for r in master.rows(run_start_s=0.0, now_s=10.0)}
    assert rows["batch"]["requests"] == 2 and rows["batch"]["e2e_avg_ms"] == pytest.approx(1050.0)
    assert rows["batch"]["tpot_avg_ms"] == pytest.approx(21.0) and rows["batch"]["itl_p50_ms"] == 20.0
    assert rows["chat"]["tpot_avg_ms"] is None and rows["chat"]["in_flight"] == 1
    agg = rows["Aggregated"]
    assert agg["requests"] == 3 and agg["output_tokens"] == 20 and agg["throughput_tok_s"] == 2.0
    # Token totals are cumulative: a second report replaces the first instead of adding to it.
    master.merge(workers[0].report(), "w0")
    assert master.rows(0.0, 10.0)[-1]["output_tokens"] == 20


def test_csv_has_a_header_and_one_row_per_name() -> None:
    stats = LLMStats()
    stats.log_completed("POST", "batch", 200.0, 20.0, [20.0])
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


def test_the_master_window_starts_at_the_earliest_workers_arrival_schedule() -> None:
    workers = [LLMStats(), LLMStats(), LLMStats()]
    workers[0].mark_schedule_start(1000.25)
    workers[1].mark_schedule_start(1000.10)  # the third runs a closed loop: no schedule, nothing sent
    master = LLMStats()
    for i, w in enumerate(workers):
        master.merge(w.report(), f"w{i}")
    assert master.schedule_start_s == 1000.10
    assert "schedule_start_s" not in workers[2].report()
    master.clear()
    assert master.schedule_start_s is None
