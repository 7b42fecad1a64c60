"""Capacity under SLO: `RUN/search.json` (the search's probes) reduced to `capacity_search.csv`, priced at
capacity, with one knee plot per search line and the sentences the decision summary leads with.

`capacity_search_table`, `knee_plots` and `summary_lines` are pure; `load_search` reads the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import plots
from analysis.capacity import CellData, cell_row
from analysis.charts import Chart, Kind, Panel, Series, color, numbers
from analysis.cost import COST_FORMULA
from analysis.errors import InputError
from analysis.slojudge import goodput_req_s, judge_row
from analysis.tablelayout import COLUMN_TITLES
from analysis.textformat import significant
from runformat.search import CAPACITY_SEARCH_COLUMNS, CAPACITY_SEARCH_CSV, SEARCH_FILE, parse_slo

__all__ = [
    "capacity_search_table",
    "knee_plots",
    "load_search",
    "search_context",
    "summary_lines",
    "write_capacity_search",
]


def load_search(run_dir: Path) -> dict[str, Any] | None:
    """The run's search record, or None for a run without a capacity search."""
    path = run_dir / SEARCH_FILE
    if not run_dir.is_dir() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable search record ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("lines"), list):
        raise InputError(f"{path}: expected an object with a 'lines' list")
    return data


def _fmt(load: Any) -> str:
    return "" if load is None else f"{float(load):g}"


def _cell_of(line: dict[str, Any], load: Any) -> str | None:
    for probe in reversed(line.get("probes", [])):
        if probe.get("load") == load:
            return str(probe.get("cell"))
    return None


def capacity_search_table(
    search: dict[str, Any], run_dir: Path, cells: list[CellData], prices: pd.DataFrame, utilization: float = 1.0
) -> pd.DataFrame:
    """One row per search line: capacity, its bracket, the binding SLO, throughput, goodput and $/1M tokens
    at capacity (COST_FORMULA with the run's prices), probes used and wall time."""
    slos = [parse_slo(s) for s in search.get("slos", [])]
    by_dir = {Path(c.name).parent.resolve(): c for c in cells}
    price = prices.set_index("target_label") if len(prices) else pd.DataFrame()
    rows = []
    for line in search["lines"]:
        result = line.get("result") or {}
        label = line["target_label"]
        row: dict[str, Any] = {c: math.nan for c in CAPACITY_SEARCH_COLUMNS}
        row.update(
            target_label=label,
            workload=line["workload"],
            max_new_tokens=line["max_new_tokens"],
            over=search.get("over", "concurrency"),
            capacity=result.get("capacity"),
            passing_load=result.get("passing_load"),
            failing_load=result.get("failing_load"),
            binding_slo=result.get("binding", ""),
            stop_reason=result.get("stop_reason", "unfinished: resume the search"),
            probes=len(line.get("probes", [])),
            probe_loads=" ".join(
                f"{_fmt(p['load'])}{'' if p['attempt'] == 1 else '#' + str(p['attempt'])}:{p['outcome']}"
                for p in line.get("probes", [])
            ),
            wall_s=round(sum(float(p.get("wall_s") or 0.0) for p in line.get("probes", [])), 1),
            slos=" ".join(s.text for s in slos),
        )
        if label in price.index:
            row.update(
                hourly_price_usd=price.at[label, "hourly_price_usd"], price_source=price.at[label, "price_source"]
            )
        cell_rel = _cell_of(line, result.get("capacity")) if result.get("capacity") is not None else None
        cell = by_dir.get((run_dir / cell_rel).resolve()) if cell_rel else None
        if cell is not None:
            measured = cell_row(cell)
            tok_s = float(measured["throughput_tok_s"])
            row.update(
                capacity_cell=cell_rel,
                throughput_tok_s=tok_s,
                req_per_s=measured["req_per_s"],
                goodput_req_s=goodput_req_s(cell, slos),
            )
            per_hour = tok_s * 3600.0 * utilization
            if per_hour > 0:
                row["usd_per_1m_tokens"] = float(row["hourly_price_usd"]) / per_hour * 1_000_000.0
        rows.append(row)
    return pd.DataFrame(rows, columns=CAPACITY_SEARCH_COLUMNS)


def summary_lines(table: pd.DataFrame, unit: str = "users") -> list[str]:
    """'RTX2000-16GB-QUANT holds 41 users [41, 44) at ttft_p95_ms<=1500 ... (binding: ...); $/1M at capacity …'."""
    out = []
    for r in table.to_dict("records"):
        where = f"{r['target_label']} ({r['workload']}, {int(r['max_new_tokens'])} tokens)"
        if r["capacity"] is None or (isinstance(r["capacity"], float) and math.isnan(r["capacity"])):
            out.append(f"{where}: no capacity under {r['slos']} — {r['stop_reason']}.")
            continue
        upper = "" if _missing(r["failing_load"]) else f", fails at {_fmt(r['failing_load'])}"
        usd = r["usd_per_1m_tokens"]
        cost = "" if _missing(usd) else f"; at capacity ${significant(float(usd))}/1M tokens"
        speed = "" if _missing(r["throughput_tok_s"]) else f" ({r['throughput_tok_s']:,.0f} tok/s"
        speed += "" if _missing(r["goodput_req_s"]) else f", goodput {r['goodput_req_s']:.2f} req/s)"
        out.append(
            f"{where} holds {_fmt(r['capacity'])} {unit}{upper} under {r['slos']} "
            f"(binding: {r['binding_slo'] or '—'}){speed}{cost}; {r['stop_reason']}."
        )
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def knee_plots(search: dict[str, Any], run_dir: Path, cells: list[CellData]) -> list[plots.Plot]:
    """Per search line: throughput and the binding SLO's metric (95% CI bars) vs load, the SLO bound and the
    capacity marker."""
    slos = {s.text: s for s in (parse_slo(t) for t in search.get("slos", []))}
    by_dir = {Path(c.name).parent.resolve(): c for c in cells}
    unit = "users" if search.get("over", "concurrency") == "concurrency" else "req/s"
    out = []
    for line in search["lines"]:
        points = []
        for probe in line.get("probes", []):
            cell = by_dir.get((run_dir / str(probe.get("cell"))).resolve())
            if cell is not None:
                points.append((float(probe["load"]), probe["attempt"], cell))
        latest = {load: cell for load, _, cell in sorted(points, key=lambda p: (p[0], p[1]))}
        if not latest:
            continue
        result = line.get("result") or {}
        binding = str(result.get("binding", "")).split(" ")[0]
        slo = slos.get(binding) or next(iter(slos.values()), None)
        out.append(_knee_plot(line, latest, slo, result, unit))
    return out


