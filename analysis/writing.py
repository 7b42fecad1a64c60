"""Atomic file output for analysis: the contract's text/JSON writers, and CSV from a DataFrame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from runformat.atomic import write_json_atomic, write_text_atomic

__all__ = ["write_csv_atomic", "write_json_atomic", "write_text_atomic"]


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> Path:
    return write_text_atomic(path, frame.to_csv(index=False, float_format="%.3f"))
