"""`python -m loadgen`: the grid runner's command line (and the seed's GPU_NAME/OUT_CSV/URL interface)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadgen.datasets import load_dataset
from loadgen.workloads import WorkloadError, load_texts
from orchestrator.grid import CellResult, GridRunner, LiveStatus, new_run_dir, resolve_locustfile, unfinished_cells
from orchestrator.gridlive import eta_s
from orchestrator.quality import build_prompts, run_quality
from orchestrator.runlock import RunLocked, hold_run_lock
from orchestrator.runrecord import (
    record_grid_overrides,
    record_target_urls,
    recorded_grid_overrides,
    recorded_target_urls,
)
from orchestrator.scenario import (
    Cell,
    GridOverrides,
    Scenario,
    ScenarioError,
    expand,
    load_scenario,
    parse_users,
    with_overrides,
    with_target_urls,
)
from orchestrator.search import ProbeResult
from orchestrator.searchcli import search_command
from orchestrator.seedenv import SEED_ENV_HELP, scenario_from_env
from orchestrator.targets import PreflightError
from runformat.layout import CellStatus
from runformat.search import Slo

__all__ = ["main"]

DEFAULT_OUT = Path("reports/runs")
F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Load-test LLM servers that speak the OpenAI API (vLLM and others) with Locust."""


def _parse_pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise click.BadParameter(f"'{item}': expected KEY=VALUE", param_hint=option)
        pairs[key.strip()] = value.strip()
    return pairs


def _describe(cell: Cell) -> str:
    return f"{cell.target.label} / {cell.workload.name} / {cell.users} users / {cell.max_new_tokens} tok"


def _out_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--out", "out_dir", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True, help=help_text
    )


_target_url_option = click.option(
    "--target-url",
    "target_urls",
    multiple=True,
    metavar="LABEL=URL",
    help="Point a scenario target at another base URL (e.g. another host or port); recorded in the run.",
)


def _grid_override_options(func: F) -> F:
    for option in reversed(
        (
            click.option(
                "--duration",
                "duration_s",
                type=float,
                help='Seconds per cell, replacing duration_s (and a duration_s = "auto" stopping rule).',
            ),
            click.option("--warmup", "warmup_s", type=float, help="Warm-up seconds per cell, replacing warmup_s."),
            click.option(
                "--users",
                metavar="N[,N...]",
                help="Concurrency of every workload (an open-loop workload's pool), replacing the grid's.",
            ),
            click.option("--spawn-rate", type=float, help="Users started per second, replacing spawn_rate."),
        )
    ):
        func = option(func)
    return func


def _grid_overrides(
    resume_dir: Path | None,
    duration_s: float | None,
    warmup_s: float | None,
    users: str | None,
    spawn_rate: float | None,
) -> GridOverrides:
    """This invocation's grid flags over those the run recorded (a resume keeps what the run began with)."""
    given = GridOverrides(duration_s, warmup_s, parse_users(users) if users is not None else None, spawn_rate)
    recorded = recorded_grid_overrides(resume_dir) if resume_dir is not None else {}
    return GridOverrides.from_recorded({**recorded, **given.recorded()})


