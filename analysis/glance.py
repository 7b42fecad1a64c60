"""The report's "At a glance": one KPI card per target at the reference cells, before any detail.

Pure: tables in, plain dicts out. Every figure that has a 95% CI carries it as `value ± half-width` (one
run: the larger side of its interval, as the capacity table shows it; repeats: combined as the comparison
combines them), and a change vs the baseline is the comparison's own text: % change, its CI, the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from analysis.cost import Headline, headline_cell
from analysis.textformat import significant
from analysis.verdict import side_estimate

__all__ = ["KPI_METRICS", "half_width", "kpi_cards"]

# (metric, title, unit, digits): the figures every card shows per reference cell
KPI_METRICS = (
    ("throughput_tok_s", "Throughput", "tok/s", 1),
    ("p95_latency_ms", "p95 latency", "ms", 0),
    ("ttft_p95_ms", "TTFT p95", "ms", 0),
)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _num(value: Any, digits: int) -> str:
    return "—" if _missing(value) else f"{float(value):,.{digits}f}"


def half_width(row: Mapping[Any, Any], metric: str) -> float:
    """max(high − value, value − low) of a cell's 95% CI; NaN without one."""
    try:
        value, low, high = (float(row[k]) for k in (metric, f"{metric}_ci95_low", f"{metric}_ci95_high"))
    except (KeyError, TypeError, ValueError):
        return math.nan
    return max(high - value, value - low)


def _cell_rows(capacity: pd.DataFrame, label: str, workload: str, conc: int, tokens: int) -> pd.DataFrame:
    rows = capacity[
        (capacity["target_label"] == label)
        & (capacity["workload"] == workload)
        & (capacity["concurrency"] == conc)
        & (capacity["max_new_tokens"] == tokens)
    ]
    if "offered_rate_req_s" in rows:  # a closed-loop cell, not an open-loop one of the same pool
        closed = rows[rows["offered_rate_req_s"].isna()]
        rows = closed if len(closed) else rows
    return rows


def _figure(rows: pd.DataFrame, metric: str, title: str, unit: str, digits: int) -> dict[str, Any]:
    est = side_estimate(rows, metric)
    # one run: the larger side of its (percentile CIs: asymmetric) interval, as the capacity table shows it;
    # repeats: the combined estimate's, as the comparison computes it
    hw = half_width(rows.iloc[0].to_dict(), metric) if est.repeats == 1 else est.half_width
    return {
        "metric": metric,
        "title": title,
        "unit": unit,
        "value": _num(est.value, digits),
        "ci": None if _missing(hw) else _num(hw, digits),
        "repeats": est.repeats,
    }


def _compare_row(compare: pd.DataFrame, workload: str, conc: int, tokens: int) -> dict[str, Any]:
    if not len(compare):
        return {}
    rows = compare[
        (compare["workload"] == workload) & (compare["concurrency"] == conc) & (compare["max_new_tokens"] == tokens)
    ]
    return {str(k): v for k, v in rows.iloc[0].to_dict().items()} if len(rows) else {}


