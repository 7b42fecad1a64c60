"""$/1M-token cost with the seed's formula, its price assumptions, and BF16-vs-quant savings.

tokens_per_hour   = throughput_tok_s × 3600 × utilization
usd_per_1m_tokens = hourly_price_usd / tokens_per_hour × 1,000,000
savings_pct       = (cost_baseline − cost_candidate) / cost_baseline × 100
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.catalog import Catalog
from analysis.run import RunTarget

__all__ = [
    "COST_COLUMNS",
    "COST_FORMULA",
    "HEADLINES",
    "KEY",
    "Headline",
    "assumption_lines",
    "cost_table",
    "headline_cell",
    "parse_cell",
    "resolve_prices",
    "savings_table",
]

# Open-loop cells of one pool differ by offered rate (NaN for closed-loop cells: groupings keep NaN keys).
KEY = ["workload", "concurrency", "offered_rate_req_s", "max_new_tokens"]
COST_FORMULA = (
    "tokens_per_hour = throughput_tok_s × 3600 × utilization; "
    "usd_per_1m_tokens = hourly_price_usd / tokens_per_hour × 1,000,000"
)
COST_COLUMNS = [
    "target_label",
    *KEY,
    "repeats",
    "throughput_tok_s",
    "tokens_per_hour",
    "hourly_price_usd",
    "utilization",
    "usd_per_1m_tokens",
    "price_source",
]


@dataclass(frozen=True)
class Headline:
    """A seed headline cell: the chat sweet spot and the batch point."""

    title: str
    workload: str
    concurrency: int
    max_new_tokens: int


HEADLINES = (Headline("Chat", "chat", 16, 128), Headline("Batch", "batch", 32, 256))
_CELL = re.compile(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", re.IGNORECASE)


def parse_cell(text: str) -> tuple[int, int]:
    """'16x128' → (concurrency 16, max_new_tokens 128); ValueError naming the expected form otherwise."""
    m = _CELL.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not CONCURRENCYxMAX_NEW_TOKENS, e.g. 16x128")
    conc, tokens = int(m.group(1)), int(m.group(2))
    if conc < 1 or tokens < 1:
        raise ValueError(f"{text!r}: concurrency and max_new_tokens must both be at least 1")
    return conc, tokens


def resolve_prices(targets: Iterable[RunTarget], catalog: Catalog, overrides: dict[str, float]) -> pd.DataFrame:
    """One row per target: $/h and where it came from (flag > scenario > catalog via the gpu key)."""
    rows = []
    for t in targets:
        gpu = catalog.gpu(t.gpu)
        gpu_name = gpu.name if gpu else (t.gpu or "unknown GPU")
        if t.label in overrides:
            price, source = overrides[t.label], "--price flag"
        elif t.hourly_price_usd is not None:
            price, source = float(t.hourly_price_usd), "scenario target hourly_price_usd"
        elif gpu is not None and gpu.hourly_price_usd is not None:
            price = gpu.hourly_price_usd
            source = f"catalog {gpu.key}: {gpu.price_source}, {gpu.price_date} ({catalog.path.name})"
        else:
            price, source = math.nan, "unknown — pass --price LABEL=USD_PER_HOUR or set the target's gpu"
        rows.append(
            {
                "target_label": t.label,
                "hourly_price_usd": price,
                "price_source": source,
                "gpu": t.gpu,
                "gpu_name": gpu_name,
            }
        )
    return pd.DataFrame(rows, columns=["target_label", "hourly_price_usd", "price_source", "gpu", "gpu_name"])


def cost_table(capacity: pd.DataFrame, prices: pd.DataFrame, utilization: float = 1.0) -> pd.DataFrame:
    """Per target × cell (repeats averaged): throughput, tokens/hour and $/1M tokens; NaN where unknown."""
    if not 0.0 < utilization <= 1.0:
        raise ValueError(f"utilization must be in (0, 1], got {utilization}")
    keyed = capacity.dropna(subset=["concurrency"])
    grouped = keyed.groupby(["target_label", *KEY], dropna=False, sort=True)
    table = grouped.agg(repeats=("throughput_tok_s", "count"), throughput_tok_s=("throughput_tok_s", "mean"))
    table = table.reset_index().merge(prices[["target_label", "hourly_price_usd", "price_source"]], how="left")
    table["utilization"] = utilization
    table["tokens_per_hour"] = table["throughput_tok_s"] * 3600.0 * utilization
    per_hour = table["tokens_per_hour"].where(table["tokens_per_hour"] > 0)
    table["usd_per_1m_tokens"] = table["hourly_price_usd"] / per_hour * 1_000_000.0
    return table[COST_COLUMNS]


def headline_cell(cost: pd.DataFrame, headline: Headline) -> tuple[int, int] | None:
    """The headline's (concurrency, max_new_tokens), or the nearest tested one of that workload."""
    rows = cost[(cost["workload"] == headline.workload) & cost["throughput_tok_s"].notna()]
    if rows.empty:
        return None
    # concurrency matters more than token count: a factor of 2 in users outweighs one in tokens
    conc = np.abs(np.log2(rows["concurrency"].to_numpy(dtype=float) / headline.concurrency))
    tokens = np.abs(np.log2(rows["max_new_tokens"].to_numpy(dtype=float) / headline.max_new_tokens))
    best = rows.iloc[int(np.argmin(conc * 10 + tokens))]
    return int(best["concurrency"]), int(best["max_new_tokens"])


def savings_table(cost: pd.DataFrame, baseline: str, candidate: str) -> pd.DataFrame:
    """Per cell both targets' $/1M tokens and savings_pct = (baseline − candidate) / baseline × 100."""
    cols = [*KEY, "throughput_tok_s", "tokens_per_hour", "usd_per_1m_tokens"]
    base = cost[cost["target_label"] == baseline][cols]
    cand = cost[cost["target_label"] == candidate][cols]
    both = base.merge(cand, on=KEY, how="outer", suffixes=("_baseline", "_candidate"))
    both["savings_pct"] = (
        (both["usd_per_1m_tokens_baseline"] - both["usd_per_1m_tokens_candidate"])
        / both["usd_per_1m_tokens_baseline"]
        * 100.0
    )
    return both.sort_values(KEY).reset_index(drop=True)


def assumption_lines(prices: pd.DataFrame, utilization: float) -> list[str]:
    """Human-readable assumptions printed next to every cost figure."""
    lines = []
    for row in prices.itertuples(index=False):
        usd = float(row.hourly_price_usd)  # type: ignore[arg-type]
        price = "unknown" if math.isnan(usd) else f"${usd:.2f}/h"
        lines.append(f"{row.target_label}: GPU {row.gpu_name}, {price} ({row.price_source})")
    lines.append(f"Utilization: {utilization:.0%} of every hour under this load (continuous traffic)")
    lines.append(f"Formula: {COST_FORMULA}")
    return lines
