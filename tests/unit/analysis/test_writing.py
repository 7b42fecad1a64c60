"""CSV output: $/1M figures keep their significant digits; other floats keep 3 decimals."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd

from analysis.writing import cost_text, write_csv_atomic


def test_small_costs_keep_three_significant_digits_and_other_floats_three_decimals(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "usd_per_1m_tokens": [0.000123456, 0.3906, 1234.5, math.nan, 0.0],
            "quality_adjusted_usd_per_1m_tokens": [0.0581234, 2.0, 0.00995, 1.0, 1.0],
            "throughput_tok_s": [1.23456, 2.0, 3.0, 4.0, 5.0],
        }
    )
    path = write_csv_atomic(tmp_path / "cost.csv", frame)
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    assert [r["usd_per_1m_tokens"] for r in rows] == ["0.000123", "0.391", "1234.500", "", "0.000"]
    assert [r["quality_adjusted_usd_per_1m_tokens"] for r in rows[:3]] == ["0.0581", "2.000", "0.00995"]
    assert rows[0]["throughput_tok_s"] == "1.235"
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed
    back = pd.read_csv(path)
    assert back["usd_per_1m_tokens"].dtype.kind == "f"  # still numbers for whoever reads the CSV


def test_cost_text_leaves_missing_and_infinite_values_alone() -> None:
    assert math.isnan(cost_text(math.nan))
    assert cost_text(math.inf) == math.inf
    assert cost_text(-0.0001234) == "-0.000123"
