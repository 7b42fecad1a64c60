"""One grid run loaded for analysis: its scenario's targets (in scenario order), cells and capacity table.

This is loading (file I/O); the reductions in `capacity`, `compare`, `cost`, `slo` and `roofline` are pure.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.adequacy import judge_adequacy
from analysis.capacity import CAPACITY_COLUMNS, SORT_COLUMNS, CellData, cell_row
from analysis.errors import InputError
from analysis.loading import find_cells, read_server_metrics
from analysis.quality import QualityRun, load_quality
from analysis.tables import iter_cells

__all__ = ["Run", "RunTarget", "load_run", "resolve_labels"]

_BASELINE = re.compile(r"bf16|fp16|baseline", re.IGNORECASE)
_CANDIDATE = re.compile(r"quant|awq|gptq|fp8|int8|int4|w4a16|w8a8|nf4|gguf", re.IGNORECASE)


@dataclass(frozen=True)
class RunTarget:
    """A target as the scenario (or, failing that, cell metadata) describes it."""

    label: str
    url: str | None = None
    hourly_price_usd: float | None = None
    gpu: str | None = None
    model: str | None = None


@dataclass
class Run:
    """Everything the reports need. `capacity` has CAPACITY_COLUMNS plus `cell` (the CellData name)."""

    path: Path
    scenario: str
    targets: list[RunTarget]
    cells: list[CellData]
    capacity: pd.DataFrame
    server_metrics: dict[str, pd.DataFrame] = field(default_factory=dict)
    quality: QualityRun | None = None  # the quality pass's outputs, when the run has one

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.targets]

    def target(self, label: str) -> RunTarget:
        for t in self.targets:
            if t.label == label:
                return t
        raise InputError(f"{self.path}: unknown target label {label!r}; known labels: {', '.join(self.labels)}")


def _scenario(path: Path) -> dict[str, Any]:
    file = path / "scenario.toml"
    if not file.is_file():
        return {}
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{file}: not valid TOML ({exc})") from exc


def _targets(scenario: dict[str, Any], cells: list[CellData], capacity: pd.DataFrame) -> list[RunTarget]:
    served = {c.metadata.get("target_label"): c.metadata.get("model") for c in cells if c.metadata.get("model")}
    targets: list[RunTarget] = []
    for t in scenario.get("targets", []):
        if isinstance(t, dict) and t.get("label"):
            label = str(t["label"])
            model = t.get("model") or served.get(label)
            targets.append(RunTarget(label, t.get("url"), t.get("hourly_price_usd"), t.get("gpu"), model))
    known = {t.label for t in targets}
    for cell in cells:  # metadata fills in targets a scenario file does not list (or when there is none)
        meta = cell.metadata
        label = str(meta.get("target_label") or "")
        if label and label not in known:
            targets.append(
                RunTarget(
                    label, meta.get("target_url"), meta.get("hourly_price_usd"), meta.get("gpu"), served.get(label)
                )
            )
            known.add(label)
    for label in capacity["target_label"].dropna().unique():
        if label not in known:
            targets.append(RunTarget(str(label)))
            known.add(str(label))
    return targets


def load_run(path: Path) -> Run:
    """Load a run directory (or a Locust CSV prefix); raises InputError naming what is missing."""
    if not path.exists() and not path.parent.exists():
        raise InputError(f"{path}: no such file or directory")
    quality = load_quality(path) if path.is_dir() else None
    found = find_cells(path, allow_empty=quality is not None)
    cells, rows = [], []
    for cell in iter_cells([path]) if found else ():
        rows.append({**cell_row(cell), "cell": cell.name})
        cell.tokens = cell.tokens.iloc[0:0]  # traces are only needed for the capacity row; free them
        cells.append(cell)
    capacity = pd.DataFrame(rows, columns=[*CAPACITY_COLUMNS, "cell"])
    capacity = capacity.sort_values(SORT_COLUMNS)
    capacity = judge_adequacy(capacity.reset_index(drop=True))
    server = {str(c.prefix): read_server_metrics(c) for c in found}
    scenario = _scenario(path) if path.is_dir() else {}
    name = str(scenario.get("scenario", {}).get("name") or _metadata_scenario(cells) or path.name)
    return Run(path, name, _targets(scenario, cells, capacity), cells, capacity, server, quality)


def _metadata_scenario(cells: list[CellData]) -> str | None:
    for cell in cells:
        if cell.metadata.get("scenario"):
            return str(cell.metadata["scenario"])
    return None


def resolve_labels(run: Run, baseline: str | None, candidate: str | None) -> tuple[str, str]:
    """Flags first; else a BF16-ish label is the baseline and a QUANT/AWQ/FP8/INT-ish one the candidate;
    else the first two targets in scenario order. Unknown labels raise, listing the known ones."""
    for label in (baseline, candidate):
        if label is not None:
            run.target(label)
    labels = run.labels
    if baseline is None:
        others = [lb for lb in labels if lb != candidate]
        bf16 = [lb for lb in others if _BASELINE.search(lb) and not _CANDIDATE.search(lb)]
        baseline = bf16[0] if bf16 else (others[0] if others else None)
    if candidate is None:
        others = [lb for lb in labels if lb != baseline]
        quant = [lb for lb in others if _CANDIDATE.search(lb)]
        candidate = quant[0] if quant else (others[0] if others else None)
    if baseline is None or candidate is None or baseline == candidate:
        raise InputError(
            f"{run.path}: need two different targets to compare; known labels: {', '.join(labels) or '(none)'}"
        )
    return baseline, candidate
