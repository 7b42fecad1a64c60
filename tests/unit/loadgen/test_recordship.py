"""Record shipping without Locust: batching, sequence numbers, gaps, duplicates, losses, the memory budget."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from loadgen.recordship import BATCH_MAX_ROWS, RecordCollector, ShippingSink, WorkerIdentity, decode_batch
from loadgen.requestlog import RequestRecord

IDENTITY = WorkerIdentity("hostA-11", "hostA", 11, 4, "x86_64", "3.11", "2.47.0")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{i}", target_label="T", workload="batch", api="completions", max_new_tokens=8,
        start_wall_s=1000.0 + i, t_send_s=float(i), ttft_ms=10.0, e2e_ms=50.0, output_tokens=8, success=True,
        worker_id="hostA-11", arrivals_ms=[10.0, 20.0], counts=[4, 4],
    )  # fmt: skip


def _sink(sent: list[bytes], clock: Clock, budget: int = 1 << 20, wait=lambda _s: False) -> ShippingSink:  # type: ignore[no-untyped-def]
    return ShippingSink(IDENTITY, sent.append, wait, budget_bytes=budget, interval_s=0.5, clock=clock)


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))[1:]


def test_batches_carry_rows_sequence_and_started_count() -> None:
    sent: list[bytes] = []
    clock = Clock()
    sink = _sink(sent, clock)
    for i in range(3):
        sink.request_started()
        sink.write_request(_record(i))
    assert sent == []  # not due yet
    clock.now = 0.6
    sink.write_client([1000.0, 12.5, None, None, 3])
    header, rows = decode_batch(sent[0])
    assert (header["seq"], header["first"], header["n"], header["started"], header["final"]) == (1, 0, 3, 3, False)
    assert [r[0] for r in rows["requests"]] == ["r0", "r1", "r2"]
    assert rows["tokens"][0] == ["r0", "10.000 20.000", "4 4"]
    assert rows["client"] == [["1000.000", "12.500", "", "", 3]]  # as the local CSV sink formats them
    assert header["worker"]["tag"] == "hostA-11"


def test_a_full_batch_is_sent_before_its_interval() -> None:
    sent: list[bytes] = []
    sink = _sink(sent, Clock())
    for i in range(BATCH_MAX_ROWS):
        sink.write_request(_record(i))
    assert len(sent) == 1 and decode_batch(sent[0])[0]["n"] == BATCH_MAX_ROWS


def test_collector_writes_rows_once_and_counts_gaps_duplicates_and_losses(tmp_path: Path) -> None:
    sent: list[bytes] = []
    sink = _sink(sent, Clock())
    for i in range(6):
        sink.request_started()
        if i < 5:  # the sixth is in flight when the worker dies
            sink.write_request(_record(i))
        if i in (1, 3):
            sink.flush()
    collector = RecordCollector(str(tmp_path / "run"))
    assert collector.on_batch("w1", sent[0]) == 1
    assert collector.on_batch("w1", sent[0]) == 1  # a duplicate: acknowledged, not written again
    sink.flush(final=False)
    assert collector.on_batch("w1", sent[2]) == 3  # batch 2 never arrives
    summary = collector.close(live_nodes=[])
    rows = _rows(tmp_path / "run_requests_hostA-11.csv")
    assert [r[0] for r in rows] == ["r0", "r1", "r4"]
    (worker,) = summary["workers"]
    assert (worker["duplicate_batches"], worker["gap_batches"], worker["gap_records"]) == (1, 1, 2)
    assert (worker["started"], worker["records"], worker["lost"], worker["state"]) == (6, 3, 3, "lost")
    assert json.loads((tmp_path / "run_workers.json").read_text()) == summary
    assert collector.waiting_for(["w1", "w2"]) == {"w1", "w2"}


def test_final_batch_marks_the_worker_finished(tmp_path: Path) -> None:
    sent: list[bytes] = []
    sink = _sink(sent, Clock())
    sink.request_started()
    sink.write_request(_record(0))
    sink.flush(final=True)
    collector = RecordCollector(str(tmp_path / "run"))
    collector.on_batch("w1", sent[0])
    assert collector.waiting_for(["w1"]) == set()
    summary = collector.close(live_nodes=["w1"])
    assert summary["workers"][0]["state"] == "finished" and summary["lost_records"] == 0


def test_over_budget_waits_for_acks_then_drops_and_counts() -> None:
    sent: list[bytes] = []
    clock = Clock()
    acks: list[float] = []

    def wait(timeout_s: float) -> bool:  # an acknowledgement that never comes: time passes
        acks.append(timeout_s)
        clock.now += timeout_s
        return False

    sink = _sink(sent, clock, budget=1, wait=wait)
    sink.write_request(_record(0))
    sink.flush()  # nothing unacknowledged yet: sent
    sink.write_request(_record(1))
    sink.flush()  # over budget: waits, gives up, drops and counts
    assert acks and decode_batch(sent[1])[0]["n"] == 0 and sink.dropped == 1
    assert decode_batch(sent[1])[0]["dropped"] == 1
    sink.on_ack(2)
    assert sink.unacked_bytes == 0
    sink.write_request(_record(2))
    sink.flush()
    assert decode_batch(sent[2])[0]["n"] == 1
