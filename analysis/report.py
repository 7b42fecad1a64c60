"""`report RUN`: one self-contained index.html plus the seed's CSV and Markdown artifacts beside it.

`build_context` is pure (tables → template context); `render` applies the Jinja2 templates (autoescaped
HTML, StrictUndefined); `write_report` is the only function that touches the file system.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from analysis import naming, plots
from analysis.bundle import Analysis
from analysis.capacity import CAPACITY_COLUMNS
from analysis.cost import COST_FORMULA, KEY, assumption_lines
from analysis.glance import half_width, kpi_cards
from analysis.quality import PROMPT_COLUMNS, drift_lines
from analysis.roofline import ROOFLINE_FORMULA
from analysis.searchreport import load_search, search_context
from analysis.summary import decision_summary, headline_points, kind_names, roofline_hint, warnings
from analysis.tablelayout import COLUMN_TITLES, detail_columns, html_layouts, key_columns, open_loop_columns
from analysis.tables import SEED_COLUMNS
from analysis.textformat import significant
from analysis.whatif_context import whatif_context
from analysis.writing import write_csv_atomic, write_text_atomic
from runformat.search import CAPACITY_SEARCH_CSV

__all__ = ["build_context", "cost_text", "render", "seed_tables", "whatif_text", "write_report"]

TEMPLATES = Path(__file__).with_name("templates")
# shown as value ± half-width (the larger side of the 95% CI)
CI_VIEW = ["throughput_tok_s", "req_per_s", "p95_latency_ms", "ttft_p95_ms", "tpot_p95_ms"]
TABLE_FILES = ["capacity.csv", "cost.csv", "slo.csv", "roofline.csv"]
QUALITY_FILES = ["quality_summary.csv", "quality_prompts.csv", "quality_cost.csv"]
PLOTS_DIR = "plots"  # every plot's static SVG, for documents and slides (index.html draws them from data)
_INT_COLUMNS = ["concurrency", "max_new_tokens", "repeat", "requests", "failures"]


def fmt(value: Any, digits: int = 1, scale: float = 1.0, suffix: str = "") -> str:
    """Numbers for people: thousands separators, fixed digits, an em dash for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value * scale:,.{digits}f}{suffix}"
    return str(value)


def usd(value: Any) -> str:
    """A $/1M figure for people: three significant digits, as the CLI prints it (0.0812, 0.243, 12.5), so a
    large figure shows no false precision and a cheap one keeps its digits."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        return significant(float(value))
    return fmt(value)


def signed(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):+.{digits}f}%"


def savings_words(value: Any, candidate: str) -> str:
    """Savings in words: '20.0% cost reduction with X' when X is cheaper, 'none: X costs 21.4% more' when not
    (a negative cost reduction reads wrong)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    pct = float(value)
    if pct < 0:
        return f"none: {candidate} costs {-pct:,.1f}% more"
    return f"{pct:,.1f}% cost reduction with {candidate}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["signed"] = signed
    env.filters["usd"] = usd
    env.filters["savings_words"] = savings_words
    return env


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def md_text(value: Any) -> Any:
    """A value as Markdown text: labels and messages come from users and servers, so they cannot open an
    HTML tag (`<b>` → `&lt;b>`; a comparison such as `< 50` stays) or end a table cell (`|` → `\\|`)."""
    if isinstance(value, str):
        return _TAG_START.sub("&lt;", value).replace("|", "\\|")
    return value


def _markdown(env: jinja2.Environment) -> jinja2.Environment:
    """The environment for the .md templates: every printed value passes through `md_text`."""
    return env.overlay(finalize=md_text)


def _capacity_records(frame: pd.DataFrame, cost: pd.DataFrame) -> list[dict[str, Any]]:
    """Capacity rows with each CI metric's half-width (`<metric>_pm`) and the cell's $/1M tokens."""
    frame = frame.assign(usd_per_1m_tokens=math.nan)
    if len(cost) and len(frame):
        numeric = [k for k in KEY if k != "workload"]  # a Locust CSV run may carry them as text
        on = ["target_label", *KEY]
        left = frame[on].assign(**{k: pd.to_numeric(frame[k], errors="coerce") for k in numeric})
        right = cost[[*on, "usd_per_1m_tokens"]].assign(**{k: pd.to_numeric(cost[k], errors="coerce") for k in numeric})
        priced = left.merge(right, how="left", on=on)["usd_per_1m_tokens"]
        frame["usd_per_1m_tokens"] = priced.to_numpy()
    records = _records(frame)
    for r in records:
        for metric in CI_VIEW:
            hw = half_width(r, metric)
            r[f"{metric}_pm"] = None if math.isnan(hw) else hw
    return records