def _knee_plot(
    line: dict[str, Any], latest: dict[float, CellData], slo: Any, result: dict[str, Any], unit: str
) -> plots.Plot:
    loads = sorted(latest)
    rows = [cell_row(latest[x]) for x in loads]
    judged = [judge_row(r, [slo]) for r in rows] if slo is not None else []
    throughput = numbers(r["throughput_tok_s"] for r in rows)
    series = [Series("throughput (tok/s)", Kind.LINE, color(0), loads, throughput, marker="o")]
    y2 = ""
    with plots._style():
        fig, (ax,) = plots._figure(1)
        ax.plot(loads, throughput, "o-", color="C0", label="throughput (tok/s)")
        ax.set(xlabel=f"load ({unit})", ylabel="output tok/s")
        ax.set_ylim(bottom=0)
        if slo is not None:
            right = ax.twinx()
            value = np.array([j.checks[0].value for j in judged], dtype=float)
            low = np.array([j.checks[0].low for j in judged], dtype=float)
            high = np.array([j.checks[0].high for j in judged], dtype=float)
            yerr = np.vstack([np.nan_to_num(value - low), np.nan_to_num(high - value)])
            metric = COLUMN_TITLES.get(slo.metric, slo.metric)  # "p95 latency (ms)", not the column name
            right.errorbar(loads, value, yerr=yerr, fmt="s--", color="C3", capsize=3, label=metric)
            right.axhline(slo.bound, color="C3", lw=1, ls=":", label=f"SLO {slo.short}")
            y2 = metric
            series.append(
                Series(
                    metric,
                    Kind.LINE,
                    color(3),
                    loads,
                    numbers(value),
                    numbers(low),
                    numbers(high),
                    marker="s",
                    dash=True,
                    right=True,
                )
            )
            series.append(Series(f"SLO {slo.short}", Kind.HLINE, color(3), y=[float(slo.bound)], dash=True, right=True))
            right.set(ylabel=metric)
            right.set_ylim(bottom=0)
            plots._legend(right, fontsize=8, loc="lower right")
        if result.get("capacity") is not None:
            ax.axvline(float(result["capacity"]), color="C2", lw=1.5, label=f"capacity {_fmt(result['capacity'])}")
            series.append(
                Series(f"capacity {_fmt(result['capacity'])}", Kind.VLINE, color(2), [float(result["capacity"])])
            )
        plots._legend(ax, fontsize=8, loc="upper left")
        title = f"{line['target_label']}: {line['workload']}, {line['max_new_tokens']} tokens"
        ax.set(title=title)
        uri = plots._render(fig)
    caption = (
        "Each point is a probe cell (the latest attempt at that load); bars: 95% CI of the SLO metric; "
        "dotted: the SLO bound; green: the capacity found."
    )
    key = f"knee-{line['target_label']}-{line['workload']}-{line['max_new_tokens']}"
    chart = Chart([Panel(title, f"load ({unit})", "output tok/s", series, y2_label=y2)])
    return plots.Plot(key, title, uri, caption, chart)


def search_context(
    search: dict[str, Any] | None,
    run_dir: Path,
    cells: list[CellData],
    prices: pd.DataFrame,
    utilization: float,
    with_plots: bool = True,
) -> dict[str, Any] | None:
    """What the report's "Capacity under SLO" includes need; None without a search."""
    if search is None:
        return None
    table = capacity_search_table(search, run_dir, cells, prices, utilization)
    unit = "users" if search.get("over", "concurrency") == "concurrency" else "req/s"
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in table.to_dict("records")
    ]
    return {
        "table": table,
        "rows": records,
        "lines": summary_lines(table, unit),
        "plots": knee_plots(search, run_dir, cells) if with_plots else [],
        "unit": unit,
        "slos": [parse_slo(s).short for s in search.get("slos", [])],
        "resolution": search.get("plan", {}),
        "cost_formula": COST_FORMULA,
    }


def write_capacity_search(run_dir: Path, utilization: float = 1.0) -> Path:
    """RUN/capacity_search.csv from RUN/search.json, priced from the scenario or the catalog."""
    from analysis.catalog import load_catalog
    from analysis.cost import resolve_prices
    from analysis.run import load_run
    from analysis.writing import write_csv_atomic

    search = load_search(run_dir)
    if search is None:
        raise InputError(f"{run_dir}: no {SEARCH_FILE} (not a capacity-search run)")
    run = load_run(run_dir)
    prices = resolve_prices(run.targets, load_catalog(None), {})
    table = capacity_search_table(search, run_dir, run.cells, prices, utilization)
    return write_csv_atomic(run_dir / CAPACITY_SEARCH_CSV, table)
