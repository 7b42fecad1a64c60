"""`python -m loadgen search`: find the most users each target holds under SLOs, and price it.

The command wires the pieces: the scenario and flags make a `SearchPlan`, `SearchRunner` runs probe cells.
Judging a probe and writing `capacity_search.csv` are analysis's; `orchestrator.cli` passes them in
(`search_command(judge, write_table)`), so this module never imports analysis.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from orchestrator.grid import GridRunner, new_run_dir, resolve_locustfile
from orchestrator.runlock import RunLocked, hold_run_lock
from orchestrator.runrecord import record_target_urls, recorded_target_urls
from orchestrator.scenario import DEFAULT_POOL, Scenario, ScenarioError, SearchConfig, load_scenario, with_target_urls
from orchestrator.search import PlanError, ProbeResult, SearchPlan
from orchestrator.searchrun import SearchInterrupted, SearchRunner, search_lines
from orchestrator.targets import PreflightError
from runformat.search import SEARCH_FILE, Over, Slo, SloError, parse_slo

__all__ = ["search_command"]

Judge = Callable[[Path, tuple[Slo, ...]], ProbeResult]  # a probe cell directory, the SLOs -> its verdict
WriteTable = Callable[[Path], Path]  # RUN -> RUN/capacity_search.csv

DEFAULT_OUT = Path("reports/runs")
_PLAN_DEFAULTS = SearchPlan()


def _plan(
    config: SearchConfig, over: str | None, max_load: float | None, start: float | None, pool: int | None
) -> SearchPlan:
    """Flags over the scenario's [search] table over SearchPlan's defaults."""
    chosen = Over(over) if over else (config.over or _PLAN_DEFAULTS.over)
    first = start if start is not None else (config.start or _PLAN_DEFAULTS.start)
    return SearchPlan(
        over=chosen,
        start=first,
        max_load=max_load if max_load is not None else (config.max_load or _PLAN_DEFAULTS.max_load),
        resolution_pct=config.resolution_pct if config.resolution_pct is not None else _PLAN_DEFAULTS.resolution_pct,
        min_step=config.min_step or (_PLAN_DEFAULTS.min_step if chosen is Over.CONCURRENCY else 0.1),
        max_attempts=config.max_attempts or _PLAN_DEFAULTS.max_attempts,
        knee_gain_pct=config.knee_gain_pct if config.knee_gain_pct is not None else _PLAN_DEFAULTS.knee_gain_pct,
        pool=pool if pool is not None else config.pool,
    )


def _load(load: float | None) -> str:
    return "—" if load is None else f"{load:g}"


def _resume(run_dir: Path) -> tuple[Scenario, tuple[Slo, ...], SearchPlan, dict[str, str]]:
    try:
        record = json.loads((run_dir / SEARCH_FILE).read_text())
        scenario = load_scenario(run_dir / "scenario.toml")
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{run_dir}: not a search run directory ({exc})") from exc
    plan = dict(record["plan"], over=Over(record["plan"]["over"]))
    name = run_dir.name.rsplit("-", 1)[0]
    slos = tuple(parse_slo(s) for s in record["slos"])
    return dataclasses.replace(scenario, name=name), slos, SearchPlan(**plan), dict(record.get("only") or {})


def search_command(judge: Judge, write_table: WriteTable) -> click.Command:
    """The `search` command, judging probes with `judge` and writing the table with `write_table`."""

    @click.command("search")
    @click.argument(
        "scenario_path", metavar="SCENARIO", required=False, type=click.Path(path_type=Path, dir_okay=False)
    )
    @click.option(
        "--slo",
        "slo_texts",
        multiple=True,
        metavar="METRIC<=BOUND",
        help="An SLO every probe must meet, e.g. 'ttft_p95_ms<=1500' (metrics: p95_latency_ms, ttft_p95_ms, "
        "tpot_p95_ms, error_rate); repeat for several. Adds to the scenario's [search].slo.",
    )
    @click.option(
        "--over",
        type=click.Choice([o.value for o in Over]),
        default=None,
        help=f"What to search over (default: [search].over, else {_PLAN_DEFAULTS.over}).",
    )
    @click.option(
        "--max",
        "max_load",
        type=float,
        default=None,
        help=f"Highest load to probe (default: [search].max, else {_PLAN_DEFAULTS.max_load:g}).",
    )
    @click.option(
        "--start",
        type=float,
        default=None,
        help=f"First load probed (default: [search].start, else {_PLAN_DEFAULTS.start:g}).",
    )
    @click.option(
        "--pool",
        type=click.IntRange(min=1),
        default=None,
        help="Rate search: users that can have a request in flight; an arrival finding all busy is dropped and "
        f"fails the probe (default: [search].pool, else the workload's concurrency when it has rates, else "
        f"{DEFAULT_POOL}).",
    )
    @click.option(
        "--only", multiple=True, metavar="KEY=VALUE", help="Search a subset: target, workload, max_new_tokens."
    )
    @click.option(
        "--target-url",
        "target_urls",
        multiple=True,
        metavar="LABEL=URL",
        help="Point a scenario target at another base URL.",
    )
    @click.option(
        "--out",
        "out_dir",
        type=click.Path(path_type=Path),
        default=DEFAULT_OUT,
        show_default=True,
        help="Folder that receives the run directory.",
    )
    @click.option(
        "--resume",
        "resume_dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="Continue an interrupted search: finished probe cells are read back, not re-run.",
    )
    def search(
        scenario_path: Path | None,
        slo_texts: tuple[str, ...],
        over: str | None,
        max_load: float | None,
        start: float | None,
        pool: int | None,
        only: tuple[str, ...],
        target_urls: tuple[str, ...],
        out_dir: Path,
        resume_dir: Path | None,
    ) -> None:
        """For each target × workload × max_new_tokens of SCENARIO, find the highest load whose cell meets every
        SLO: probe the start load, double while it passes, then bisect to the resolution ([search].resolution_pct,
        default 10% of the passing load, at least min_step: 1 user). A probe whose 95% CI straddles an SLO is
        re-run twice as long (up to max_attempts, default 3; still undecided counts as failing). Stops on the
        knee, on errors or at --max. --over rate probes open-loop cells at an offered req/s (resolution at least
        min_step: 0.1 req/s); a probe that drops arrivals (not `sustained`) fails. Writes RUN/search.json and
        RUN/capacity_search.csv; `python -m analysis report RUN` shows them priced.
        """
        from orchestrator.cli import _parse_pairs  # the grid command's KEY=VALUE parser (cli imports this module)

        console = Console(stderr=True)

        def log(text: str) -> None:
            console.print(text, markup=False, soft_wrap=True)

        recorded_only: dict[str, str] = {}
        try:
            if resume_dir is not None:
                scenario, slos, plan, recorded_only = _resume(resume_dir)
                scenario = with_target_urls(scenario, recorded_target_urls(resume_dir))
            elif scenario_path is None:
                raise ScenarioError("give a SCENARIO (e.g. scenarios/smoke.toml) or --resume RUN_DIR")
            else:
                scenario = load_scenario(scenario_path)
                slos = (*scenario.search.slos, *(parse_slo(t) for t in slo_texts))
                plan = _plan(scenario.search, over, max_load, start, pool)
            scenario = with_target_urls(scenario, _parse_pairs(target_urls, "--target-url"))
            if not slos:
                raise ScenarioError("no SLO given: pass --slo 'METRIC<=BOUND' or set [search].slo in the scenario")
            only_pairs = _parse_pairs(only, "--only") or recorded_only  # a resume keeps the subset it ran
            lines = search_lines(scenario, only_pairs)
            for workload in scenario.workloads:
                resolve_locustfile(workload.locustfile)
        except (ScenarioError, SloError, PlanError, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        if not lines:
            click.echo("error: no target × workload × max_new_tokens matches --only", err=True)
            sys.exit(2)
        runner = GridRunner(scenario, resume_dir or out_dir)
        try:
            runner.preflight()
        except PreflightError as exc:  # a target that does not answer; nothing started
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        run_dir = resume_dir if resume_dir else new_run_dir(out_dir, scenario)
        runner.run_dir = run_dir
        searcher = SearchRunner(runner, plan, slos, lambda cell_dir: judge(cell_dir, slos), log, only=only_pairs)
        try:
            with hold_run_lock(run_dir):
                if resume_dir is None:
                    (run_dir / "scenario.toml").write_text(scenario.source_text)
                record_target_urls(run_dir, {t.label: t.url for t in scenario.targets}, {})
                previous: Any = signal.signal(signal.SIGINT, lambda *_: runner.interrupt())
                try:
                    results = searcher.run(lines)
                finally:
                    signal.signal(signal.SIGINT, previous)
        except RunLocked as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except SearchInterrupted:
            log(f"interrupted; continue with: python -m loadgen search --resume {run_dir}")
            print(run_dir)
            sys.exit(130)
        try:
            table_path = write_table(run_dir)
        except Exception as exc:  # analysis's InputError: a run it cannot read
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        log(f"capacity under SLO: {table_path}")
        for line in searcher.record["lines"]:
            r = line["result"]
            log(
                f"  {line['target_label']} / {line['workload']} / {line['max_new_tokens']} tok: "
                f"{'no capacity' if r['capacity'] is None else format(r['capacity'], 'g') + ' ' + plan.unit} "
                f"[{_load(r['passing_load'])}, {_load(r['failing_load'])}] binding {r['binding'] or '—'}; "
                f"{r['stop_reason']}; "
                f"{len(line['probes'])} probes, {r['elapsed_s'] / 60:.1f} min"
            )
        print(run_dir)
        if all(r.capacity is None for r in results):
            failing = ", ".join(sorted({line["target_label"] for line in searcher.record["lines"]}))
            click.echo(
                f"error: no capacity: {failing} fail(s) {' and '.join(s.text for s in slos)} at every probe", err=True
            )
            sys.exit(2)

    return search
