"""Distributed runs: workers ship their records to the master over Locust's own messages; the master writes them.

Worker side (`ShippingSink`, the request log's interface): formatted rows are buffered and sent every
`BATCH_INTERVAL_S` (or every `BATCH_MAX_ROWS` rows) as one zlib-compressed JSON batch carrying a per-worker
sequence number, the index of its first request row, and how many requests this worker has started. The
master acknowledges each batch; a worker keeps at most its memory budget of bytes unacknowledged, and past
it new rows wait for acknowledgements (then are dropped, counted and reported as lost).

Master side (`RecordCollector`): writes each worker's rows to the standard PREFIX_<kind>_<host>-<pid>.csv
files of the cell, drops duplicate batches, counts gaps, and at the end writes PREFIX_workers.json: every
worker's host, pid, versions and CPU, what arrived, and what was lost — requests a worker started whose
records never reached the master (a worker killed mid-run loses its last unsent batch and its in-flight
requests; they are counted here, never silently).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadgen.requestlog import (
    CsvRecordSink,
    RequestRecord,
    ShippedRows,
    client_cells,
    drop_row,
    emit_lag_row,
    process_tag,
)
from runformat.atomic import write_json_atomic
from runformat.layout import RecordKind, workers_file

__all__ = [
    "ACK_MESSAGE",
    "MESSAGE",
    "RecordCollector",
    "ShippingSink",
    "WorkerIdentity",
    "decode_batch",
    "encode_batch",
]

logger = logging.getLogger(__name__)

MESSAGE = "loadgen_records"  # worker -> master: one compressed batch
ACK_MESSAGE = "loadgen_records_ack"  # master -> worker: {"seq": n}
BATCH_INTERVAL_S = 0.5
BATCH_MAX_ROWS = 2000
BACKPRESSURE_WAIT_S = 30.0  # how long new rows wait for acknowledgements before they are dropped


def encode_batch(header: dict[str, Any], rows: ShippedRows) -> bytes:
    return zlib.compress(json.dumps({"h": header, "r": rows}, separators=(",", ":")).encode(), 1)


def decode_batch(blob: bytes) -> tuple[dict[str, Any], ShippedRows]:
    body = json.loads(zlib.decompress(blob))
    return body["h"], body["r"]


@dataclass(frozen=True)
class WorkerIdentity:
    """Who a worker is: written to PREFIX_workers.json and the cell's metadata."""

    tag: str
    host: str
    pid: int
    cpu_count: int | None
    cpu_model: str
    python: str
    locust_version: str

    @classmethod
    def of_this_process(cls) -> WorkerIdentity:
        import locust

        return cls(
            tag=process_tag(),
            host=socket.gethostname(),
            pid=os.getpid(),
            cpu_count=os.cpu_count(),
            cpu_model=platform.processor() or platform.machine(),
            python=platform.python_version(),
            locust_version=locust.__version__,
        )


class ShippingSink:
    """A worker's request log that sends its rows to the master instead of writing files.

    `send(blob)` delivers one encoded batch; `wait(timeout_s)` blocks until an acknowledgement arrives
    (False on timeout). Both are passed in, so the batching and budget logic runs without Locust.
    """

    def __init__(
        self,
        identity: WorkerIdentity,
        send: Callable[[bytes], None],
        wait: Callable[[float], bool],
        *,
        budget_bytes: int = 64 << 20,
        interval_s: float = BATCH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self.paths: dict[str, Path] = {}
        self._send = send
        self._wait = wait
        self._budget = budget_bytes
        self._interval = interval_s
        self._clock = clock
        self._rows: ShippedRows = {kind.value: [] for kind in RecordKind}
        self._pending = 0
        self._last_send = clock()
        self.seq = 0
        self.requests_shipped = 0  # request rows put in batches so far (the next batch's first index)
        self.started = 0
        self.dropped = 0
        self.unacked: dict[int, int] = {}  # seq -> encoded bytes

    @property
    def unacked_bytes(self) -> int:
        return sum(self.unacked.values())

    def request_started(self) -> None:
        self.started += 1

    def write_request(self, record: RequestRecord) -> None:
        self._rows[RecordKind.REQUESTS].append(record.row())
        if record.arrivals_ms:
            self._rows[RecordKind.TOKENS].append(record.token_row())
        if record.emit_lag_us:
            self._rows[RecordKind.EMIT_LAG].append(emit_lag_row(record))
        self._pending += 1
        self.flush_if_due()

    def write_drop(self, scheduled_wall_s: float) -> None:
        self._rows[RecordKind.DROPS].append(drop_row(scheduled_wall_s))
        self._pending += 1
        self.flush_if_due()

    def write_client(self, row: Iterable[object]) -> None:
        self._rows[RecordKind.CLIENT].append(client_cells(list(row)))
        self._pending += 1
        self.flush_if_due()

    def flush_if_due(self) -> None:
        if self._pending >= BATCH_MAX_ROWS or self._clock() - self._last_send >= self._interval:
            self.flush()

    def flush(self, final: bool = False, wait_s: float = BACKPRESSURE_WAIT_S) -> None:
        """Send what is buffered (an empty batch too: it carries the started count and `final`)."""
        self._last_send = self._clock()
        rows, self._rows = self._rows, {kind.value: [] for kind in RecordKind}
        self._pending = 0
        n_requests = len(rows[RecordKind.REQUESTS])
        deadline = self._clock() + wait_s
        while self.unacked_bytes > self._budget and self._clock() < deadline:
            self._wait(max(0.0, deadline - self._clock()))
        if self.unacked_bytes > self._budget:
            logger.error("master not acknowledging records: dropping %d request records", n_requests)
            self.dropped += n_requests
            rows = {kind.value: [] for kind in RecordKind}
            n_requests = 0
        self.seq += 1
        header = {
            "seq": self.seq,
            "first": self.requests_shipped,
            "n": n_requests,
            "started": self.started,
            "dropped": self.dropped,
            "final": final,
            "worker": asdict(self.identity),
        }
        blob = encode_batch(header, rows)
        self.requests_shipped += n_requests
        self.unacked[self.seq] = len(blob)
        self._send(blob)

    def on_ack(self, seq: int) -> None:
        for s in [s for s in self.unacked if s <= seq]:
            del self.unacked[s]

    def close(self) -> None:
        """Ship rows written after the last batch (without waiting: the master may be gone)."""
        if self._pending:
            self.flush(final=True, wait_s=0.0)


@dataclass
class WorkerLedger:
    """What the master knows of one worker's deliveries."""

    node_id: str
    identity: dict[str, Any] = field(default_factory=dict)
    batches: int = 0
    records: int = 0
    started: int = 0
    dropped: int = 0
    gap_batches: int = 0
    gap_records: int = 0
    duplicate_batches: int = 0
    compressed_bytes: int = 0
    busy_s: float = 0.0  # master time spent taking this worker's batches
    next_seq: int = 1
    final: bool = False

    @property
    def lost(self) -> int:
        """Requests this worker reported starting whose records never arrived."""
        return max(0, self.started - self.records)

    def summary(self, state: str) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "next_seq"}
        out.update(lost=self.lost, state=state)
        return out


