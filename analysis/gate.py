"""Regression gate across runs: match cells of a baseline and a candidate run, and fail only on a significant breach.

A breach is a change whose 95% CI excludes zero (`analysis.verdict`) and whose estimate is beyond the
threshold in the bad direction. Inadequate cells are reported as inconclusive and never fail the gate
(unless asked). Pure: two capacity tables in, a table and an exit decision out.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from analysis.errors import InputError
from analysis.verdict import Verdict, change, side_estimate

__all__ = ["GATE_KEY", "GateThresholds", "gate_exit_code", "gate_json", "gate_markdown", "gate_table"]

# An open-loop cell is matched by its offered rate too (its concurrency is the pool of users, the same for
# every rate of a rates grid); a closed-loop cell's offered rate is empty and matches only another's.
GATE_KEY = ["target_label", "workload", "concurrency", "offered_rate_req_s", "max_new_tokens"]
_RATE_DIGITS = 6  # offered rates are sums of per-process shares: equal to this many decimals is the same rate


@dataclass(frozen=True)
class GateThresholds:
    max_throughput_drop_pct: float = 5.0
    max_p95_rise_pct: float = 10.0
    max_ttft_p95_rise_pct: float = 10.0

    def limits(self) -> dict[str, tuple[str, float]]:
        """metric → (bad direction, threshold %)."""
        return {
            "throughput_tok_s": ("drop", self.max_throughput_drop_pct),
            "p95_latency_ms": ("rise", self.max_p95_rise_pct),
            "ttft_p95_ms": ("rise", self.max_ttft_p95_rise_pct),
        }


def _breach(direction: str, threshold: float, pct: float) -> bool:
    return pct < -threshold if direction == "drop" else pct > threshold


def _cells(capacity: pd.DataFrame) -> dict[tuple[Any, ...], pd.DataFrame]:
    """A run's cells (repeats together) by GATE_KEY; a closed-loop cell's offered rate is None in its key."""
    cap = capacity.dropna(subset=["concurrency"])
    offered = cap["offered_rate_req_s"] if "offered_rate_req_s" in cap else pd.Series(math.nan, index=cap.index)
    cap = cap.assign(offered_rate_req_s=offered.astype(float).round(_RATE_DIGITS))
    return {
        tuple(None if isinstance(v, float) and math.isnan(v) else v for v in key): group
        for key, group in cap.groupby(GATE_KEY, dropna=False, sort=True)
    }


def gate_table(baseline: pd.DataFrame, candidate: pd.DataFrame, th: GateThresholds) -> pd.DataFrame:
    """One row per cell key × metric present in both runs: values, change with CI, verdict, outcome."""
    base, cand = _cells(baseline), _cells(candidate)
    keys = [key for key in base if key in cand]
    if not keys:
        raise InputError(
            "no cell of the candidate run matches one of the baseline run "
            f"(cells are matched by {' × '.join(GATE_KEY)}; an open-loop cell's concurrency is its pool of users)"
        )
    rows = []
    for key in keys:
        for metric, (direction, threshold) in th.limits().items():
            b, c = side_estimate(base[key], metric), side_estimate(cand[key], metric)
            ch = change(b, c)
            breach = ch.verdict is Verdict.SIGNIFICANT and _breach(direction, threshold, ch.pct)
            outcome = "FAIL" if breach else "pass"
            if ch.verdict is Verdict.INCONCLUSIVE:
                outcome = "inconclusive"
            rows.append(
                {
                    **dict(zip(GATE_KEY, key, strict=True)),
                    "metric": metric,
                    "baseline": b.value,
                    "candidate": c.value,
                    "change_pct": ch.pct,
                    "change_ci95_low_pct": ch.low_pct,
                    "change_ci95_high_pct": ch.high_pct,
                    "verdict": ch.verdict.value,
                    "threshold": f"{'−' if direction == 'drop' else '+'}{threshold:g}%",
                    "outcome": outcome,
                    "reason": ch.reason,
                }
            )
    return pd.DataFrame(rows)


def gate_exit_code(table: pd.DataFrame, fail_on_inconclusive: bool = False) -> int:
    """1 when any row is a significant breach (or inconclusive, when asked), else 0."""
    if (table["outcome"] == "FAIL").any():
        return 1
    if fail_on_inconclusive and (table["outcome"] == "inconclusive").any():
        return 1
    return 0


def _num(v: float, digits: int = 1) -> str:
    return "—" if isinstance(v, float) and math.isnan(v) else f"{v:,.{digits}f}"


def gate_markdown(table: pd.DataFrame, th: GateThresholds, code: int) -> str:
    """The gate's result as Markdown for a CI job summary."""
    verdict = "FAILED: a significant regression beyond its threshold" if code else "passed"
    lines = [
        f"## Regression gate: {verdict}",
        "",
        f"Thresholds: throughput drop {th.max_throughput_drop_pct:g}%, p95 rise {th.max_p95_rise_pct:g}%, "
        f"TTFT p95 rise {th.max_ttft_p95_rise_pct:g}%. A breach counts only when the change's 95% CI excludes 0.",
        "",
        "| target | workload | conc | req/s | tokens | metric | baseline | candidate | change [95% CI] | verdict "
        "| outcome |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.to_dict("records"):
        low, high = float(r["change_ci95_low_pct"]), float(r["change_ci95_high_pct"])
        change_pct = float(r["change_pct"])
        ci = "" if math.isnan(low) else f" [{low:+.1f}, {high:+.1f}]"
        pct = "—" if math.isnan(change_pct) else f"{change_pct:+.1f}%"
        label = str(r["target_label"]).replace("|", "\\|").replace("<", "&lt;")
        reason = f": {r['reason']}" if r["reason"] else ""
        rate = "—" if pd.isna(r["offered_rate_req_s"]) else f"{float(r['offered_rate_req_s']):g}"
        lines.append(
            f"| {label} | {r['workload']} | {float(r['concurrency']):g} | {rate} | {float(r['max_new_tokens']):g} "
            f"| {r['metric']} | {_num(float(r['baseline']))} | {_num(float(r['candidate']))} | {pct}{ci} "
            f"| {r['verdict']} | {r['outcome']}{reason} |"
        )
    return "\n".join(lines) + "\n"


def gate_json(table: pd.DataFrame, th: GateThresholds, code: int) -> str:
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in table.to_dict("records")
    ]
    return json.dumps({"exit_code": code, "thresholds": asdict(th), "rows": records}, indent=2, default=str) + "\n"
