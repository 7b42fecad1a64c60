"""Finds cells in run directories or Locust CSV prefixes and reads their files into DataFrames.

This and `render`/`writing` are the only modules of `analysis` that touch the file system.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from analysis.errors import InputError
from runformat.layout import (
    ARRIVALS_KIND,
    COMPLETE_MARKER,
    CSV_PREFIX,
    LLM_STATS_SUFFIX,
    METADATA_FILE,
    RecordKind,
    workers_file,
)
from runformat.records import CLIENT_SCHEMA, DROP_SCHEMA, REQUEST_SCHEMA, TOKEN_SCHEMA

__all__ = [
    "ANALYSIS_REQUEST_COLUMNS",
    "REQUEST_COLUMNS",
    "REQUEST_SCHEMA",
    "CellFiles",
    "default_report_dir",
    "find_cells",
    "read_arrivals",
    "read_client_health",
    "read_delivery",
    "read_drops",
    "read_locust_history",
    "read_locust_stats",
    "read_requests",
    "read_server_metrics",
    "read_tokens",
]

# The per-request log's columns and types come from the run-format contract. A value that does not parse
# as its type rejects the file, naming row and column; "flag" accepts exactly what the writer writes.
REQUEST_COLUMNS = list(REQUEST_SCHEMA)
_REQUIRED_REQUEST_COLUMNS = [
    "request_id",
    "start_wall_s",
    "ttft_ms",
    "e2e_ms",
    "tpot_ms",
    "prompt_tokens",
    "output_tokens",
    "success",
]
# What the reductions and plots use; the other columns of a request log are not converted.
ANALYSIS_REQUEST_COLUMNS = [
    *_REQUIRED_REQUEST_COLUMNS,
    "target_label",
    "workload",
    "max_new_tokens",
    "http_status",
    "error",
    "tokens_source",
    "scheduled_wall_s",
    "schedule_lag_ms",
]
_LOCUST_STATS_COLUMNS = ["Type", "Name", "Request Count", "Failure Count", "Average Content Size", "95%"]
_LOCUST_STATS_SUFFIX = "_stats.csv"
_LLM_STATS_INFIX = LLM_STATS_SUFFIX[: -len(_LOCUST_STATS_SUFFIX)]  # "_llm": PREFIX_llm + "_stats.csv"
_TOKENS_SCHEMA = TOKEN_SCHEMA
_DROPS_SCHEMA = DROP_SCHEMA
_ARROW_TYPES = {"text": pa.string(), "number": pa.float64(), "integer": pa.int64(), "flag": pa.bool_()}
_EXPECTED = {"number": "a number", "integer": "a whole number", "flag": "0 or 1"}
_NOT_EMPTY = frozenset(("flag",))


@dataclass
class CellFiles:
    """One grid cell (or one plain Locust run): its CSV prefix and whatever metadata it has."""

    prefix: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.prefix.parent

    @property
    def complete(self) -> bool:
        """True for plain Locust prefixes and for grid cells whose completion marker exists."""
        if not self.metadata:
            return True
        return (self.directory / COMPLETE_MARKER).exists()

    def files(self, kind: str) -> list[Path]:
        """Per-process files of one kind (`requests`, `tokens`, `client`), found by glob."""
        return sorted(self.prefix.parent.glob(f"{self.prefix.name}_{kind}_*.csv"))


def find_cells(path: Path, allow_empty: bool = False) -> list[CellFiles]:
    """Every cell under a run directory, or the single run a Locust `--csv` prefix names. A directory
    without any is an error unless `allow_empty` (a run that holds only a quality pass)."""
    if path.is_dir():
        # dot-folders hold replaced attempts and other scratch, never a cell
        metas = sorted(m for m in path.rglob(METADATA_FILE) if not _hidden(m.relative_to(path)))
        if metas:
            return [_cell_from_metadata(meta) for meta in metas]
        prefixes = _plain_prefixes(path)
        if not prefixes and not allow_empty:
            raise InputError(
                f"{path}: no runs found (expected grid cells with {METADATA_FILE}, "
                "or Locust CSVs named PREFIX_stats.csv / PREFIX_requests_*.csv)"
            )
        return [CellFiles(prefix=p) for p in prefixes]
    prefix = path
    if not (Path(f"{prefix}_stats.csv").exists() or CellFiles(prefix=prefix).files("requests")):
        raise InputError(
            f"{path}: not a directory and not a Locust CSV prefix "
            f"(neither {prefix}_stats.csv nor {prefix}_requests_*.csv exists)"
        )
    return [CellFiles(prefix=prefix)]


def _plain_prefixes(path: Path) -> list[Path]:
    """The `--csv` prefixes of plain Locust runs under a folder. Our locustfile's PREFIX_llm_stats.csv also
    ends in `_stats.csv`; beside its own run's files it names no run of its own."""
    found = {p.with_name(p.name[: -len(_LOCUST_STATS_SUFFIX)]) for p in path.rglob(f"*{_LOCUST_STATS_SUFFIX}")}
    found |= {p.with_name(p.name.split("_requests_")[0]) for p in path.rglob("*_requests_*.csv")}
    ours = {
        p for p in found if p.name.endswith(_LLM_STATS_INFIX) and p.with_name(p.name[: -len(_LLM_STATS_INFIX)]) in found
    }
    return sorted(found - ours)


