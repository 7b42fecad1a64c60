"""Decode roofline: the tok/s ceiling a GPU's memory bandwidth (and compute) allows at a batch size.

Every decode step streams all weights once and yields one token per sequence in the batch, so

    memory ceiling  = batch × bandwidth_B_s / weight_bytes
    compute ceiling = peak_FLOP_s / (2 × params)          (2 FLOPs per parameter per token)
    ceiling_tok_s   = min(memory ceiling, compute ceiling)

This ignores KV-cache reads, prefill and scheduling overhead, so it is an upper bound; measured throughput
as a % of it says how much of the hardware a deployment uses. batch = the cell's concurrency (every user
has one request in flight).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from analysis.catalog import Catalog
from analysis.cost import KEY
from analysis.run import RunTarget

__all__ = ["ROOFLINE_FORMULA", "roofline_specs", "roofline_table"]

ROOFLINE_FORMULA = (
    "ceiling_tok_s = min(batch × bandwidth_B_s / weight_bytes, peak_FLOP_s / (2 × params)); batch = concurrency"
)
SPEC_COLUMNS = [
    "target_label",
    "gpu_name",
    "memory_bandwidth_gb_s",
    "peak_bf16_dense_tflops",
    "model",
    "weight_gb",
    "params_b",
    "assumption",
]


def roofline_specs(targets: Iterable[RunTarget], catalog: Catalog, weight_overrides: dict[str, float]) -> pd.DataFrame:
    """Per target the hardware and weight figures the ceiling needs, and where each came from."""
    rows = []
    for t in targets:
        gpu = catalog.gpu(t.gpu)
        model = catalog.model(t.model)
        notes = []
        if gpu is not None:
            notes.append(f"GPU {gpu.key}: {gpu.spec_source}")
        else:
            notes.append(f"GPU {t.gpu or '(none given)'} not in catalog {catalog.path.name}")
        weight_gb: float | None = None
        if t.label in weight_overrides:
            weight_gb = weight_overrides[t.label]
            notes.append(f"weights {weight_gb:g} GB from --weights-gb")
        elif model is not None:
            weight_gb = model.weight_gb
            notes.append(f"model {model.name}: {model.source}")
        else:
            notes.append(f"model {t.model or '(unknown)'} not in catalog: pass --weights-gb LABEL=GB")
        rows.append(
            {
                "target_label": t.label,
                "gpu_name": gpu.name if gpu else (t.gpu or "unknown"),
                "memory_bandwidth_gb_s": gpu.memory_bandwidth_gb_s if gpu else math.nan,
                "peak_bf16_dense_tflops": gpu.peak_bf16_dense_tflops if gpu else math.nan,
                "model": t.model or "",
                "weight_gb": weight_gb if weight_gb is not None else math.nan,
                "params_b": model.params_b if model and model.params_b else math.nan,
                "assumption": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows, columns=SPEC_COLUMNS)


def roofline_table(cost: pd.DataFrame, specs: pd.DataFrame) -> pd.DataFrame:
    """Per target × cell: the memory and compute ceilings, the binding one, and measured % of ceiling."""
    table = cost[["target_label", *KEY, "throughput_tok_s"]].merge(specs, on="target_label", how="left")
    batch = table["concurrency"].astype(float)
    table["batch"] = batch
    table["memory_ceiling_tok_s"] = batch * table["memory_bandwidth_gb_s"] * 1e9 / (table["weight_gb"] * 1e9)
    table["compute_ceiling_tok_s"] = table["peak_bf16_dense_tflops"] * 1e12 / (2.0 * table["params_b"] * 1e9)
    ceilings = table[["memory_ceiling_tok_s", "compute_ceiling_tok_s"]]
    table["ceiling_tok_s"] = ceilings.min(axis=1, skipna=True).where(ceilings.notna().any(axis=1))
    table["bound_by"] = (
        (table["memory_ceiling_tok_s"] <= table["compute_ceiling_tok_s"].fillna(math.inf))
        .map({True: "memory", False: "compute"})
        .where(table["ceiling_tok_s"].notna(), "unknown")
    )
    table["pct_of_ceiling"] = table["throughput_tok_s"] / table["ceiling_tok_s"] * 100.0
    return table
