"""The run's own record (RUN/run.json): the target URLs it measured, every override given on resume, and the
grid flags (--duration, --warmup, --users, --spawn-rate) that replaced scenario settings.

`scenario.toml` keeps the scenario as written; a `--target-url` given when the run started (or on a resume)
is recorded here, so a resume measures the servers the run measured unless told otherwise, and says so.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runformat.atomic import write_json_atomic
from runformat.layout import METADATA_FILE, RUN_RECORD

__all__ = [
    "RUN_RECORD",
    "record_grid_overrides",
    "record_target_urls",
    "recorded_grid_overrides",
    "recorded_target_urls",
]


def _read(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_target_urls(run_dir: Path) -> dict[str, str]:
    """Label → URL the run last measured: from run.json, else (older runs) from the cells' metadata."""
    urls = _read(run_dir).get("target_urls")
    if isinstance(urls, dict):
        return {str(k): str(v) for k, v in urls.items()}
    latest: dict[str, tuple[str, str]] = {}
    for meta_path in run_dir.rglob(METADATA_FILE):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        label, url, started = meta.get("target_label"), meta.get("target_url"), str(meta.get("started_at", ""))
        if isinstance(label, str) and isinstance(url, str) and started >= latest.get(label, ("", ""))[0]:
            latest[label] = (started, url)
    return {label: url for label, (_, url) in latest.items()}


def record_target_urls(run_dir: Path, urls: dict[str, str], overrides: dict[str, str]) -> None:
    """Record the URLs in use now; `overrides` (the --target-url flags of this invocation) are appended."""
    record = _read(run_dir)
    record["target_urls"] = urls
    if overrides:
        history = record.get("target_url_overrides") or []
        history.append({"at": datetime.now(UTC).isoformat(), "urls": overrides})
        record["target_url_overrides"] = history
    write_json_atomic(run_dir / RUN_RECORD, record)


def recorded_grid_overrides(run_dir: Path) -> dict[str, Any]:
    """The scenario settings the run's grid flags replaced (scenario key → value); {} when none."""
    overrides = _read(run_dir).get("grid_overrides")
    return dict(overrides) if isinstance(overrides, dict) else {}


def record_grid_overrides(run_dir: Path, overrides: dict[str, Any]) -> None:
    """Record the grid flags in force, so a resume runs the remaining cells as the run began them."""
    record = _read(run_dir)
    if overrides:
        record["grid_overrides"] = overrides
    else:
        record.pop("grid_overrides", None)
    write_json_atomic(run_dir / RUN_RECORD, record)