def default_report_dir(path: Path) -> Path:
    """RUN/report for a run directory; PREFIX_report beside a Locust CSV prefix (a PREFIX/ folder would
    turn the prefix into a directory without runs)."""
    return path / "report" if path.is_dir() else Path(f"{path}_report")


def _hidden(relpath: Path) -> bool:
    return any(part.startswith(".") for part in relpath.parts)


def _cell_from_metadata(meta_path: Path) -> CellFiles:
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_path}: unreadable cell metadata ({exc})") from exc
    if not isinstance(metadata, dict):
        raise InputError(f"{meta_path}: expected a JSON object")
    return CellFiles(prefix=meta_path.parent / str(metadata.get("csv_prefix", CSV_PREFIX)), metadata=metadata)


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


def _valid(kind: str, value: str) -> bool:
    if value == "":
        return kind not in _NOT_EMPTY
    try:
        if kind == "flag":
            return value in ("0", "1")
        if kind == "integer":
            int(value)
        elif kind == "number":
            float(value)
    except ValueError:
        return False
    return True


def _first_bad_value(path: Path, schema: dict[str, str], columns: list[str] | None) -> str | None:
    """Where a file breaks its schema: 'row R (line L), column C: V is not ...' (slow; only on failure)."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        checked = [
            (i, name, schema[name])
            for i, name in enumerate(header)
            if name in schema and (columns is None or name in columns)
        ]
        for row, values in enumerate(reader, start=1):
            for i, name, kind in checked:
                value = values[i] if i < len(values) else ""
                if not _valid(kind, value):
                    shown = repr(value) if value else "an empty value"
                    return f"row {row} (line {row + 1}), column {name!r}: {shown} is not {_EXPECTED[kind]}"
    return None


def _read_csv(path: Path, schema: dict[str, str] | None, columns: list[str] | None = None) -> pd.DataFrame:
    # pyarrow's reader directly, then one conversion: about twice as fast as pd.read_csv(engine="pyarrow")
    if path.stat().st_size == 0:
        return pd.DataFrame()
    types = {col: _ARROW_TYPES[kind] for col, kind in (schema or {}).items()}
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False, true_values=["1"], false_values=["0"])
    if columns is not None:  # converting only the columns analysis uses saves a third of a large log's read
        options.include_columns = [c for c in _header(path) if c in columns]
    table = pacsv.read_csv(path, convert_options=options)
    for name, kind in (schema or {}).items():
        if kind in _NOT_EMPTY and name in table.column_names and table[name].null_count:
            raise ValueError("empty value in a column that may not be empty")
    frame = table.to_pandas()
    for col, kind in (schema or {}).items():
        if kind == "text" and col in frame.columns:
            frame[col] = frame[col].astype("string")
    return frame


def _read_csvs(
    paths: list[Path], schema: dict[str, str] | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    frames = []
    for p in paths:
        try:
            frame = _read_csv(p, schema, columns)
        except Exception as exc:  # pyarrow raises its own types for malformed files
            where = _first_bad_value(p, schema, columns) if schema else None
            raise InputError(f"{p}: {where}" if where else f"{p}: unreadable CSV ({exc})") from exc
        if not frame.empty or len(frame.columns):
            frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def read_requests(cell: CellFiles) -> pd.DataFrame:
    """All processes' request logs of a cell, concatenated; empty frame when there are none."""
    paths = cell.files("requests")
    df = _read_csvs(paths, REQUEST_SCHEMA, columns=ANALYSIS_REQUEST_COLUMNS)
    if df.empty:
        return df
    missing = [c for c in _REQUIRED_REQUEST_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"{paths[0]}: request log lacks column(s) {', '.join(missing)}; expected {', '.join(REQUEST_COLUMNS)}"
        )
    df["success"] = df["success"].astype(bool)
    return df


