"""Capacity search, the I/O: each probe is an ordinary grid cell in the run directory, and `search.json`
records the plan, the SLOs and every probe after each one (so `--resume` and the report can read it).

The decisions are `orchestrator.search`'s; judging a cell against the SLOs is passed in (`judge`), so this
module runs Locust processes and never reduces their output itself.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.grid import GridRunner
from orchestrator.scenario import DEFAULT_POOL, Cell, Scenario, Target, Workload
from orchestrator.search import Finished, ProbeResult, SearchPlan, run_search
from runformat.atomic import write_json_atomic
from runformat.layout import COMPLETE_MARKER, METADATA_FILE
from runformat.search import SEARCH_FILE, Over, Slo

__all__ = ["SearchInterrupted", "SearchLine", "SearchRunner", "attempt_scenario", "pool_size", "search_lines"]

Judge = Callable[[Path], ProbeResult]


class SearchInterrupted(Exception):
    """Ctrl-C during a probe: the search stops; `--resume` continues it."""


@dataclass(frozen=True)
class SearchLine:
    """One search: a target × workload × max_new_tokens."""

    target: Target
    workload: Workload
    max_new_tokens: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.target.label, self.workload.name, self.max_new_tokens)


def search_lines(scenario: Scenario, only: dict[str, str]) -> list[SearchLine]:
    """Every target × workload × max_new_tokens of the scenario, filtered by --only (target, workload,
    max_new_tokens)."""
    allowed = {"target", "workload", "max_new_tokens"}
    for key in only:
        if key not in allowed:
            raise ValueError(f"--only {key}=...: unknown key for a search (allowed: {', '.join(sorted(allowed))})")
    lines = [SearchLine(t, w, m) for t in scenario.targets for w in scenario.workloads for m in w.max_new_tokens]
    values = {"target": lambda s: s.target.label, "workload": lambda s: s.workload.name}
    values["max_new_tokens"] = lambda s: str(s.max_new_tokens)
    return [s for s in lines if all(values[k](s) in v.split(",") for k, v in only.items())]


def pool_size(plan: SearchPlan, workload: Workload) -> int:
    """Users a rate probe may have in flight: the plan's pool, the open-loop workload's largest, or the
    scenario default."""
    if plan.pool is not None:
        return plan.pool
    return max(workload.concurrency) if workload.rates and workload.concurrency else DEFAULT_POOL


def attempt_scenario(scenario: Scenario, attempt: int) -> Scenario:
    """Attempt k of a probe runs 2^(k−1) times longer: a fixed duration doubles; an auto cell gets double
    the cap, half the target CI, and must run at least as long as the previous attempt's cap."""
    if attempt <= 1:
        return scenario
    factor = 2.0 ** (attempt - 1)
    if not scenario.auto_duration:
        return dataclasses.replace(scenario, duration_s=scenario.duration_s * factor)
    return dataclasses.replace(
        scenario,
        duration_s=scenario.duration_s * factor,
        target_ci_pct=(scenario.target_ci_pct or 5.0) / factor,
        min_duration_s=max(scenario.min_duration_s, scenario.duration_s * factor / 2.0),
    )