class RecordCollector:
    """The master's end: one CsvRecordSink per worker (named by the worker's `<host>-<pid>`)."""

    def __init__(self, prefix: str, *, emit_lag: bool = False, clock: Callable[[], float] = time.perf_counter) -> None:
        self.prefix = prefix
        self._clock = clock
        self._emit_lag = emit_lag
        self.ledgers: dict[str, WorkerLedger] = {}
        self._sinks: dict[str, CsvRecordSink] = {}
        self.written: Path | None = None

    def on_batch(self, node_id: str, blob: bytes) -> int:
        """Take one batch; returns the sequence number to acknowledge."""
        t0 = self._clock()
        ledger = self.ledgers.setdefault(node_id, WorkerLedger(node_id))
        try:
            return self._take(ledger, blob)
        finally:
            ledger.busy_s += self._clock() - t0

    def _take(self, ledger: WorkerLedger, blob: bytes) -> int:
        header, rows = decode_batch(blob)
        node_id = ledger.node_id
        seq = int(header["seq"])
        if seq < ledger.next_seq:
            ledger.duplicate_batches += 1
            return seq
        if seq > ledger.next_seq:
            ledger.gap_batches += seq - ledger.next_seq
            ledger.gap_records += max(0, int(header["first"]) - ledger.records)
            logger.error("records from worker %s: batches %d..%d never arrived", node_id, ledger.next_seq, seq - 1)
        ledger.next_seq = seq + 1
        ledger.identity = header.get("worker") or ledger.identity
        ledger.batches += 1
        ledger.compressed_bytes += len(blob)
        ledger.records += int(header["n"])
        ledger.started = max(ledger.started, int(header["started"]))
        ledger.dropped = int(header.get("dropped", 0))
        ledger.final = ledger.final or bool(header.get("final"))
        if any(rows.values()):
            self._sink(node_id, ledger).write_rows(rows)
        return seq

    def _sink(self, node_id: str, ledger: WorkerLedger) -> CsvRecordSink:
        sink = self._sinks.get(node_id)
        if sink is None:
            tag = str(ledger.identity.get("tag") or node_id)
            sink = self._sinks[node_id] = CsvRecordSink(self.prefix, tag, emit_lag=self._emit_lag)
        return sink

    def waiting_for(self, live_nodes: Iterable[str]) -> set[str]:
        """Live workers whose final batch has not arrived."""
        return {n for n in live_nodes if not (n in self.ledgers and self.ledgers[n].final)}

    def summary(self, live_nodes: Iterable[str] = ()) -> dict[str, Any]:
        live = set(live_nodes)
        workers = [
            ledger.summary("finished" if ledger.final else "connected" if n in live else "lost")
            for n, ledger in sorted(self.ledgers.items())
        ]
        return {
            "workers": workers,
            "records": sum(w["records"] for w in workers),
            "lost_records": sum(w["lost"] for w in workers),
            "gap_records": sum(w["gap_records"] for w in workers),
            "duplicate_batches": sum(w["duplicate_batches"] for w in workers),
            "master_busy_s": round(sum(w["busy_s"] for w in workers), 6),
        }

    def flush(self) -> None:
        for sink in self._sinks.values():
            sink.flush()

    def close(self, live_nodes: Iterable[str] = ()) -> dict[str, Any]:
        """Close the files and write PREFIX_workers.json; returns its content."""
        for sink in self._sinks.values():
            sink.close()
        summary = self.summary(live_nodes)
        for w in summary["workers"]:
            if w["lost"]:
                logger.error(
                    "worker %s (%s): %d request(s) started whose records never reached the master (%s)",
                    w["node_id"],
                    w["identity"].get("tag", "?"),
                    w["lost"],
                    w["state"],
                )
        self.written = write_json_atomic(workers_file(self.prefix), summary)
        return summary
