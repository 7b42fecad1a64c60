"""The data behind the report's interactive plots: panels of series, embedded as JSON in index.html.

`templates/charts.js` draws them as SVG (hover for values, click a legend entry to hide a series). The same
figures are also rendered statically by `plots`; nothing here draws or touches files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from matplotlib.colors import to_hex

__all__ = ["Chart", "Kind", "Panel", "Series", "chart_json", "color"]

# 6 significant digits: a tooltip's value agrees with the CSV's to 1e-5, and a 400-point CDF stays small
_DIGITS = 6


class Kind(StrEnum):
    """How a series is drawn: `line` (with optional markers and error bars), `points` (markers only),
    `bar` (one per category, grouped), `band` (a shaded x-range), `hline`/`vline` (a reference line)."""

    LINE = "line"
    POINTS = "points"
    BAR = "bar"
    BAND = "band"
    HLINE = "hline"
    VLINE = "vline"


@dataclass(frozen=True)
class Series:
    """One legend entry. `x`/`y` are the points (a category name for bars); `lo`/`hi` the ends of the error
    bar drawn at each point, named `err_label` in the tooltip; `hollow` marks inadequate cells."""

    name: str
    kind: Kind
    color: str
    x: list[Any] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    lo: list[float] | None = None
    hi: list[float] | None = None
    err_label: str = "95% CI"
    hollow: list[bool] | None = None
    marker: str = ""  # "o", "s", "x" or "" for none
    dash: bool = False
    right: bool = False  # drawn against the panel's right-hand axis


@dataclass(frozen=True)
class Panel:
    """One set of axes. `categories` makes the x-axis categorical (bars); `x_ticks` pins numeric ticks (the
    tested concurrencies); limits left None are taken from the data, y-axes starting at 0."""

    title: str
    x_label: str
    y_label: str
    series: list[Series]
    y2_label: str = ""
    categories: list[str] | None = None
    x_ticks: list[float] | None = None
    x_min: float | None = None
    x_max: float | None = None
    y_max: float | None = None
    y2_max: float | None = None


@dataclass(frozen=True)
class Chart:
    panels: list[Panel]


def color(index: int) -> str:
    """Matplotlib's default cycle (`C0`, `C1`, …) as hex, so both renderings agree."""
    return to_hex(f"C{index % 10}")


def numbers(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values]


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN/inf → null (JSON has neither), floats to 6 significant digits, numpy → Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    if isinstance(value, int):
        return value
    number = float(value)
    if not math.isfinite(number):
        return None
    return float(f"{number:.{_DIGITS}g}")


def chart_json(chart: Chart) -> str:
    """The chart as JSON safe to place inside <script type="application/json">: `<`, `>` and `&` are written
    as \\u escapes, so a label holding `</script>` cannot end the element; NaN becomes null."""
    text = json.dumps(_clean(asdict(chart)), separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def errors(values: Sequence[float], half_widths: Sequence[float]) -> tuple[list[float], list[float]]:
    """Error-bar ends from estimates and CI half-widths (NaN half-width → no bar)."""
    lo = [v - h if math.isfinite(h) else math.nan for v, h in zip(values, half_widths, strict=True)]
    hi = [v + h if math.isfinite(h) else math.nan for v, h in zip(values, half_widths, strict=True)]
    return lo, hi