@dataclass
class SearchRunner:
    """Runs the searches of one run directory, one line after another, recording as it goes."""

    runner: GridRunner
    plan: SearchPlan
    slos: tuple[Slo, ...]
    judge: Judge
    log: Callable[[str], None] = lambda _: None
    record: dict[str, Any] = dataclasses.field(default_factory=dict)
    only: dict[str, str] = dataclasses.field(default_factory=dict)  # the --only subset, kept for --resume

    def __post_init__(self) -> None:
        if not self.record:
            self.record = {
                "version": 1,
                "scenario": self.runner.scenario.name,
                "over": str(self.plan.over),
                "slos": [s.text for s in self.slos],
                "plan": {k: (str(v) if isinstance(v, Over) else v) for k, v in dataclasses.asdict(self.plan).items()},
                "started_at": datetime.now(UTC).isoformat(),
                "only": dict(self.only),
                "lines": [],
            }

    @property
    def path(self) -> Path:
        return self.runner.run_dir / SEARCH_FILE

    def cell(self, line: SearchLine, load: float) -> Cell:
        """A concurrency probe is a closed-loop cell of `load` users; a rate probe an open-loop cell offering
        `load` req/s over a pool of users (the plan's, else the workload's own when it has rates, else
        DEFAULT_POOL)."""
        if self.plan.over is Over.RATE:
            pool = pool_size(self.plan, line.workload)
            return Cell(line.target, line.workload, pool, line.max_new_tokens, 0, 1, rate=load)
        return Cell(line.target, line.workload, int(load), line.max_new_tokens, 0, 1)

    def _reusable(self, cell_dir: Path, attempt: int) -> bool:
        """A finished probe cell from an earlier (interrupted) search of this run, at this attempt or later."""
        if not (cell_dir / COMPLETE_MARKER).exists():
            return False
        try:
            meta = json.loads((cell_dir / METADATA_FILE).read_text())
        except (OSError, ValueError):
            return False
        return int((meta.get("search") or {}).get("attempt", 0)) >= attempt

    def probe(self, line: SearchLine, load: float, attempt: int) -> tuple[ProbeResult, dict[str, Any]]:
        cell = self.cell(line, load)
        cell_dir = self.runner.run_dir / cell.relpath
        reused = self._reusable(cell_dir, attempt)
        if not reused:
            base = self.runner.scenario
            self.runner.scenario = attempt_scenario(base, attempt)
            self.runner.extra_metadata = {"search": {"attempt": attempt, "over": str(self.plan.over), "load": load}}
            try:
                result = self.runner.run_cell(cell)
            finally:
                self.runner.scenario, self.runner.extra_metadata = base, {}
            if result.status == "interrupted":
                raise SearchInterrupted(str(cell.relpath))
        judged = self.judge(cell_dir)
        meta = json.loads((cell_dir / METADATA_FILE).read_text())
        entry = {
            "load": load,
            "attempt": attempt,
            "cell": cell.relpath.as_posix(),
            "outcome": str(judged.outcome),
            "binding": judged.binding,
            "throughput_tok_s": None if math.isnan(judged.throughput_tok_s) else judged.throughput_tok_s,
            "latency_ms": None if math.isnan(judged.latency_ms) else judged.latency_ms,
            "detail": judged.detail,
            "wall_s": meta.get("wall_s"),
            "reused": reused,
        }
        return judged, entry

    def run_line(self, line: SearchLine) -> Finished:
        entry: dict[str, Any] = {
            "target_label": line.target.label,
            "workload": line.workload.name,
            "max_new_tokens": line.max_new_tokens,
            "probes": [],
            "result": None,
        }
        self.record["lines"] = [
            e for e in self.record["lines"] if (e["target_label"], e["workload"], e["max_new_tokens"]) != line.key
        ] + [entry]
        t0 = time.monotonic()

        def probe(load: float, attempt: int) -> ProbeResult:
            self.log(
                f"{line.target.label} / {line.workload.name} / {line.max_new_tokens} tok: probe {load:g} "
                f"{self.plan.unit} (attempt {attempt})"
            )
            judged, probe_entry = self.probe(line, load, attempt)
            entry["probes"].append(probe_entry)
            write_json_atomic(self.path, self.record)
            self.log(f"  -> {judged.outcome}{' (' + judged.binding + ')' if judged.binding else ''}: {judged.detail}")
            return judged

        done, _ = run_search(self.plan, probe)
        # a resumed search reuses finished probes: its time is the probes' own run time, not this session's
        probe_s = sum(p.get("wall_s") or 0.0 for p in entry["probes"])
        entry["result"] = dataclasses.asdict(done) | {"elapsed_s": round(max(time.monotonic() - t0, probe_s), 1)}
        write_json_atomic(self.path, self.record)
        return done

    def run(self, lines: list[SearchLine]) -> list[Finished]:
        write_json_atomic(self.path, self.record)
        return [self.run_line(line) for line in lines]
