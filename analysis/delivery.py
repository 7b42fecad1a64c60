"""Record delivery of a distributed cell: which workers' request records never reached the master.

Pure: the master's PREFIX_workers.json (as a dict) in, the capacity row's `records_lost` and
`records_lost_detail` out. A worker's `lost` counts requests it started whose records never arrived (its
in-flight requests and unsent batch when it died, batches that never arrived, rows dropped under
back-pressure). A worker that stopped without its last batch may have started more requests than it
reported, so its count is a lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["DELIVERY_COLUMNS", "delivery_row"]

DELIVERY_COLUMNS = ["records_lost", "records_lost_detail"]
_FINISHED = "finished"  # the worker's last batch arrived


def _int(worker: Mapping[str, Any], key: str) -> int:
    try:
        return int(worker.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _worker_loss(worker: Mapping[str, Any]) -> str | None:
    """ "N of M from worker W (why)", or None when every record this worker started arrived."""
    lost, started = _int(worker, "lost"), _int(worker, "started")
    finished = worker.get("state") == _FINISHED
    if lost == 0 and finished:
        return None
    identity = worker.get("identity") or {}
    name = identity.get("tag") or worker.get("node_id") or "?"
    notes = []
    if not finished:
        notes.append(f"it stopped without its last batch: at least {lost}")
    if gap := _int(worker, "gap_records"):
        notes.append(f"{gap} in batches that never arrived")
    if dropped := _int(worker, "dropped"):
        notes.append(f"{dropped} dropped under back-pressure")
    why = f" ({', '.join(notes)})" if notes else ""
    return f"{lost} of {started} from worker {name}{why}"


def delivery_row(delivery: Mapping[str, Any]) -> dict[str, Any]:
    """`records_lost` (NaN when the cell was not distributed) and the per-worker detail ("" when none)."""
    workers = delivery.get("workers")
    if not isinstance(workers, list):
        return {"records_lost": math.nan, "records_lost_detail": ""}
    losses = [text for w in workers if isinstance(w, Mapping) and (text := _worker_loss(w))]
    lost = sum(_int(w, "lost") for w in workers if isinstance(w, Mapping))
    return {"records_lost": lost, "records_lost_detail": ", ".join(losses)}