@main.command(
    help="Run every cell of SCENARIO (a scenarios/*.toml file), one headless Locust process per cell.\n\n"
    "Without SCENARIO the seed's environment interface is used: " + SEED_ENV_HELP
)
@click.argument("scenario_path", metavar="SCENARIO", required=False, type=click.Path(path_type=Path))
@_out_option("Folder that receives the run directory.")
@click.option(
    "--only",
    multiple=True,
    metavar="KEY=VALUE",
    help="Run a subset: target, workload, users, max_new_tokens, repeat (comma lists allowed).",
)
@_target_url_option
@click.option("--dry-run", is_flag=True, help="Print the cells and their Locust commands; start nothing.")
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Finish an interrupted run: only cells without a COMPLETE marker run again.",
)
@_grid_override_options
def grid(
    scenario_path: Path | None,
    out_dir: Path,
    only: tuple[str, ...],
    target_urls: tuple[str, ...],
    dry_run: bool,
    resume_dir: Path | None,
    duration_s: float | None,
    warmup_s: float | None,
    users: str | None,
    spawn_rate: float | None,
) -> None:
    console = Console(stderr=True)
    try:
        scenario, out_csv = _load(scenario_path, resume_dir)
        overrides = _parse_pairs(target_urls, "--target-url")
        if resume_dir is not None:  # the servers the run measured, unless this resume says otherwise
            scenario = with_target_urls(scenario, recorded_target_urls(resume_dir))
        scenario = with_target_urls(scenario, overrides)
        settings = _grid_overrides(resume_dir, duration_s, warmup_s, users, spawn_rate)
        scenario = with_overrides(scenario, settings)
        cells = expand(scenario, _parse_pairs(only, "--only"))
        for workload in scenario.workloads:
            resolve_locustfile(workload.locustfile)
        _check_prompt_sources(scenario)
        if scenario.quality.enabled:
            build_prompts(scenario)  # a bad prompt source stops the run before any cell, not after all of them
    except ScenarioError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if not cells:
        click.echo("error: no cells match (check --only)", err=True)
        sys.exit(2)
    if dry_run:
        _print_plan(scenario, cells)
        return
    runner = GridRunner(scenario, resume_dir or out_dir)
    if settings.recorded():
        runner.extra_metadata["grid_overrides"] = settings.recorded()
    try:
        runner.preflight()  # before a run directory exists: a run that cannot start leaves nothing behind
    except PreflightError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    run_dir = resume_dir if resume_dir else new_run_dir(out_dir, scenario)
    runner.run_dir = run_dir
    try:
        with hold_run_lock(run_dir):
            if resume_dir:
                cells = unfinished_cells(run_dir, cells)
                console.print(f"resuming {run_dir}: {len(cells)} unfinished cell(s)", markup=False, soft_wrap=True)
                for label, url in overrides.items():
                    console.print(f"target {label}: {url} (override recorded in run.json)", markup=False)
            else:
                (run_dir / "scenario.toml").write_text(scenario.source_text)
            record_target_urls(run_dir, {t.label: t.url for t in scenario.targets}, overrides)
            record_grid_overrides(run_dir, settings.recorded())
            if settings.recorded():
                console.print(f"scenario settings replaced: {_settings_text(settings)}", markup=False, soft_wrap=True)
            _finish_grid(runner, cells, console, out_csv)
    except RunLocked as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _settings_text(settings: GridOverrides) -> str:
    return ", ".join(f"{key} = {value}" for key, value in settings.recorded().items())


def _finish_grid(runner: GridRunner, cells: list[Cell], console: Console, out_csv: Path | None) -> None:
    scenario, run_dir = runner.scenario, runner.run_dir
    results = _run_with_progress(runner, cells, console)
    if scenario.quality.enabled and not runner.interrupted:
        _quality_pass(runner, console)
    failed = [r for r in results if r.status != CellStatus.COMPLETED]
    if len(failed) < len(results):
        _print_results(run_dir, console)
    console.print(f"run directory: {run_dir}", soft_wrap=True, markup=False)
    if out_csv is not None:
        from analysis.tables import seed_capacity_csv  # the orchestrator calls analysis only here and at the grid's end

        seed_capacity_csv(run_dir, out_csv)
        console.print(f"capacity CSV: {out_csv}", soft_wrap=True, markup=False)
    print(run_dir)
    if runner.interrupted:
        console.print(
            f"interrupted; finish with: python -m loadgen grid --resume {run_dir}", markup=False, soft_wrap=True
        )
        sys.exit(130)
    if failed:
        console.print(f"[red]{len(failed)} of {len(results)} cell(s) did not complete:[/]")
        for r in failed:
            console.print(f"  {_describe(r.cell)}: {r.status} {r.detail}", markup=False, soft_wrap=True)
        sys.exit(1)


def _cell_figures_text(figures: dict[str, Any] | None) -> str:
    """The cell's own end-of-run figures (whole run, warm-up included), from its Locust's JSON."""
    if not figures:
        return "no figures from the load generator"
    thr, req = figures["throughput"], figures["requests"]
    ttft = figures.get("ttft_ms", {}).get("median")
    ttft_text = f", TTFT p50 {ttft:,.0f} ms" if ttft is not None else ""
    return (
        f"{thr['throughput_tok_s']:,.1f} tok/s, {req['completed']} completed, {req['failed']} failed{ttft_text}"
        f" over {figures['window']['duration_s']:.0f} s"
    )


