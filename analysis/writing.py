"""Atomic file output for analysis: the contract's text/JSON writers, and CSV from a DataFrame."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from runformat.atomic import write_json_atomic, write_text_atomic

__all__ = ["cost_text", "write_csv_atomic", "write_json_atomic", "write_text_atomic"]


_DECIMALS = 3
_COST_DIGITS = 3  # significant digits of a $/1M figure, as the CLI prints it


def cost_text(value: Any) -> Any:
    """A $/1M figure for CSV: at least 3 decimals and at least 3 significant digits, so a cheap cell's
    $0.000123/1M is not written as 0.000 (missing values stay missing)."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return value
    magnitude = math.floor(math.log10(abs(value))) if value else 0
    decimals = max(_DECIMALS, _COST_DIGITS - 1 - magnitude)
    return f"{value:.{decimals}f}"


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> Path:
    """Floats to 3 decimals, $/1M columns (names holding `usd_per_1m`) to 3 significant digits or more."""
    costs = {c: frame[c].map(cost_text) for c in frame.columns if "usd_per_1m" in str(c) and frame[c].dtype.kind == "f"}
    return write_text_atomic(path, frame.assign(**costs).to_csv(index=False, float_format=f"%.{_DECIMALS}f"))
