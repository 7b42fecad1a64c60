"""Template context of the "On other GPUs" section (report and cost Markdown): plain values, no I/O."""

from __future__ import annotations

import math
from typing import Any

from analysis.whatif import WhatIf

__all__ = ["whatif_context"]


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and (math.isnan(value) or math.isinf(value)) else value


def whatif_context(w: WhatIf | None) -> dict[str, Any] | None:
    """Per workload: one row per target × cell × GPU (measured first, then projected), savings, parameters."""
    if w is None:
        return None
    workloads = []
    for workload, rows in w.cells.groupby("workload", sort=True):
        saving = w.savings[w.savings["workload"] == workload]
        workloads.append(
            {
                "name": workload,
                "rows": [{k: _clean(v) for k, v in r.items()} for r in rows.to_dict("records")],
                "savings": [{k: _clean(v) for k, v in r.items()} for r in saving.to_dict("records")],
            }
        )
    return {
        "gpus": w.gpus,
        "workloads": workloads,
        "params": [{k: _clean(v) for k, v in r.items()} for r in w.params.to_dict("records")],
        "notes": w.notes,
    }