def _print_results(run_dir: Path, console: Console) -> None:
    """The per-cell table, RUN/results.json and the report hint (reduced by the analysis package)."""
    from analysis.results import end_of_grid

    try:
        lines = end_of_grid(run_dir)
    except Exception as exc:  # the cells are on disk either way: say why there is no table, keep the exit code
        lines = [f"no results table: {exc}", f"report: make report RUN={run_dir}"]
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)


def _check_prompt_sources(scenario: Scenario) -> None:
    """A workload's `docs` and `dataset` must load now, not in every cell's Locust after the run has started."""
    for workload in scenario.workloads:
        options = dict(workload.options)
        try:
            if options.get("docs"):
                load_texts(options["docs"])
            if options.get("dataset"):
                load_dataset(options["dataset"])
        except WorkloadError as exc:
            raise ScenarioError(f"workload '{workload.name}': {exc}") from exc


def _quality_pass(runner: GridRunner, console: Console) -> Path:
    alive = [t.label for t in runner.scenario.targets if runner.target_alive(t.label)]
    models = {label: runner.target_info[label].model for label in alive}

    def log(line: str) -> None:
        console.print(line, markup=False, soft_wrap=True)

    manifest = run_quality(runner.scenario, runner.run_dir, models, runner._headers, log)
    errors = json.loads(manifest.read_text())["errors"]
    log(f"quality: outputs in {manifest.parent} (failed requests per target: {errors})")
    return manifest


@main.command()
@click.argument("scenario_path", metavar="SCENARIO", type=click.Path(path_type=Path, dir_okay=False))
@_out_option("Folder that receives a new run directory (unless --run-dir is given).")
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write into RUN_DIR/quality of an existing run instead of a new run directory.",
)
@_target_url_option
def quality(scenario_path: Path, out_dir: Path, run_dir: Path | None, target_urls: tuple[str, ...]) -> None:
    """Send SCENARIO's seeded quality prompt set to every target and store the outputs (RUN/quality/).

    Uses the scenario's [quality] table (prompts, max_new_tokens, seed, concurrency, reference) whether or
    not it is enabled for `grid`. Compare the outputs with: python -m analysis quality RUN.
    """
    console = Console(stderr=True)
    try:
        scenario = with_target_urls(load_scenario(scenario_path), _parse_pairs(target_urls, "--target-url"))
        build_prompts(scenario)
    except ScenarioError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if run_dir is None:
        run_dir = new_run_dir(out_dir, scenario)
        (run_dir / "scenario.toml").write_text(scenario.source_text)
    runner = GridRunner(scenario, run_dir)
    try:
        runner.preflight()
    except PreflightError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    _quality_pass(runner, console)
    print(run_dir)


@main.command()
def options() -> None:
    """List the suite's Locust options (--max-new-tokens, --prompt-tokens, ...).

    `locust --help` prints before it imports a locustfile, so it cannot show them; they work on the locust
    command line, in locust.conf, as LOCUST_* environment variables and (most) in the web UI.
    """
    from locust.argument_parser import get_empty_argument_parser

    from loadgen.options import add_arguments

    parser = get_empty_argument_parser(add_help=False)
    add_arguments(parser)
    parser.print_help()


def _load(scenario_path: Path | None, resume_dir: Path | None) -> tuple[Scenario, Path | None]:
    if resume_dir is not None:
        stored = resume_dir / "scenario.toml"
        if not stored.exists():
            raise ScenarioError(f"{resume_dir}: not a run directory (no scenario.toml inside)")
        scenario = load_scenario(stored)
        # the stored copy is named scenario.toml; the run directory keeps the real name
        return dataclasses.replace(scenario, name=resume_dir.name.rsplit("-", 1)[0]), None
    if scenario_path is not None:
        return load_scenario(scenario_path), None
    if os.environ.get("URL"):
        return scenario_from_env(os.environ)
    raise ScenarioError("no SCENARIO given and no URL in the environment (try scenarios/smoke.toml)")


