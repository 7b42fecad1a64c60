"""Every table of one run, computed once with one set of options: what the CLI commands and the report share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.adequacy import DEFAULT_THRESHOLDS, AdequacyThresholds, judge_adequacy
from analysis.catalog import Catalog, load_catalog
from analysis.compare import compare_table
from analysis.cost import HEADLINES, Headline, cost_table, resolve_prices, savings_table
from analysis.errors import InputError
from analysis.quality import Quality, summarize_quality
from analysis.roofline import roofline_specs, roofline_table
from analysis.run import Run, resolve_labels
from analysis.slo import SloSpec, attainment_table, slo_table
from analysis.whatif import WhatIf, WhatIfInput, whatif

__all__ = ["Analysis", "Options", "analyse"]


@dataclass(frozen=True)
class Options:
    """Knobs of the analysis; defaults match the CLI's."""

    baseline: str | None = None
    candidate: str | None = None
    catalog_path: Path | None = None
    prices: dict[str, float] = field(default_factory=dict)
    weights_gb: dict[str, float] = field(default_factory=dict)
    utilization: float = 1.0
    p95_threshold_pct: float = 20.0
    throughput_drop_pct: float = 5.0
    slo: SloSpec = field(default_factory=lambda: SloSpec(10_000.0, 2_000.0, 0.01))
    quality_reference: str | None = None  # None: the quality pass's reference (the scenario's)
    similarity_threshold: float | None = None  # None: the scenario's [quality] threshold
    worst_n: int = 5
    adequacy: AdequacyThresholds = DEFAULT_THRESHOLDS
    whatif_gpus: tuple[str, ...] = ()  # catalog GPUs to project the run onto (empty: no projection)
    model_weight_gb: dict[str, float] = field(default_factory=dict)  # --model-bytes LABEL=GB
    headlines: tuple[Headline, ...] = HEADLINES  # the decision summary's reference cells (--chat-cell, --batch-cell)


@dataclass
class Analysis:
    """A run's tables. baseline/candidate are None when the run has fewer than two targets."""

    run: Run
    options: Options
    catalog: Catalog
    prices: pd.DataFrame
    cost: pd.DataFrame
    baseline: str | None
    candidate: str | None
    compare: pd.DataFrame
    savings: pd.DataFrame
    slo: pd.DataFrame
    roofline_specs: pd.DataFrame
    roofline: pd.DataFrame
    quality: Quality | None = None
    whatif: WhatIf | None = None


def _labels(run: Run, options: Options, need_pair: bool) -> tuple[str | None, str | None]:
    for label in (*options.prices, *options.weights_gb):
        run.target(label)  # an unknown label in --price/--weights-gb is an error, listing the known ones
    try:
        return resolve_labels(run, options.baseline, options.candidate)
    except InputError:
        if need_pair or options.baseline or options.candidate:
            raise
        return None, None


def analyse(run: Run, options: Options, need_pair: bool = False) -> Analysis:
    """All tables; `need_pair` makes a run with a single target an error (compare) instead of a gap (report)."""
    if not 0.0 < options.utilization <= 1.0:
        raise InputError(f"--utilization must be in (0, 1], got {options.utilization}")
    baseline, candidate = _labels(run, options, need_pair)
    if options.adequacy != DEFAULT_THRESHOLDS:
        run.capacity = judge_adequacy(run.capacity, options.adequacy)
    catalog = load_catalog(options.catalog_path)
    prices = resolve_prices(run.targets, catalog, options.prices)
    cost = cost_table(run.capacity, prices, options.utilization)
    if baseline and candidate:
        compare = compare_table(
            run.capacity, cost, baseline, candidate, options.p95_threshold_pct, options.throughput_drop_pct
        )
        savings = savings_table(cost, baseline, candidate)
    else:
        compare, savings = pd.DataFrame(), pd.DataFrame()
    slo = slo_table(run.capacity, cost, attainment_table(run.cells, options.slo), options.slo)
    specs = roofline_specs(run.targets, catalog, options.weights_gb)
    quality = None
    if run.quality is not None:
        quality = summarize_quality(
            run.quality, cost, options.quality_reference, options.similarity_threshold, options.worst_n
        )
    projection = None
    if options.whatif_gpus:
        inp = WhatIfInput(
            run.targets, run.capacity, run.server_metrics, cost, options.utilization, options.model_weight_gb,
            baseline, candidate,
        )  # fmt: skip
        projection = whatif(inp, list(options.whatif_gpus), catalog)
    return Analysis(
        run,
        options,
        catalog,
        prices,
        cost,
        baseline,
        candidate,
        compare,
        savings,
        slo,
        specs,
        roofline_table(cost, specs),
        quality,
        projection,
    )