def _cell_kpis(
    h: Headline,
    cell: tuple[int, int],
    label: str,
    capacity: pd.DataFrame,
    cost: pd.DataFrame,
    compare: pd.DataFrame,
    is_candidate: bool,
) -> dict[str, Any]:
    conc, tokens = cell
    rows = _cell_rows(capacity, label, h.workload, conc, tokens)
    price = cost[
        (cost["target_label"] == label)
        & (cost["workload"] == h.workload)
        & (cost["concurrency"] == conc)
        & (cost["max_new_tokens"] == tokens)
    ]
    usd = float(price["usd_per_1m_tokens"].iloc[0]) if len(price) else math.nan
    est = side_estimate(rows, "throughput_tok_s")
    c = _compare_row(compare, h.workload, conc, tokens) if is_candidate else {}
    changes = [
        {"title": title, "text": c[f"{metric}_change"], "verdict": c.get(f"{metric}_verdict", "inconclusive")}
        for metric, title, _, _ in KPI_METRICS
        if isinstance(c.get(f"{metric}_change"), str)
    ]
    if c and not _missing(c.get("savings_pct")):
        low, high = c.get("savings_ci95_low_pct", math.nan), c.get("savings_ci95_high_pct", math.nan)
        ci = "" if _missing(low) or _missing(high) else f" [{float(low):+.1f}, {float(high):+.1f}]"
        changes.append(
            {
                "title": "$/1M savings",
                "text": f"{float(c['savings_pct']):+.1f}%{ci}, {c.get('savings_verdict', 'inconclusive')}",
                "verdict": c.get("savings_verdict", "inconclusive"),
            }
        )
    return {
        "title": h.title,
        "workload": h.workload,
        "concurrency": conc,
        "max_new_tokens": tokens,
        "exact": (conc, tokens) == (h.concurrency, h.max_new_tokens),
        "wanted": f"{h.concurrency}x{h.max_new_tokens}",
        "has_data": est.repeats > 0,
        "figures": [_figure(rows, *m) for m in KPI_METRICS],
        "usd_per_1m": "—" if _missing(usd) else significant(usd),
        "adequate": est.adequate,
        "why": est.why,
        "changes": changes,
    }


def _capacity_lines(search_rows: list[dict[str, Any]], label: str, unit: str) -> list[dict[str, Any]]:
    out = []
    for r in search_rows:
        if r["target_label"] != label:
            continue
        where = f"{r['workload']}, {int(r['max_new_tokens'])} tok"
        if _missing(r.get("capacity")):
            out.append({"where": where, "value": "none", "detail": f"under {r['slos']}: {r['stop_reason']}"})
            continue
        bracket = "" if _missing(r.get("failing_load")) else f"fails at {float(r['failing_load']):g}; "
        out.append(
            {
                "where": where,
                "value": f"{float(r['capacity']):g} {unit}",
                "detail": f"{bracket}under {r['slos']} (binding: {r.get('binding_slo') or '—'})",
            }
        )
    return out


def _quality_lines(summary: pd.DataFrame | None, label: str) -> list[dict[str, Any]]:
    if summary is None or not len(summary):
        return []
    rows = summary[summary["target_label"] == label]
    return [
        {
            "where": r["workload"]
            if _missing(r.get("max_new_tokens"))
            else f"{r['workload']}, {int(r['max_new_tokens'])} tok",
            "value": "—" if _missing(r.get("acceptance_rate")) else f"{float(r['acceptance_rate']) * 100:.1f}%",
            "prompts": int(r["prompts"]) if not _missing(r.get("prompts")) else 0,
        }
        for r in rows.to_dict("records")
    ]


def kpi_cards(
    capacity: pd.DataFrame,
    cost: pd.DataFrame,
    headlines: tuple[Headline, ...],
    compare: pd.DataFrame,
    baseline: str | None = None,
    candidate: str | None = None,
    names: tuple[str, str] = ("baseline", "candidate"),
    search: dict[str, Any] | None = None,
    quality_summary: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """One card per target (capacity order): capacity under SLO when a search ran, then per reference cell
    throughput, p95 and TTFT p95 with their 95% CIs, $/1M tokens and, for the candidate, the change vs the
    baseline with CI and verdict; then the quality pass's acceptance when there is one."""
    cells = [(h, headline_cell(cost, h)) for h in headlines]
    labels = list(dict.fromkeys(capacity["target_label"])) if len(capacity) else []
    if quality_summary is not None and len(quality_summary):
        labels += [x for x in dict.fromkeys(quality_summary["target_label"]) if x not in labels]
    cards = []
    for label in labels:
        role = "baseline" if label == baseline else "candidate" if label == candidate else ""
        cards.append(
            {
                "label": label,
                "role": role,
                "name": names[0] if role == "baseline" else names[1] if role == "candidate" else "",
                "baseline_name": names[0],
                "capacity": _capacity_lines(search["rows"], label, search["unit"]) if search else [],
                "cells": [
                    _cell_kpis(h, cell, label, capacity, cost, compare, role == "candidate")
                    for h, cell in cells
                    if cell is not None
                ],
                "quality": _quality_lines(quality_summary, label),
            }
        )
    return cards
