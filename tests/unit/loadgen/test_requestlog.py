"""Request log files: exact column order, cell formatting, token trace, and the 1 s flush."""

from __future__ import annotations

import csv
from pathlib import Path

from loadgen.requestlog import CLIENT_COLUMNS, REQUEST_COLUMNS, CsvRecordSink, RequestRecord

EXPECTED = (
    "request_id,target_label,workload,api,max_new_tokens,start_wall_s,t_send_s,ttft_ms,e2e_ms,tpot_ms,"
    "itl_mean_ms,itl_p99_ms,prompt_tokens,output_tokens,tokens_source,finish_reason,http_status,success,"
    "error,user_id,worker_id,retry_after_s,scheduled_wall_s,schedule_lag_ms"
)


def record(**kw: object) -> RequestRecord:
    base: dict[str, object] = dict(
        request_id="r1", target_label="GPU", workload="batch", api="completions", max_new_tokens=4,
        start_wall_s=1_700_000_000.123456, t_send_s=12.5, ttft_ms=200.0, e2e_ms=260.0, tpot_ms=20.0,
        itl_mean_ms=20.0, itl_p99_ms=24.9, prompt_tokens=10, output_tokens=4, tokens_source="usage",
        finish_reason="length", http_status=200, success=True, user_id="1", worker_id="host-1",
        arrivals_ms=[200.0, 220.0, 260.0], counts=[1, 2, 1],
    )  # fmt: skip
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_columns_are_the_contract() -> None:
    assert ",".join(REQUEST_COLUMNS) == EXPECTED
    assert CLIENT_COLUMNS == ("wall_s", "cpu_pct", "dispatch_lag_p99_ms", "dispatch_lag_max_ms", "active_users")


def test_files_rows_and_flush(tmp_path: Path) -> None:
    now = [0.0]
    sink = CsvRecordSink(str(tmp_path / "sub" / "run"), tag="h-1", clock=lambda: now[0])
    sink.write_request(record())
    sink.write_request(
        record(request_id="r2", success=False, error="HTTP 500: boom", ttft_ms=None, e2e_ms=None, tpot_ms=None,
               itl_mean_ms=None, itl_p99_ms=None, prompt_tokens=None, output_tokens=0, arrivals_ms=[], counts=[])
    )  # fmt: skip
    req_path = tmp_path / "sub" / "run_requests_h-1.csv"
    assert req_path.read_text() == ""  # buffered until a second has passed
    now[0] = 1.5
    sink.write_client([1_700_000_001.0, 12.5, 0.5, 1.0, 8])
    rows = read_rows(req_path)
    assert ",".join(rows[0]) == EXPECTED
    assert rows[1][:9] == [
        "r1",
        "GPU",
        "batch",
        "completions",
        "4",
        "1700000000.123456",
        "12.500000",
        "200.000",
        "260.000",
    ]
    assert rows[1][16:] == ["200", "1", "", "1", "host-1", "", "", ""]
    assert rows[2][7] == "" and rows[2][17] == "0" and rows[2][18] == "HTTP 500: boom"
    tokens = read_rows(tmp_path / "sub" / "run_tokens_h-1.csv")
    assert tokens == [["request_id", "arrivals_ms", "counts"], ["r1", "200.000 220.000 260.000", "1 2 1"]]
    client = read_rows(tmp_path / "sub" / "run_client_h-1.csv")
    assert client[1] == ["1700000001.000", "12.500", "0.500", "1.000", "8"]
    sink.close()


def test_counts_empty_when_every_event_has_one_token(tmp_path: Path) -> None:
    assert record(counts=[1, 1, 1]).token_row() == ["r1", "200.000 220.000 260.000", ""]
