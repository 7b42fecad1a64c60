"""File names of the seed's artifacts, derived from the scenario name and target labels.

RTX2000-16GB-BF16 in scenario day004_quant_vs_bf16 gives day004_batch_capacity_rtx16gb_bf16.csv; other
grids get names built the same way (smoke + H100-80GB-FP8 → smoke_batch_capacity_h100_80gb_fp8.csv).
"""

from __future__ import annotations

import re

__all__ = [
    "best_practices_name",
    "capacity_csv_name",
    "comparison_slug",
    "cost_doc_name",
    "label_slug",
    "notes_name",
    "scenario_prefix",
]

_SPLIT = re.compile(r"[^a-z0-9]+")
_FAMILY = re.compile(r"^([a-z]{2,})\d+$")  # rtx2000 → rtx (the seed drops the model number)
_MEMORY = re.compile(r"^\d+gb$")


def _tokens(text: str) -> list[str]:
    return [t for t in _SPLIT.split(text.lower()) if t]


def label_slug(label: str) -> str:
    """RTX2000-16GB-BF16 → rtx16gb_bf16; H100-80GB-FP8 → h100_80gb_fp8; anything else → lowercase_words."""
    tokens = _tokens(label)
    if len(tokens) >= 2 and (family := _FAMILY.match(tokens[0])) and _MEMORY.match(tokens[1]):
        tokens = [family.group(1) + tokens[1], *tokens[2:]]
    return "_".join(tokens) or "target"


def scenario_prefix(scenario: str) -> str:
    """day004_quant_vs_bf16 → day004; a scenario without a dayNNN part keeps its whole (slugged) name."""
    tokens = _tokens(scenario)
    if tokens and re.fullmatch(r"day\d+", tokens[0]):
        return tokens[0]
    return "_".join(tokens) or "run"


def comparison_slug(baseline: str, candidate: str) -> str:
    """What tells the two labels apart, candidate first: RTX2000-16GB-QUANT vs -BF16 → quant_vs_bf16."""
    base, cand = _tokens(baseline), _tokens(candidate)
    only_cand = [t for t in cand if t not in base] or ["candidate"]
    only_base = [t for t in base if t not in cand] or ["baseline"]
    return f"{'_'.join(only_cand)}_vs_{'_'.join(only_base)}"


def capacity_csv_name(scenario: str, workload: str, label: str) -> str:
    return f"{scenario_prefix(scenario)}_{'_'.join(_tokens(workload)) or 'all'}_capacity_{label_slug(label)}.csv"


def notes_name(scenario: str, baseline: str, candidate: str) -> str:
    return f"{scenario_prefix(scenario)}_{comparison_slug(baseline, candidate)}_notes.md"


def cost_doc_name(scenario: str, baseline: str, candidate: str) -> str:
    first = comparison_slug(baseline, candidate).split("_vs_")[0]
    return f"{scenario_prefix(scenario)}_{first}_cost_comparison.md"


def best_practices_name() -> str:
    return "INFERENCE_PERFORMANCE_BEST_PRACTICES.md"
