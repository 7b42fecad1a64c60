"""The report's words: headline points, decision summary, hypotheses and warnings, computed from tables.

Pure: tables in, plain dicts and sentences out; templates only lay them out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from analysis.cost import HEADLINES, Headline, headline_cell
from analysis.naming import comparison_slug
from runformat.layout import cell_label

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


def headline_points(
    cost: pd.DataFrame,
    compare: pd.DataFrame,
    baseline: str,
    candidate: str,
    headlines: tuple[Headline, ...] = HEADLINES,
) -> list[dict[str, Any]]:
    """The reference cells (by default the seed's chat sweet spot and batch point, or the nearest tested
    cells), both sides side by side."""
    points = []
    for h in headlines:
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
                "savings_ci": _interval(c, "savings_ci95_low_pct", "savings_ci95_high_pct"),
                "savings_verdict": c.get("savings_verdict", "inconclusive"),
                "throughput_change_pct": _num(c.get("throughput_tok_s_change_pct")),
                "p95_change_pct": _num(c.get("p95_latency_ms_change_pct")),
                "throughput_change": c.get("throughput_tok_s_change", "n/a"),
                "throughput_verdict": c.get("throughput_tok_s_verdict", "inconclusive"),
                "p95_change": c.get("p95_latency_ms_change", "n/a"),
                "ttft_change": c.get("ttft_p95_ms_change", "n/a"),
                "tpot_change": c.get("tpot_p95_ms_change", "n/a"),
                "adequacy": c.get("adequacy", "no comparison"),
                "flags": c.get("flags", ""),
            }
        )
    return points


def _interval(row: Mapping[Any, Any], low: str, high: str) -> str:
    lo, hi = _num(row.get(low)), _num(row.get(high))
    return "" if math.isnan(lo) or math.isnan(hi) else f"[{lo:+.1f}, {hi:+.1f}]"


def _savings_text(p: dict[str, Any]) -> str:
    if math.isnan(p["savings_pct"]):
        return "n/a"
    ci = f" {p['savings_ci']}" if p["savings_ci"] else ""
    return f"{p['savings_pct']:+.1f}%{ci}, {p['savings_verdict']}"


def decision_summary(
    points: list[dict[str, Any]], compare: pd.DataFrame, slo: pd.DataFrame, names: tuple[str, str]
) -> list[str]:
    """3–6 sentences a reader can act on; every number names its cell and carries its 95% CI and verdict."""
    base, cand = names
    lines = []
    for p in points:
        where = f"conc={p['concurrency']}, max_new_tokens={p['max_new_tokens']}"
        if not p["exact"]:
            where += f" (nearest tested to {p['wanted']})"
        line = (
            f"{p['title']} ({where}): {cand} vs {base} — throughput {p['throughput_change']}; "
            f"p95 latency {p['p95_change']}; TTFT p95 {p['ttft_change']}; savings in $/1M tokens {_savings_text(p)}."
        )
        lines.append(line)
    if len(compare):
        for needle, title in (("blow-up", "latency blow-up"), ("throughput regression", "throughput regression")):
            rows = compare[compare["flags"].str.contains(needle, na=False)]
            if len(rows):
                cells = ", ".join(f"{r.workload} c{r.concurrency} m{r.max_new_tokens}" for r in rows.itertuples())
                lines.append(f"Flagged (significant) {title} for {cand}: {cells}.")
    lines.append(_decision(points, base, cand))
    for row in slo.itertuples(index=False):
        if isinstance(row.best_concurrency, float) and math.isnan(row.best_concurrency):
            lines.append(f"SLO: {row.target_label} {row.workload} meets it at no tested concurrency.")
    return lines


def _decision(points: list[dict[str, Any]], base: str, cand: str) -> str:
    """The decision the evidence supports — and only that: inconclusive cells make it 'cannot tell yet'."""
    if not points:
        return "Decision: no headline cells with data on both sides."
    inconclusive = [p["title"] for p in points if p["savings_verdict"] == "inconclusive"]
    if inconclusive:
        return (
            f"Decision: cannot tell yet — {', '.join(inconclusive)} cells are too short or otherwise inadequate "
            '(see Warnings); run them longer (duration_s = "auto") before deciding.'
        )
    cheaper = [p for p in points if p["savings_verdict"] == "significant" and p["savings_pct"] > 0]
    dearer = [p for p in points if p["savings_verdict"] == "significant" and p["savings_pct"] < 0]
    flagged = [p for p in points if p["flags"]]
    if len(cheaper) == len(points) and not flagged:
        return (
            f"Decision: {cand} is significantly cheaper at every headline point without a significant regression — "
            "adopt it only after an output-quality check on your own prompts."
        )
    if dearer and not cheaper:
        where = ", ".join(p["title"] for p in dearer)
        return f"Decision: {cand} is significantly more expensive at {where}; stay on {base}."
    if not cheaper and not dearer:
        return f"Decision: no significant cost difference between {cand} and {base} at the headline points."
    return (
        f"Decision: mixed — {cand} is significantly cheaper for {', '.join(p['title'] for p in cheaper) or 'none'}"
        f"{'; flagged: ' + ', '.join(p['title'] for p in flagged) if flagged else ''}; choose per workload "
        "(see the comparison table)."
    )


def roofline_hint(roofline: pd.DataFrame, points: list[dict[str, Any]], baseline: str, candidate: str) -> str:
    """What the data shows about why the workloads differ: measured % of the decode ceiling, nothing guessed.

    A difference between workloads is stated only when both throughput changes are significant; otherwise
    the sentence says the data cannot rank them.
    """
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
    measured = ("measured (roofline): " + "; ".join(parts) + ".") if parts else ""
    decided = [p for p in points if p["throughput_verdict"] == "significant"]
    if len(points) < 2 or len(decided) < len(points):
        undecided = [p["title"] for p in points if p["throughput_verdict"] != "significant"]
        text = (
            "the data cannot rank the workloads: the throughput change is not significant or inconclusive for "
            + (", ".join(undecided) or "a missing workload")
            + "."
        )
        return f"{text} {measured}".strip()
    ranked = sorted(decided, key=lambda p: p["throughput_change_pct"], reverse=True)
    text = (
        f"quantization changed {ranked[0]['title'].lower()} throughput by {ranked[0]['throughput_change']} and "
        f"{ranked[-1]['title'].lower()} by {ranked[-1]['throughput_change']}."
    )
    return f"{text} {measured}".strip()


def _cell_name(row: Any) -> str:
    return cell_label(row.target_label, row.workload, row.concurrency, row.max_new_tokens, row.repeat)


def warnings(capacity: pd.DataFrame) -> list[dict[str, str]]:
    """Every reason a cell cannot support a verdict (adequacy), and cells without data — shown, never hidden."""
    out = []
    for row in capacity.itertuples(index=False):
        cell = _cell_name(row)
        if str(row.status).startswith("no data"):
            out.append({"cell": cell, "kind": "no data", "message": str(row.status)})
            continue
        if getattr(row, "adequate", True) is True:
            continue
        for reason in str(getattr(row, "adequacy", "")).split("; "):
            out.append({"cell": cell, "kind": _kind(reason), "message": reason})
    return out


def _kind(reason: str) -> str:
    for prefix, kind in (
        ("client-bound", "client-bound"),
        ("token cross-check", "token cross-check"),
        ("server usage counts suspect", "suspect tokens"),
        ("approximate", "approximate"),
        ("cell status", "status"),
        ("server prefix-cache", "prefix cache"),
        ("closed-loop waves", "waves"),
        ("records lost", "records lost"),
    ):
        if reason.startswith(prefix):
            return kind
    return "inadequate"