def _records(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    view = frame[columns] if columns else frame
    return [
        {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in view.to_dict("records")
    ]


def seed_tables(a: Analysis) -> dict[str, pd.DataFrame]:
    """The seed's capacity CSVs: one per target × workload, named from the scenario and the label."""
    cap = a.run.capacity.rename(columns={"target_label": "gpu_name"})
    out = {}
    for (label, workload), rows in cap.groupby(["gpu_name", "workload"], sort=True):
        table = rows[SEED_COLUMNS].astype({c: "Int64" for c in _INT_COLUMNS})
        out[naming.capacity_csv_name(a.run.scenario, str(workload), str(label))] = table
    return out


def _plots(a: Analysis) -> tuple[list[plots.Plot], list[plots.Plot]]:
    cap = a.run.capacity
    main = [
        plots.throughput_plot(cap),
        plots.latency_plot(cap),
        plots.latency_cdf_plot(a.run.cells, cap),
        plots.cost_plot(a.cost),
        plots.client_cpu_plot(a.run.cells, cap),
    ]
    rate = plots.rate_plot(cap)
    if rate is not None:
        main.insert(2, rate)
    return main, plots.server_plots(cap, a.run.server_metrics, a.run.cells)


def _has_load(a: Analysis) -> bool:
    """False for a run that holds only a quality pass: its report is the quality section alone."""
    return len(a.run.capacity) > 0


def _title(scenario: str) -> str:
    prefix = naming.scenario_prefix(scenario)
    if prefix.startswith("day") and prefix[3:].isdigit():
        return f"Day {prefix[3:]}"
    return scenario


def cost_context(a: Analysis, generated_at: str) -> dict[str, Any]:
    """What the cost document needs: cheap (no plots), shared by `cost` and the report."""
    pair = a.baseline is not None and a.candidate is not None
    names = kind_names(a.baseline, a.candidate) if a.baseline and a.candidate else ("baseline", "candidate")
    points = (
        headline_points(a.cost, a.compare, a.baseline, a.candidate, a.options.headlines)
        if a.baseline and a.candidate
        else []
    )
    return {
        "title": _title(a.run.scenario),
        "scenario": a.run.scenario,
        "run_path": str(a.run.path),
        "generated_at": generated_at,
        "pair": pair,
        "baseline": a.baseline or "",
        "candidate": a.candidate or "",
        "names": {"baseline": names[0], "candidate": names[1]},
        "points": points,
        "cost": _records(a.cost),
        "assumptions": assumption_lines(a.prices, a.options.utilization),
        "utilization": a.options.utilization,
        "cost_formula": COST_FORMULA,
        "quality": _quality_context(a, points),
        "whatif": whatif_context(a.whatif),
        "search": search_context(
            load_search(a.run.path), a.run.path, a.run.cells, a.prices, a.options.utilization, with_plots=False
        ),
    }


def _quality_context(a: Analysis, points: list[dict[str, Any]]) -> dict[str, Any] | None:
    q = a.quality
    if q is None:
        return None
    cells = q.adjusted_cost[q.adjusted_cost["target_label"] != q.reference]
    return {
        "reference": q.reference,
        "threshold": q.threshold,
        "note": q.note,
        "lines": drift_lines(q.summary, q.adjusted_cost, points, q.threshold),
        "summary": _records(q.summary),
        "adjusted": _records(cells),
        "worst": _records(q.worst),
    }


def cost_text(a: Analysis) -> str:
    """The cost document (Assumptions, Chat, Batch, every cell, Savings, Narrative) as Markdown."""
    return _markdown(_environment()).get_template("cost.md.j2").render(cost_context(a, _now()))


def whatif_text(a: Analysis) -> str:
    """The "On other GPUs (projected)" section alone, as Markdown (`analysis whatif`)."""
    return _markdown(_environment()).get_template("whatif.md.j2").render(cost_context(a, _now()))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def build_context(a: Analysis, generated_at: str) -> dict[str, Any]:
    """Everything the templates show, as plain values."""
    run = a.run
    base = cost_context(a, generated_at)
    pair, points = base["pair"], base["points"]
    names = (base["names"]["baseline"], base["names"]["candidate"])
    load = _has_load(a)
    main_plots, server_plots = _plots(a) if load else ([], [])  # a quality-only run has nothing to plot
    per_target = [
        {"label": label, "rows": _capacity_records(rows, a.cost)}
        for label, rows in run.capacity.groupby("target_label", sort=False)
    ]
    batch = next((p for p in points if p["workload"] == "batch"), None)
    batch_rows = a.compare[(a.compare["workload"] == "batch")] if pair and len(a.compare) else pd.DataFrame()
    if batch is not None and len(batch_rows):
        batch_rows = batch_rows[batch_rows["max_new_tokens"] == batch["max_new_tokens"]]
    documents = pair and load  # the notes and cost documents are about load cells
    files = {
        "notes": naming.notes_name(run.scenario, base["baseline"], base["candidate"]) if documents else None,
        "cost": naming.cost_doc_name(run.scenario, base["baseline"], base["candidate"]) if documents else None,
        "best_practices": naming.best_practices_name() if load else None,
        "capacity": sorted(seed_tables(a)),
        "tables": [
            *(TABLE_FILES if load else []),
            *(["comparison.csv"] if len(a.compare) else []),
            *(QUALITY_FILES if a.quality is not None else []),
            *(["whatif.csv", "whatif_params.csv"] if a.whatif is not None else []),
        ],
    }
    base["search"] = search_context(load_search(run.path), run.path, run.cells, a.prices, a.options.utilization)
    files["plots"] = PLOTS_DIR if load else None
    return {
        **base,
        "load": load,
        "summary": decision_summary(points, a.compare, a.slo, names) if pair else [],
        "warnings": warnings(run.capacity),
        "targets": [t.__dict__ for t in run.targets],
        "per_target": per_target,
        "key_columns": key_columns(run.capacity),
        "detail_columns": detail_columns(run.capacity),
        "open_loop_columns": open_loop_columns(run.capacity),
        "column_titles": COLUMN_TITLES,
        "layouts": html_layouts(names[0], names[1], base["search"]["unit"] if base["search"] else "users"),
        "kpi_cards": kpi_cards(
            run.capacity,
            a.cost,
            a.options.headlines,
            a.compare,
            a.baseline,
            a.candidate,
            names,
            base["search"],
            a.quality.summary if a.quality is not None else None,
        ),
        "ci_columns": CI_VIEW,
        "adequacy_ok": bool(run.capacity["adequate"].map(lambda v: v is True).all()),
        "compare": _records(a.compare),
        "batch_rows": _records(batch_rows),
        "p95_threshold_pct": a.options.p95_threshold_pct,
        "throughput_drop_pct": a.options.throughput_drop_pct,
        "savings": _records(a.savings),
        "slo": _records(a.slo),
        "slo_text": a.options.slo.describe(),
        "roofline": _records(a.roofline),
        "roofline_specs": _records(a.roofline_specs),
        "roofline_formula": ROOFLINE_FORMULA,
        "hypothesis": roofline_hint(a.roofline, points, base["baseline"], base["candidate"]) if pair else "",
        "plots": main_plots,
        "server_plots": server_plots,
        "files": files,
        "all_columns": CAPACITY_COLUMNS,
    }


def render(context: dict[str, Any]) -> dict[str, str]:
    """File name → text for index.html and the seed's Markdown artifacts."""
    env = _environment()
    out = {"index.html": env.get_template("index.html.j2").render(context)}
    env = _markdown(env)
    files = context["files"]
    if files["notes"]:
        out[files["notes"]] = env.get_template("notes.md.j2").render(context)
        out[files["cost"]] = env.get_template("cost.md.j2").render(context)
    if files["best_practices"]:
        out[files["best_practices"]] = env.get_template("best_practices.md.j2").render(context)
    return out


def _all_plots(context: dict[str, Any]) -> list[plots.Plot]:
    search = context["search"]["plots"] if context["search"] is not None else []
    return [*context["plots"], *search, *context["server_plots"]]


def write_report(a: Analysis, out_dir: Path) -> Path:
    """Write index.html, the seed's artifacts and the full tables as CSV; returns the index.html path."""
    context = build_context(a, _now())
    for name, table in seed_tables(a).items():
        write_csv_atomic(out_dir / name, table)
    if context["load"]:
        write_csv_atomic(out_dir / "capacity.csv", a.run.capacity[CAPACITY_COLUMNS])
        write_csv_atomic(out_dir / "cost.csv", a.cost)
        write_csv_atomic(out_dir / "slo.csv", a.slo)
        write_csv_atomic(out_dir / "roofline.csv", a.roofline)
    if context["search"] is not None:
        write_csv_atomic(out_dir / CAPACITY_SEARCH_CSV, context["search"]["table"])
    if len(a.compare):
        write_csv_atomic(out_dir / "comparison.csv", a.compare)
    if a.quality is not None:
        write_csv_atomic(out_dir / "quality_summary.csv", a.quality.summary)
        write_csv_atomic(out_dir / "quality_prompts.csv", a.quality.prompts[PROMPT_COLUMNS])
        write_csv_atomic(out_dir / "quality_cost.csv", a.quality.adjusted_cost)
    if a.whatif is not None:
        write_csv_atomic(out_dir / "whatif.csv", a.whatif.cells)
        write_csv_atomic(out_dir / "whatif_params.csv", a.whatif.params)
    for plot in _all_plots(context):
        write_text_atomic(out_dir / PLOTS_DIR / plot.file_name, plot.svg)
    rendered = render(context)
    for name, text in rendered.items():
        if name != "index.html":
            write_text_atomic(out_dir / name, text)
    return write_text_atomic(out_dir / "index.html", rendered["index.html"])  # last: its presence means done
