"""The run directory: names of its files and folders, and how cells are named.

<runs>/<scenario>-<UTC stamp>/            RUN_RECORD, SCENARIO_FILE, RUN_LOCK while a grid holds it
    <target>/<workload>/<cell>/           METADATA_FILE, COMPLETE_MARKER (written last)
        <CSV_PREFIX>_stats.csv ...        Locust's own CSVs and HTML report
        <CSV_PREFIX>_llm_stats.csv        the LLM tab's table (LLM_STATS_SUFFIX)
        <CSV_PREFIX>_<kind>_<host>-<pid>.csv  our records, one file per process and kind (RecordKind)
        SERVER_METRICS_FILE               the target's /metrics, one row per second
    QUALITY_DIR/<target>.jsonl, QUALITY_MANIFEST (written last)
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

__all__ = [
    "ARRIVALS_KIND",
    "COMPLETE_MARKER",
    "CSV_PREFIX",
    "LLM_STATS_SUFFIX",
    "METADATA_FILE",
    "QUALITY_DIR",
    "QUALITY_MANIFEST",
    "REPLACED_DIR",
    "RUN_LOCK",
    "RUN_RECORD",
    "SCENARIO_FILE",
    "SERVER_METRICS_FILE",
    "STOP_SUFFIX",
    "WORKERS_SUFFIX",
    "CellStatus",
    "RecordKind",
    "cell_dir_name",
    "cell_label",
    "llm_stats_file",
    "record_glob",
    "stop_file",
    "workers_file",
]

METADATA_FILE = "metadata.json"
COMPLETE_MARKER = "COMPLETE"
CSV_PREFIX = "locust"
SERVER_METRICS_FILE = "server_metrics.csv"
SCENARIO_FILE = "scenario.toml"
RUN_RECORD = "run.json"
RUN_LOCK = "RUN_LOCK"
REPLACED_DIR = ".replaced"  # an earlier attempt's cell, moved aside in one rename before it is deleted
QUALITY_DIR = "quality"
QUALITY_MANIFEST = "manifest.json"
STOP_SUFFIX = "_stop.json"  # PREFIX_stop.json: why a --until-ci run stopped
LLM_STATS_SUFFIX = "_llm_stats.csv"  # PREFIX_llm_stats.csv: the LLM tab's table, rewritten during a run
WORKERS_SUFFIX = "_workers.json"  # PREFIX_workers.json: a distributed run's workers and record delivery
ARRIVALS_KIND = "arrivals"  # open loop: PREFIX_arrivals_<host>-<pid>.json, each process's dispatcher summary


class RecordKind(StrEnum):
    """Per-process record files: PREFIX_<kind>_<host>-<pid>.csv."""

    REQUESTS = "requests"
    TOKENS = "tokens"
    CLIENT = "client"
    EMIT_LAG = "emitlag"
    DROPS = "drops"  # open loop: arrivals that found every user busy


class CellStatus(StrEnum):
    """A cell's `status` in its metadata (and the grid's result for it)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    UNFINISHED = "unfinished"  # analysis: a grid cell without its COMPLETE marker


def stop_file(prefix: str | Path) -> Path:
    """PREFIX_stop.json: why a --until-ci run stopped (next to the request log)."""
    return Path(f"{prefix}{STOP_SUFFIX}")


def llm_stats_file(prefix: str | Path) -> Path:
    """PREFIX_llm_stats.csv: the load generator's LLM statistics (not Locust's PREFIX_stats.csv)."""
    return Path(f"{prefix}{LLM_STATS_SUFFIX}")


def workers_file(prefix: str | Path) -> Path:
    """PREFIX_workers.json: written by a distributed run's master (who ran, what arrived, what was lost)."""
    return Path(f"{prefix}{WORKERS_SUFFIX}")


def record_glob(prefix: Path, kind: RecordKind) -> str:
    """Glob (relative to the prefix's folder) of every process's file of one kind."""
    return f"{prefix.name}_{kind.value}_*.csv"


def cell_dir_name(
    users: int,
    max_new_tokens: int,
    repeat: int = 0,
    repeats: int = 1,
    rate: float | None = None,
    pools: int = 1,
) -> str:
    """c<users>_m<tokens>[_r<repeat>]: the cell's folder under <target>/<workload>/. An open-loop cell is
    r<rate>_m<tokens> (r<rate>_c<users>_m<tokens> when its scenario tries several pools)."""
    load = f"c{users}"
    if rate is not None:
        load = f"r{rate:g}" + (f"_c{users}" if pools > 1 else "")
    return f"{load}_m{max_new_tokens}" + (f"_r{repeat}" if repeats > 1 else "")


def cell_label(target: object, workload: object, users: object, max_new_tokens: object, repeat: object = 0) -> str:
    """How people read a cell: 'BF16 · batch c32 m256' (+ ' r1' for a later repeat)."""
    label = f"{target} · {workload} c{users} m{max_new_tokens}"
    return label + (f" r{repeat}" if repeat else "")
