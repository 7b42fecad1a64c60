"""The report's words: headline points, decision summary, hypotheses and warnings, computed from tables.

Pure: tables in, plain dicts and sentences out; templates only lay them out.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.cost import HEADLINES, headline_cell
from analysis.naming import comparison_slug

__all__ = ["decision_summary", "headline_points", "kind_names", "roofline_hint", "warnings"]

_ACRONYMS = {"awq", "gptq", "fp8", "int8", "int4", "nf4", "gguf", "bf16", "fp16", "w4a16", "w8a8"}


def kind_names(baseline: str, candidate: str) -> tuple[str, str]:
    """Short names for the two sides as the seed writes them: ('BF16', 'Quant')."""

    def pretty(slug: str) -> str:
        words = slug.split("_")
        return " ".join(w.upper() if w in _ACRONYMS or any(ch.isdigit() for ch in w) else w.capitalize() for w in words)

    cand, base = comparison_slug(baseline, candidate).split("_vs_")
    return pretty(base), pretty(cand)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def headline_points(cost: pd.DataFrame, compare: pd.DataFrame, baseline: str, candidate: str) -> list[dict[str, Any]]:
    """The seed's chat sweet spot and batch point (or the nearest tested cells), both sides side by side."""
    points = []
    for h in HEADLINES:
        cell = headline_cell(cost, h)
        if cell is None:
            continue
        conc, tokens = cell
        key = (cost["workload"] == h.workload) & (cost["concurrency"] == conc) & (cost["max_new_tokens"] == tokens)
        sides = {}
        for side, label in (("baseline", baseline), ("candidate", candidate)):
            row = cost[key & (cost["target_label"] == label)]
            sides[side] = row.iloc[0].to_dict() if not row.empty else {}
        cmp = (
            compare[(compare["workload"] == h.workload) & (compare["concurrency"] == conc)] if len(compare) else compare
        )
        cmp = cmp[cmp["max_new_tokens"] == tokens] if len(cmp) else cmp
        c = cmp.iloc[0].to_dict() if len(cmp) else {}
        b_usd, c_usd = (
            _num(sides["baseline"].get("usd_per_1m_tokens")),
            _num(sides["candidate"].get("usd_per_1m_tokens")),
        )
        points.append(
            {
                "title": h.title,
                "workload": h.workload,
                "concurrency": conc,
                "max_new_tokens": tokens,
                "exact": (conc, tokens) == (h.concurrency, h.max_new_tokens),
                "wanted": f"conc={h.concurrency}, max_new_tokens={h.max_new_tokens}",
                "baseline": sides["baseline"],
                "candidate": sides["candidate"],
                "savings_pct": (b_usd - c_usd) / b_usd * 100.0 if b_usd > 0 else math.nan,
                "throughput_change_pct": _num(c.get("throughput_tok_s_change_pct")),
                "p95_change_pct": _num(c.get("p95_latency_ms_change_pct")),
                "flags": c.get("flags", ""),
            }
        )
    return points


def _signed(v: float, unit: str = "%") -> str:
    return "n/a" if math.isnan(v) else f"{v:+.1f}{unit}"


