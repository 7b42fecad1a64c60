"""From paths to tables: load every cell under the given runs/prefixes and reduce them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from analysis.capacity import CAPACITY_COLUMNS, CellData, capacity_table
from analysis.errors import InputError
from analysis.loading import (
    CellFiles,
    find_cells,
    read_arrivals,
    read_client_health,
    read_delivery,
    read_drops,
    read_locust_history,
    read_locust_stats,
    read_requests,
    read_tokens,
)
from analysis.openloop import OPEN_LOOP_COLUMNS
from analysis.writing import write_csv_atomic

__all__ = ["SEED_COLUMNS", "capacity_from_paths", "iter_cells", "load_cells", "seed_capacity_csv"]

# The seed's capacity CSV: its gpu_name column first, then the capacity table's METRICS columns (without the
# diagnostic ones the report shows elsewhere).
_NOT_IN_SEED = {
    "target_label",
    "interrupted",
    "client_cpu_pct",
    "dispatch_lag_p99_ms",
    "client_output_tokens",
    "server_generation_tokens",
    "status",
    *OPEN_LOOP_COLUMNS,
}
SEED_COLUMNS = ["gpu_name", *(c for c in CAPACITY_COLUMNS if c not in _NOT_IN_SEED)]


def _load(cell: CellFiles) -> CellData:
    return CellData(
        name=str(cell.prefix),
        metadata=cell.metadata,
        requests=read_requests(cell),
        tokens=read_tokens(cell),
        client=read_client_health(cell),
        locust_stats=read_locust_stats(cell),
        locust_history=read_locust_history(cell),
        drops=read_drops(cell),
        arrivals=read_arrivals(cell),
        delivery=read_delivery(cell),
    )


def _found(paths: list[Path]) -> list[CellFiles]:
    cells: list[CellFiles] = []
    for path in paths:
        if not path.exists() and not path.parent.exists():
            raise InputError(f"{path}: no such file or directory")
        cells.extend(find_cells(path))
    return cells


def _load_marked(cell: CellFiles) -> CellData:
    """Load a cell; an unfinished grid cell (no COMPLETE marker) is kept, marked by its status."""
    data = _load(cell)
    if not cell.complete and data.metadata.get("status") in (None, "running", "completed"):
        data.metadata = {**data.metadata, "status": "unfinished"}
    return data


def iter_cells(paths: list[Path], workers: int | None = None) -> Iterator[CellData]:
    """Cells under every path in order, loaded by a few threads (Arrow's CSV reading and parsing release
    the GIL) with at most `workers` cells in memory at once."""
    cells = _found(paths)
    workers = workers or min(4, os.cpu_count() or 1)
    if workers <= 1 or len(cells) <= 1:
        yield from map(_load_marked, cells)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [pool.submit(_load_marked, c) for c in cells[:workers]]
        for nxt in [*cells[workers:], *([None] * workers)]:
            done = pending.pop(0).result()
            if nxt is not None:
                pending.append(pool.submit(_load_marked, nxt))
            yield done


def load_cells(paths: list[Path], include_unfinished: bool = False) -> list[CellData]:
    """Every cell under the paths, all in memory (see `iter_cells`)."""
    return list(iter_cells(paths))


def capacity_from_paths(paths: list[Path]) -> pd.DataFrame:
    # rows are reduced as cells arrive: a large run's token traces need not all fit in memory at once
    return capacity_table(iter_cells(paths))


def seed_capacity_csv(run_dir: Path, out_csv: Path) -> pd.DataFrame:
    table = capacity_from_paths([run_dir]).rename(columns={"target_label": "gpu_name"})
    seed = table[SEED_COLUMNS]
    write_csv_atomic(out_csv, seed)
    return seed
