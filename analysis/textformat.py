"""How numbers read in the analysis commands' terminal tables: each kind of column with the precision its values
need ($/1M and request rates to three significant digits, shares as percentages); CSV output keeps them all."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

__all__ = ["PERCENT_COLUMNS", "significant", "terminal_table"]

# share columns (0..1) → decimals of the percentage shown
PERCENT_COLUMNS = {
    "slo_attainment": 1,
    "error_rate": 2,
    "prefix_cache_hit_rate": 1,
    "completion_sync_share": 1,
    "client_saturated_share": 1,
}
_SIGNIFICANT_DIGITS = 3


def significant(value: float, digits: int = _SIGNIFICANT_DIGITS) -> str:
    """`value` to `digits` significant digits in fixed notation: 0.0812, 0.243, 12.5, 1,234 (never 1.23e+03)."""
    if math.isnan(value):
        return "NaN"
    if value == 0 or math.isinf(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _significant_column(name: str) -> bool:
    if name.endswith("_pct"):  # a change or a savings share is a percentage already
        return False
    return "usd_per_1m" in name or "req_per_s" in name or "_req_s" in name


def _percent(decimals: int) -> Callable[[float], str]:
    return lambda v: "NaN" if math.isnan(v) else f"{v * 100:.{decimals}f}%"


def terminal_table(table: pd.DataFrame, digits: int = 1) -> str:
    """The table as text: $/1M and rates to 3 significant digits, shares as %, other numbers to `digits`."""
    shown = table.copy()
    for name in shown.columns:
        if not pd.api.types.is_float_dtype(shown[name]):
            continue
        if name in PERCENT_COLUMNS:
            shown[name] = shown[name].map(_percent(PERCENT_COLUMNS[name]))
        elif _significant_column(name):
            shown[name] = shown[name].map(significant)
    return shown.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}")