def decision_summary(
    points: list[dict[str, Any]], compare: pd.DataFrame, slo: pd.DataFrame, names: tuple[str, str]
) -> list[str]:
    """3–6 sentences a reader can act on; every number names its cell."""
    base, cand = names
    lines = []
    for p in points:
        where = f"conc={p['concurrency']}, max_new_tokens={p['max_new_tokens']}"
        if not p["exact"]:
            where += f" (nearest tested to {p['wanted']})"
        lines.append(
            f"{p['title']} ({where}): {cand} changes throughput by {_signed(p['throughput_change_pct'])}, "
            f"p95 latency by {_signed(p['p95_change_pct'])} and $/1M tokens by {_signed(-p['savings_pct'])} vs {base}."
        )
    if len(compare):
        blowups = compare[compare["flags"].str.contains("p95 blow-up", na=False)]
        drops = compare[compare["flags"].str.contains("throughput regression", na=False)]
        for title, rows in (("p95 blow-up", blowups), ("throughput regression", drops)):
            if len(rows):
                cells = ", ".join(f"{r.workload} c{r.concurrency} m{r.max_new_tokens}" for r in rows.itertuples())
                lines.append(f"Flagged {title} for {cand}: {cells}.")
    savings = [p["savings_pct"] for p in points if not math.isnan(p["savings_pct"])]
    if savings and all(s > 0 for s in savings) and not any(p["flags"] for p in points):
        lines.append(
            f"Decision: {cand} is cheaper at every headline point without flagged regressions — "
            "adopt it only after an output-quality check on your own prompts."
        )
    elif savings and all(s <= 0 for s in savings):
        lines.append(f"Decision: {cand} does not lower cost at the headline points; stay on {base}.")
    elif savings:
        lines.append(
            f"Decision: mixed — {cand} wins at some points and loses or is flagged at others; "
            "choose per workload (see the comparison table)."
        )
    for row in slo.itertuples(index=False):
        if isinstance(row.best_concurrency, float) and math.isnan(row.best_concurrency):
            lines.append(f"SLO: {row.target_label} {row.workload} meets it at no tested concurrency.")
    return lines


def roofline_hint(roofline: pd.DataFrame, points: list[dict[str, Any]], baseline: str, candidate: str) -> str:
    """A hypothesis for why quantization helps one workload more, grounded in % of the decode ceiling."""
    parts = []
    for p in points:
        sel = (roofline["workload"] == p["workload"]) & (roofline["concurrency"] == p["concurrency"])
        sel &= roofline["max_new_tokens"] == p["max_new_tokens"]
        pct = {
            lb: roofline.loc[sel & (roofline["target_label"] == lb), "pct_of_ceiling"] for lb in (baseline, candidate)
        }
        if all(len(v) and not math.isnan(float(v.iloc[0])) for v in pct.values()):
            parts.append(
                f"{p['title'].lower()} at conc={p['concurrency']} runs at {float(pct[baseline].iloc[0]):.0f}% "
                f"({baseline}) vs {float(pct[candidate].iloc[0]):.0f}% ({candidate}) of its decode ceiling"
            )
    gains = {p["title"]: p["throughput_change_pct"] for p in points if not math.isnan(p["throughput_change_pct"])}
    if len(gains) < 2:
        return "not enough headline cells with data on both sides to compare workloads."
    more, less = sorted(gains, key=lambda k: gains[k], reverse=True)
    text = (
        f"quantization helped {more.lower()} more ({gains[more]:+.1f}% vs {gains[less]:+.1f}%). Smaller weights raise "
        "the memory-bandwidth ceiling of each decode step; the gain shrinks where steps are already dominated by "
        "KV-cache reads, dequantization compute or queueing at high concurrency"
    )
    return text + ("; " + "; ".join(parts) if parts else "") + "."


def _cell_name(row: Any) -> str:
    name = f"{row.target_label!s} · {row.workload!s} c{row.concurrency!s} m{row.max_new_tokens!s}"
    return name + (f" r{row.repeat!s}" if row.repeat else "")


def warnings(capacity: pd.DataFrame) -> list[dict[str, str]]:
    """Client-bound cells, token cross-check mismatches and cells without data — shown, never hidden."""
    out = []
    for row in capacity.itertuples(index=False):
        cell = _cell_name(row)
        if str(row.status).startswith("no data"):
            out.append({"cell": cell, "kind": "no data", "message": str(row.status)})
            continue
        if row.client_bound is True:
            msg = (
                f"client-bound — numbers unreliable (CPU {row.client_cpu_pct:.0f}%, "
                f"lag p99 {row.dispatch_lag_p99_ms:.1f} ms)"
            )
            out.append({"cell": cell, "kind": "client-bound", "message": msg})
        if str(row.token_check).startswith("mismatch"):
            out.append({"cell": cell, "kind": "token cross-check", "message": str(row.token_check)})
        if row.source == "locust_csv":
            out.append({"cell": cell, "kind": "approximate", "message": "from Locust CSVs only (rounded percentiles)"})
        if row.status not in ("completed", "no data"):
            out.append({"cell": cell, "kind": "status", "message": f"cell status: {row.status}"})
    return out