def read_tokens(cell: CellFiles) -> pd.DataFrame:
    """Token-arrival traces: request_id, arrivals_ms (space-separated), counts (space-separated or empty)."""
    df = _read_csvs(cell.files("tokens"), _TOKENS_SCHEMA)
    if df.empty:
        return pd.DataFrame(columns=["request_id", "arrivals_ms", "counts"])
    return df


def read_drops(cell: CellFiles) -> pd.DataFrame:
    """Open loop: the scheduled wall time of every dropped arrival, all processes."""
    df = _read_csvs(cell.files(RecordKind.DROPS), _DROPS_SCHEMA)
    return df if not df.empty else pd.DataFrame({"scheduled_wall_s": pd.Series(dtype=float)})


def read_arrivals(cell: CellFiles) -> list[dict[str, Any]]:
    """Open loop: each process's dispatcher summary (PREFIX_arrivals_<process>.json); [] for a closed loop."""
    out = []
    for path in sorted(cell.prefix.parent.glob(f"{cell.prefix.name}_{ARRIVALS_KIND}_*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: unreadable arrival summary ({exc})") from exc
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object")
        out.append(data)
    return out


def read_delivery(cell: CellFiles) -> dict[str, Any]:
    """A distributed run's record delivery: the master's PREFIX_workers.json, else the copy a grid cell's
    metadata keeps (`record_delivery`); {} for a run that was not distributed."""
    path = workers_file(cell.prefix)
    if not path.exists():
        delivery = cell.metadata.get("record_delivery")
        return delivery if isinstance(delivery, dict) else {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable record delivery ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("workers"), list):
        raise InputError(f"{path}: expected a JSON object with a 'workers' list")
    return data


def read_client_health(cell: CellFiles) -> pd.DataFrame:
    paths = cell.files("client")
    frames = []
    for p in paths:
        df = _read_csvs([p], CLIENT_SCHEMA)
        if not df.empty:
            frames.append(df.assign(process=p.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_server_metrics(cell: CellFiles) -> pd.DataFrame:
    return _read_csvs([p for p in [cell.directory / "server_metrics.csv"] if p.exists()])


def read_locust_stats(cell: CellFiles) -> pd.DataFrame:
    """Locust's `PREFIX_stats.csv`; raises naming the file and the missing columns."""
    path = Path(f"{cell.prefix}_stats.csv")
    if not path.exists():
        return pd.DataFrame()
    df = _read_csvs([path])
    if df.empty:
        return pd.DataFrame()  # a header only: Locust stopped before any request was counted — no data
    missing = [c for c in _LOCUST_STATS_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: Locust stats CSV lacks column(s) {', '.join(missing)}")
    for col in ("Request Count", "Failure Count", "Average Content Size"):
        if df[col].isna().any():
            raise InputError(f"{path}: column {col!r} has empty/NaN values; expected a number in every row")
    return df


def read_locust_history(cell: CellFiles) -> pd.DataFrame:
    path = Path(f"{cell.prefix}_stats_history.csv")
    return _read_csvs([path]) if path.exists() else pd.DataFrame()