def _print_plan(scenario: Scenario, cells: list[Cell]) -> None:
    from orchestrator.grid import locust_command

    total_s = len(cells) * scenario.duration_s
    click.echo(f"scenario {scenario.name} ({scenario.digest}): {len(cells)} cell(s), ~{total_s / 60:.1f} min of load")
    click.echo(
        f"per cell: {scenario.duration_s:g} s, warm-up {scenario.warmup_s:g} s, spawn rate {scenario.spawn_rate:g}/s"
    )
    for cell in cells:
        click.echo(f"- {cell.relpath}: {_describe(cell)}")
        cmd = locust_command(scenario, cell, Path("<run>") / cell.relpath, cell.target.model or "<from /v1/models>")
        click.echo("    " + " ".join(cmd[2:]))


def _run_with_progress(runner: GridRunner, cells: list[Cell], console: Console) -> list[CellResult]:
    """A live bar on a terminal; plain start/finish lines (with ETA) when stderr is a file or a pipe."""
    total = len(cells)
    per_cell_s = runner.scenario.duration_s + 3.0  # start-up and drain, roughly
    done: list[CellResult] = []
    started_at: float | None = None
    progress = Progress(
        TextColumn("[bold]cells"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[eta]}"),
        TextColumn("{task.fields[live]}"),
        console=console,
        disable=not console.is_terminal,
    )
    task = progress.add_task("cells", total=total, live="", eta="")

    def eta_text() -> str:
        in_cell = time.monotonic() - started_at if started_at is not None else None
        left = eta_s(total - len(done), per_cell_s, in_cell)
        return f"ETA {int(left // 60)}:{int(left % 60):02d}"

    def on_progress(cell: Cell, live: LiveStatus) -> None:
        text = f"{_describe(cell)} | users {live.users} | in flight {live.in_flight}"
        rate = (
            f"{live.throughput_tok_s:,.0f} tok/s ({live.throughput_source})"
            if live.throughput_source
            else "tok/s: waiting"
        )
        ttft = f" | TTFT p50 {live.ttft_p50_ms:,.0f} ms" if live.ttft_p50_ms is not None else ""
        progress.update(
            task, eta=eta_text(), live=f"{text} | {rate} | done {live.requests} | fail {live.failures}{ttft}"
        )

    def on_start(cell: Cell) -> None:
        nonlocal started_at
        started_at = time.monotonic()
        if not console.is_terminal:
            eta = eta_s(total - len(done), per_cell_s, None)
            console.print(f"[{len(done) + 1}/{total}] running {_describe(cell)} (ETA {eta / 60:.1f} min)", markup=False)

    def on_done(result: CellResult) -> None:
        nonlocal started_at
        started_at = None
        done.append(result)
        if result.status == CellStatus.INTERRUPTED:
            progress.update(task, eta="interrupted", live="")
        else:
            progress.advance(task)
            progress.update(task, eta=eta_text())
        colour = "green" if result.status == CellStatus.COMPLETED else "red"
        progress.console.print(
            f"[{len(done)}/{total}] [{colour}]{result.status}[/] {escape(_describe(result.cell))} "
            f"({escape(_cell_figures_text(result.figures))}) " + escape(result.detail),
            soft_wrap=True,
        )

    runner.on_progress = on_progress
    runner.on_start = on_start
    previous: Any = signal.signal(signal.SIGINT, lambda *_: runner.interrupt())
    try:
        with progress:
            return runner.run(cells, on_done)
    finally:
        signal.signal(signal.SIGINT, previous)


def _judge_probe(cell_dir: Path, slos: tuple[Slo, ...]) -> ProbeResult:
    """A capacity-search probe judged by analysis from its cell's 95% CIs."""
    from analysis.slojudge import judge_cell

    judged, _ = judge_cell(cell_dir, slos)
    return ProbeResult(judged.outcome, judged.throughput_tok_s, judged.p95_latency_ms, judged.binding, judged.detail)


def _write_capacity_search(run_dir: Path) -> Path:
    from analysis.searchreport import write_capacity_search

    return write_capacity_search(run_dir)


main.add_command(search_command(_judge_probe, _write_capacity_search))
