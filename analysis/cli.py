"""`python -m analysis`: reduce runs into capacity, comparison, cost and SLO tables, and reports."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
import pandas as pd

from analysis.adequacy import DEFAULT_THRESHOLDS, AdequacyThresholds
from analysis.bundle import Options, analyse
from analysis.catalog import parse_model_bytes_flags, parse_price_flags, parse_weight_flags
from analysis.cost import HEADLINES, Headline, parse_cell
from analysis.errors import InputError
from analysis.loading import default_report_dir
from analysis.run import load_run
from analysis.slo import SloSpec
from analysis.tables import capacity_from_paths
from analysis.textformat import terminal_table
from analysis.writing import write_csv_atomic, write_text_atomic
from runformat.layout import QUALITY_DIR, QUALITY_MANIFEST

__all__ = ["main"]


def input_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input → one clear line on stderr and exit code 2 (no traceback)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def emit(table: pd.DataFrame, output: Path | None, digits: int = 1) -> None:
    """CSV to a file (atomically) when -o is given, else a readable table on stdout."""
    if output is not None:
        write_csv_atomic(output, table)
        click.echo(f"wrote {output} ({len(table)} rows)", err=True)
    else:
        with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_rows", 500):
            click.echo(terminal_table(table, digits))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Turn load-test runs into capacity tables, comparisons, $/1M-token costs and reports."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN_DIR_OR_CSV_PREFIX...")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write CSV here.")
@input_errors
def capacity(paths: tuple[Path, ...], output: Path | None) -> None:
    """One row per cell: throughput, latency percentiles, TTFT/TPOT/ITL, errors, client health.

    Grid run directories give exact figures from request logs (source=request_log); a plain Locust --csv
    prefix gives approximate ones from Locust's rounded stats (source=locust_csv).
    """
    emit(capacity_from_paths(list(paths)), output)


def _run_arg(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("run_dir", type=click.Path(path_type=Path), metavar="RUN")(func)


def _price_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--prices",
            "prices_file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="GPU/model catalog TOML to use instead of the shipped analysis/gpu_catalog.toml.",
        ),
        click.option(
            "--price",
            "price_flags",
            multiple=True,
            metavar="LABEL=USD_PER_HOUR",
            help="Hourly price for one target; beats the scenario's and the catalog's. Repeatable.",
        ),
        click.option(
            "--utilization",
            type=float,
            default=1.0,
            show_default=True,
            help="Share of each hour the GPU serves this load (0–1].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _cell(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        return parse_cell(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def _reference_cell_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--chat-cell/--batch-cell: the decision summary's reference cells; they reach the command as `headlines`."""
    chat, batch = HEADLINES
    options = [
        click.option(
            "--chat-cell",
            default=f"{chat.concurrency}x{chat.max_new_tokens}",
            show_default=True,
            metavar="CONCxTOKENS",
            callback=_cell,
            help="Chat reference cell (concurrency x max_new_tokens); the nearest tested cell when not run.",
        ),
        click.option(
            "--batch-cell",
            default=f"{batch.concurrency}x{batch.max_new_tokens}",
            show_default=True,
            metavar="CONCxTOKENS",
            callback=_cell,
            help="Batch reference cell (concurrency x max_new_tokens); the nearest tested cell when not run.",
        ),
    ]

    @wraps(func)
    def wrapper(*args: Any, chat_cell: tuple[int, int], batch_cell: tuple[int, int], **kwargs: Any) -> Any:
        headlines = (
            Headline(chat.title, chat.workload, *chat_cell),
            Headline(batch.title, batch.workload, *batch_cell),
        )
        return func(*args, headlines=headlines, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _adequacy_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Thresholds of the adequacy checks (METRICS.md); they reach the command as `adequacy=AdequacyThresholds`."""
    d = DEFAULT_THRESHOLDS
    options = [
        click.option(
            "--min-window-lifetimes",
            type=float,
            default=d.min_window_lifetimes,
            show_default=True,
            help="A cell's steady window must last this many times its p95 end-to-end latency.",
        ),
        click.option(
            "--min-requests",
            type=int,
            default=d.min_requests,
            show_default=True,
            help="Completed requests a cell's window must hold.",
        ),
        click.option(
            "--max-ci-pct",
            type=float,
            default=d.max_ci_pct,
            show_default=True,
            help="Widest acceptable 95% CI half-width of throughput and p95, in % of the value.",
        ),
    ]

    @wraps(func)
    def wrapper(*args: Any, min_window_lifetimes: float, min_requests: int, max_ci_pct: float, **kwargs: Any) -> Any:
        if min_window_lifetimes < 0 or min_requests < 0 or max_ci_pct <= 0:
            raise InputError("--min-window-lifetimes and --min-requests must be >= 0, --max-ci-pct > 0")
        th = AdequacyThresholds(
            min_window_lifetimes=min_window_lifetimes, min_requests=min_requests, max_ci_pct=max_ci_pct
        )
        return func(*args, adequacy=th, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _label_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--candidate", help="Target label of the candidate (default: a QUANT/AWQ/FP8/INT label).")(func)
    return click.option("--baseline", help="Target label of the baseline (default: a BF16 label).")(func)


def _output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write CSV here.")(func)


@main.command()
@_run_arg
@_label_options
@click.option(
    "--p95-threshold-pct",
    type=float,
    default=20.0,
    show_default=True,
    help="Flag a latency blow-up when the candidate's p95 (end-to-end, TTFT or TPOT) is significantly higher by "
    "more than this.",
)
@click.option(
    "--throughput-drop-pct",
    type=float,
    default=5.0,
    show_default=True,
    help="Flag a throughput regression when the candidate is significantly slower by more than this.",
)
@_price_options
@_output_option
@input_errors
@_adequacy_options
def compare(
    run_dir: Path,
    baseline: str | None,
    candidate: str | None,
    p95_threshold_pct: float,
    throughput_drop_pct: float,
    prices_file: Path | None,
    price_flags: tuple[str, ...],
    utilization: float,
    output: Path | None,
    adequacy: AdequacyThresholds,
) -> None:
    """Baseline vs candidate per workload × concurrency × max_new_tokens: values, % change with 95% CI, verdicts.

    A change is "significant" when its CI excludes 0, "not distinguishable" otherwise, and "inconclusive"
    when a cell is inadequate (see its adequacy column). Flags are raised only for significant changes.
    """
    opts = Options(
        adequacy=adequacy,
        baseline=baseline,
        candidate=candidate,
        catalog_path=prices_file,
        prices=parse_price_flags(price_flags),
        utilization=utilization,
        p95_threshold_pct=p95_threshold_pct,
        throughput_drop_pct=throughput_drop_pct,
    )
    a = analyse(load_run(run_dir), opts, need_pair=True)
    click.echo(f"baseline {a.baseline} vs candidate {a.candidate}", err=True)
    emit(a.compare, output)


@main.command()
@_run_arg
@_price_options
@_label_options
@_output_option
@input_errors
@_reference_cell_options
def cost(
    run_dir: Path,
    prices_file: Path | None,
    price_flags: tuple[str, ...],
    utilization: float,
    baseline: str | None,
    candidate: str | None,
    output: Path | None,
    headlines: tuple[Headline, ...],
) -> None:
    """$/1M tokens for the chat sweet spot (conc 16, 128 tokens), batch (conc 32, 256) and every other cell."""
    opts = Options(
        baseline=baseline,
        candidate=candidate,
        catalog_path=prices_file,
        prices=parse_price_flags(price_flags),
        utilization=utilization,
        headlines=headlines,
    )
    from analysis.report import cost_text  # matplotlib and jinja2 load only for commands that render

    a = analyse(load_run(run_dir), opts)
    click.echo(cost_text(a))
    if output is not None:
        emit(a.cost, output)


@main.command()
@_run_arg
@click.option("--p95-ms", type=float, required=True, help="Bound on p95 end-to-end latency (ms).")
@click.option("--ttft-p95-ms", type=float, help="Bound on TTFT p95 (ms); no bound when omitted.")
@click.option("--max-error-rate", type=float, default=0.01, show_default=True, help="Highest acceptable error rate.")
@_price_options
@_output_option
@input_errors
def slo(
    run_dir: Path,
    p95_ms: float,
    ttft_p95_ms: float | None,
    max_error_rate: float,
    prices_file: Path | None,
    price_flags: tuple[str, ...],
    utilization: float,
    output: Path | None,
) -> None:
    """Per target × workload: the highest tested concurrency meeting the SLO, its tok/s, $/1M and goodput."""
    opts = Options(
        catalog_path=prices_file,
        prices=parse_price_flags(price_flags),
        utilization=utilization,
        slo=SloSpec(p95_ms, ttft_p95_ms, max_error_rate),
    )
    a = analyse(load_run(run_dir), opts)
    click.echo(f"SLO: {opts.slo.describe()}", err=True)
    emit(a.slo, output)


def _quality_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--reference",
            help="Target label whose outputs are the reference.  [default: the quality pass's reference]",
        ),
        click.option(
            "--threshold",
            type=float,
            help="Acceptance: ROUGE-L F1 vs the reference at or above this (a heuristic).  "
            "[default: the scenario's [quality] threshold, else 0.8]",
        ),
        click.option("--worst", "worst_n", type=int, default=5, show_default=True, help="Worst examples per target."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@_run_arg
@_quality_options
@_price_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the per-prompt table (without texts) as CSV here.",
)
@input_errors
def quality(
    run_dir: Path,
    reference: str | None,
    threshold: float | None,
    worst_n: int,
    prices_file: Path | None,
    price_flags: tuple[str, ...],
    utilization: float,
    output: Path | None,
) -> None:
    """Output drift of every target vs the reference, from RUN/quality (the quality pass's outputs).

    Per target × workload × max_new_tokens: exact-match rate, first divergence token, token agreement,
    ROUGE-L F1, length ratio, Δ mean logprob and perplexity ratio, acceptance and quality-adjusted $/1M.
    """
    from analysis.quality import PROMPT_COLUMNS, load_quality, summarize_quality

    data = load_quality(run_dir)
    if data is None:
        raise InputError(
            f"{run_dir}: no quality pass (expected {run_dir / QUALITY_DIR / QUALITY_MANIFEST}); "
            "run: python -m loadgen quality SCENARIO --run-dir RUN"
        )
    if worst_n < 0:
        raise InputError(f"--worst must be >= 0, got {worst_n}")
    cost = _cost_or_empty(run_dir, prices_file, price_flags, utilization)
    q = summarize_quality(data, cost, reference, threshold, worst_n)
    click.echo(f"reference {q.reference}; {q.note}", err=True)
    emit(q.summary, None, digits=3)
    for row in q.worst.itertuples(index=False):
        click.echo(
            f"\n--- {row.target_label} {row.prompt_id} m{row.max_new_tokens}: ROUGE-L F1 {row.rouge_l_f1:.3f}, "
            f"first divergence at token {row.first_divergence_token}"
        )
        click.echo(f"reference: {row.reference_text!r}\n{row.target_label}: {row.target_text!r}")
    if len(q.adjusted_cost):
        click.echo("")
        emit(q.adjusted_cost, None, digits=4)
    if output is not None:
        emit(q.prompts[PROMPT_COLUMNS], output)


def _whatif_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--whatif-gpu",
        "whatif_gpus",
        multiple=True,
        metavar="GPU",
        help="Add an 'On other GPUs (projected)' section for this catalog GPU (e.g. a100-80gb). Repeatable.",
    )(func)


def _cost_or_empty(
    run_dir: Path, prices_file: Path | None, price_flags: tuple[str, ...], utilization: float
) -> pd.DataFrame:
    """The run's cost table; empty when the run has no load cells (a quality pass on its own)."""
    from analysis.cost import COST_COLUMNS

    try:
        run = load_run(run_dir)
    except InputError:
        return pd.DataFrame(columns=COST_COLUMNS)
    opts = Options(catalog_path=prices_file, prices=parse_price_flags(price_flags), utilization=utilization)
    return analyse(run, opts).cost


@main.command()
@_run_arg
@click.option(
    "-o", "--out-dir", type=click.Path(path_type=Path, file_okay=False), help="Report directory.  [default: RUN/report]"
)
@_label_options
@_price_options
@click.option(
    "--weights-gb",
    "weight_flags",
    multiple=True,
    metavar="LABEL=GB",
    help="Model weight size for the roofline when the catalog does not know the served model. Repeatable.",
)
@click.option("--slo-p95-ms", type=float, default=10_000.0, show_default=True, help="SLO bound on p95 latency (ms).")
@click.option("--slo-ttft-p95-ms", type=float, default=2_000.0, show_default=True, help="SLO bound on TTFT p95 (ms).")
@click.option("--p95-threshold-pct", type=float, default=20.0, show_default=True, help="p95 blow-up flag threshold.")
@_quality_options
@_whatif_option
@input_errors
@_adequacy_options
@_reference_cell_options
def report(
    run_dir: Path,
    out_dir: Path | None,
    baseline: str | None,
    candidate: str | None,
    prices_file: Path | None,
    price_flags: tuple[str, ...],
    utilization: float,
    weight_flags: tuple[str, ...],
    slo_p95_ms: float,
    slo_ttft_p95_ms: float,
    p95_threshold_pct: float,
    reference: str | None,
    threshold: float | None,
    worst_n: int,
    whatif_gpus: tuple[str, ...],
    adequacy: AdequacyThresholds,
    headlines: tuple[Headline, ...],
) -> None:
    """Write RUN/report/index.html (PREFIX_report/ for a Locust CSV prefix; self-contained) and the seed's
    CSV/Markdown artifacts; prints the path."""
    opts = Options(
        baseline=baseline,
        candidate=candidate,
        catalog_path=prices_file,
        prices=parse_price_flags(price_flags),
        weights_gb=parse_weight_flags(weight_flags),
        utilization=utilization,
        p95_threshold_pct=p95_threshold_pct,
        slo=SloSpec(slo_p95_ms, slo_ttft_p95_ms),
        quality_reference=reference,
        similarity_threshold=threshold,
        worst_n=worst_n,
        adequacy=adequacy,
        whatif_gpus=whatif_gpus,
        headlines=headlines,
    )
    from analysis.report import write_report  # matplotlib and jinja2 load only for commands that render

    a = analyse(load_run(run_dir), opts)
    click.echo(write_report(a, out_dir or default_report_dir(run_dir)))


@main.command()
@_run_arg
@click.option(
    "--gpu", "gpus", multiple=True, metavar="GPU", help="Catalog GPU to project onto, e.g. a100-80gb. Repeatable."
)
@click.option(
    "--model-bytes",
    "model_flags",
    multiple=True,
    metavar="LABEL=GB",
    help="Weights read per step (GB) for a target, when its model's weight format differs from the profile's.",
)
@_price_options
@_label_options
@_output_option
@input_errors
def whatif(
    run_dir: Path,
    gpus: tuple[str, ...],
    model_flags: tuple[str, ...],
    prices_file: Path | None,
    price_flags: tuple[str, ...],
    utilization: float,
    baseline: str | None,
    candidate: str | None,
    output: Path | None,
) -> None:
    """How would RUN's cells change on other GPUs? Projected, never measured (docs/WHATIF.md).

    Fits the step-time model's efficiency terms (bandwidth, compute, per-step overhead) to each target's
    cells, then projects every cell onto each --gpu: throughput, TPOT, TTFT, KV-limited concurrency and
    $/1M tokens at the catalog price, with a 95 % band. Needs cells at two or more concurrencies per target.
    """
    from analysis.catalog import load_catalog
    from analysis.report import whatif_text

    if not gpus:
        known = ", ".join(load_catalog(prices_file).gpus)
        raise InputError(f"name at least one GPU to project onto with --gpu; known GPUs: {known}")
    opts = Options(
        baseline=baseline,
        candidate=candidate,
        catalog_path=prices_file,
        prices=parse_price_flags(price_flags),
        utilization=utilization,
        whatif_gpus=gpus,
        model_weight_gb=parse_model_bytes_flags(model_flags),
    )
    a = analyse(load_run(run_dir), opts)
    click.echo(whatif_text(a))
    if output is not None and a.whatif is not None:
        emit(a.whatif.cells, output)


@main.command()
@click.argument("baseline_run", type=click.Path(path_type=Path), metavar="BASELINE_RUN")
@click.argument("candidate_run", type=click.Path(path_type=Path), metavar="CANDIDATE_RUN")
@click.option("--max-throughput-drop-pct", type=float, default=5.0, show_default=True, help="Largest tolerated drop.")
@click.option("--max-p95-rise-pct", type=float, default=10.0, show_default=True, help="Largest tolerated p95 rise.")
@click.option(
    "--max-ttft-p95-rise-pct", type=float, default=10.0, show_default=True, help="Largest tolerated TTFT p95 rise."
)
@click.option("--fail-on-inconclusive", is_flag=True, help="Also exit 1 when a matched cell is inadequate.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the result here: Markdown (.md) or JSON (.json), by suffix.",
)
@_adequacy_options
def gate(
    baseline_run: Path,
    candidate_run: Path,
    max_throughput_drop_pct: float,
    max_p95_rise_pct: float,
    max_ttft_p95_rise_pct: float,
    fail_on_inconclusive: bool,
    output: Path | None,
    adequacy: AdequacyThresholds,
) -> None:
    """Did CANDIDATE_RUN regress against BASELINE_RUN? Exit 1 only for a significant breach of a threshold.

    Cells are matched by target label × workload × concurrency × max_new_tokens, and open-loop cells also by
    offered rate (their concurrency is the pool of users). A breach is a change whose
    95% CI excludes 0 and whose estimate passes the threshold; inadequate cells are inconclusive. Exit codes:
    0 pass, 1 regression, 2 bad input.
    """
    from analysis.adequacy import judge_adequacy
    from analysis.gate import GateThresholds, gate_exit_code, gate_json, gate_markdown, gate_table

    try:
        if output is not None and output.suffix not in (".md", ".json"):
            raise InputError(f"{output}: -o must end in .md or .json")
        th = GateThresholds(max_throughput_drop_pct, max_p95_rise_pct, max_ttft_p95_rise_pct)
        base = judge_adequacy(load_run(baseline_run).capacity, adequacy)
        cand = judge_adequacy(load_run(candidate_run).capacity, adequacy)
        table = gate_table(base, cand, th)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    code = gate_exit_code(table, fail_on_inconclusive)
    text = gate_markdown(table, th, code)
    click.echo(text)
    if output is not None:
        write_text_atomic(output, gate_json(table, th, code) if output.suffix == ".json" else text)
        click.echo(f"wrote {output}", err=True)
    sys.exit(code)
