"""Per-request records and the CSV files they go to (one set per process), flushed at least every second.

Files, for a prefix P and this process's `<hostname>-<pid>`:
  P_requests_<id>.csv  one row per request (REQUEST_COLUMNS)
  P_tokens_<id>.csv    token arrival trace: offsets from t_send (ms) and tokens per event
  P_client_<id>.csv    load-generator health, one row per second (CLIENT_COLUMNS)
  P_emitlag_<id>.csv   only with --record-emit-lag: client arrival − server emission per event (µs)
  P_drops_<id>.csv     only in open loop: the scheduled time of every arrival that found no free user
"""

from __future__ import annotations

import csv
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import IO, Protocol

from runformat.records import CLIENT_COLUMNS, DROP_COLUMNS, EMIT_LAG_COLUMNS, REQUEST_COLUMNS, TOKEN_COLUMNS

__all__ = [
    "CLIENT_COLUMNS",
    "DROP_COLUMNS",
    "REQUEST_COLUMNS",
    "TOKEN_COLUMNS",
    "CsvRecordSink",
    "RequestRecord",
    "RowWriter",
    "ShippedRows",
    "client_cells",
    "emit_lag_row",
    "process_tag",
]


class RowWriter(Protocol):
    """The slice of `csv.writer` the sink needs; tests can pass a list-backed fake."""

    def writerow(self, row: Iterable[object], /) -> object: ...

    def writerows(self, rows: Iterable[Iterable[object]], /) -> object: ...


# A batch of formatted rows per record kind (RecordKind values), as a worker ships them.
ShippedRows = dict[str, list[list[object]]]


@dataclass(slots=True)
class RequestRecord:
    """One request as written to the request log; None becomes an empty cell."""

    request_id: str
    target_label: str
    workload: str
    api: str
    max_new_tokens: int
    start_wall_s: float
    t_send_s: float
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    tpot_ms: float | None = None
    itl_mean_ms: float | None = None
    itl_p99_ms: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int = 0
    tokens_source: str = "events"
    finish_reason: str | None = None
    http_status: int | None = None
    success: bool = False
    error: str | None = None
    user_id: str = ""
    worker_id: str = ""
    retry_after_s: float | None = None  # the server's Retry-After on a 429/503, in seconds
    # Open loop only: when the arrival schedule wanted the request sent, and send − scheduled (ms).
    scheduled_wall_s: float | None = None
    schedule_lag_ms: float | None = None
    # Not columns of the request file: the token arrival trace and optional emit lags.
    arrivals_ms: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    emit_lag_us: list[float] | None = None

    def row(self) -> list[object]:
        # Not dataclasses.astuple: it deep-copies every field, the per-token lists included.
        return [_cell(v, precise) for v, precise in zip(_request_values(self), _PRECISE, strict=True)]

    def token_row(self) -> list[object]:
        # One %-format over the whole list: a third cheaper than joining per-value f-strings.
        arrivals = ("%.3f " * len(self.arrivals_ms) % tuple(self.arrivals_ms))[:-1]
        counts = "" if all(c == 1 for c in self.counts) else " ".join(map(str, self.counts))
        return [self.request_id, arrivals, counts]


_request_values = attrgetter(*REQUEST_COLUMNS)
# Seconds columns keep microseconds; millisecond columns keep microseconds too (3 decimals).
_PRECISE = tuple(name.endswith("_s") for name in REQUEST_COLUMNS)


def _cell(value: object, precise: bool = False) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.6f}" if precise else f"{value:.3f}"
    return value


def client_cells(row: Sequence[object]) -> list[object]:
    """A client-health row as its CSV cells."""
    return [_cell(v) for v in row]


def emit_lag_row(record: RequestRecord) -> list[object]:
    return [record.request_id, " ".join(f"{v:.1f}" for v in record.emit_lag_us or ())]


def drop_row(scheduled_wall_s: float) -> list[object]:
    """A PREFIX_drops_ row: the dropped arrival's scheduled wall time (µs precision)."""
    return [_cell(scheduled_wall_s, precise=True)]


def process_tag() -> str:
    """`<hostname>-<pid>`: distinguishes the files of every process, local or distributed."""
    return f"{socket.gethostname()}-{os.getpid()}"


class CsvRecordSink:
    """Writes records to CSV files named from `prefix`; `flush_if_due()` keeps data at most ~1 s behind."""

    def __init__(
        self,
        prefix: str,
        tag: str | None = None,
        *,
        emit_lag: bool = False,
        drops: bool = False,
        flush_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tag = tag or process_tag()
        base = Path(f"{prefix}_x").parent
        base.mkdir(parents=True, exist_ok=True)
        self._files: list[IO[str]] = []
        self.paths: dict[str, Path] = {}
        self._requests = self._open(prefix, "requests", REQUEST_COLUMNS)
        self._tokens = self._open(prefix, "tokens", TOKEN_COLUMNS)
        self._client = self._open(prefix, "client", CLIENT_COLUMNS)
        self._emit = self._open(prefix, "emitlag", EMIT_LAG_COLUMNS) if emit_lag else None
        self._prefix = prefix
        self._drops = self._open(prefix, "drops", DROP_COLUMNS) if drops else None
        self._clock = clock
        self._interval = flush_interval_s
        self._last_flush = clock()

    def _open(self, prefix: str, kind: str, header: Sequence[str]) -> RowWriter:
        path = Path(f"{prefix}_{kind}_{self.tag}.csv")
        f = path.open("w", newline="", encoding="utf-8")
        self._files.append(f)
        self.paths[kind] = path
        writer = csv.writer(f)
        writer.writerow(header)
        return writer

    def write_request(self, record: RequestRecord) -> None:
        self._requests.writerow(record.row())
        if record.arrivals_ms:
            self._tokens.writerow(record.token_row())
        if self._emit is not None and record.emit_lag_us:
            self._emit.writerow(emit_lag_row(record))
        self.flush_if_due()

    def write_drop(self, scheduled_wall_s: float) -> None:
        self._drop_writer().writerow(drop_row(scheduled_wall_s))
        self.flush_if_due()

    def _drop_writer(self) -> RowWriter:
        """The drops file, opened on the first drop (a master learns of open loop from shipped rows)."""
        if self._drops is None:
            self._drops = self._open(self._prefix, "drops", DROP_COLUMNS)
        return self._drops

    def write_client(self, row: Sequence[object]) -> None:
        self._client.writerow(client_cells(row))
        self.flush_if_due()

    def write_rows(self, rows: ShippedRows) -> None:
        """Rows already formatted by another process (a worker's shipped batch), written as they are."""
        self._requests.writerows(rows.get("requests", ()))
        self._tokens.writerows(rows.get("tokens", ()))
        self._client.writerows(rows.get("client", ()))
        if self._emit is not None:
            self._emit.writerows(rows.get("emitlag", ()))
        if rows.get("drops"):
            self._drop_writer().writerows(rows["drops"])
        self.flush_if_due()

    def flush_if_due(self) -> None:
        now = self._clock()
        if now - self._last_flush >= self._interval:
            self.flush()

    def flush(self) -> None:
        self._last_flush = self._clock()
        for f in self._files:
            if not f.closed:
                f.flush()

    def close(self) -> None:
        for f in self._files:
            if not f.closed:
                f.close()
