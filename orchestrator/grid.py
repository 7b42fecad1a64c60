"""The grid runner: one headless Locust process per cell, resumable, with server metrics and metadata.

Run layout: `<out>/<scenario>-<UTC stamp>/<target>/<workload>/c<users>_m<tokens>[_r<repeat>]/` (open-loop
cells: `r<rate>_m<tokens>`). A cell's
`COMPLETE` marker is written last; anything without it is unfinished and `--resume` runs it again.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import IO, Any

from loadgen.apis import bearer_headers
from orchestrator.gridlive import RESULTS_JSON, cell_figures, live_figures, llm_live_row
from orchestrator.runlock import child_preexec
from orchestrator.scenario import Cell, Scenario, ScenarioError
from orchestrator.scrape import MetricsScraper
from orchestrator.targets import PreflightError, TargetInfo, probe_target
from runformat.atomic import write_json_atomic, write_text_atomic
from runformat.layout import (
    COMPLETE_MARKER,
    CSV_PREFIX,
    METADATA_FILE,
    REPLACED_DIR,
    CellStatus,
    stop_file,
    workers_file,
)

__all__ = [
    "CSV_PREFIX",
    "CellResult",
    "GridRunner",
    "cell_verdict",
    "completed_requests",
    "fresh_cell_dir",
    "locust_command",
    "new_run_dir",
    "unfinished_cells",
]

# Where an unfinished cell's earlier attempt goes before it is deleted (analysis skips dot-folders).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CellResult:
    cell: Cell
    status: CellStatus
    detail: str = ""
    path: Path | None = None
    figures: dict[str, Any] | None = None  # the LLM section of the cell's own end-of-run JSON


@dataclass
class LiveStatus:
    """What the progress display shows for the running cell."""

    users: int = 0
    throughput_tok_s: float = 0.0
    requests: int = 0
    failures: int = 0
    in_flight: int = 0
    ttft_p50_ms: float | None = None
    throughput_source: str = ""  # "load generator" (its rolling window) or "/metrics"


def new_run_dir(out: Path, scenario: Scenario) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = out / f"{scenario.name}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def fresh_cell_dir(run_dir: Path, cell_dir: Path) -> None:
    """An empty `cell_dir`. An earlier attempt is first renamed out of the way in one step, so its files
    can never mix with this attempt's, even if the grid dies while deleting them."""
    if cell_dir.exists():
        trash = run_dir / REPLACED_DIR / uuid.uuid4().hex
        trash.parent.mkdir(exist_ok=True)
        cell_dir.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    cell_dir.mkdir(parents=True)


def completed_requests(cell_dir: Path) -> int:
    """Successful requests in a cell's request logs (0 when there are none)."""
    count = 0
    for path in cell_dir.glob(f"{CSV_PREFIX}_requests_*.csv"):
        with contextlib.suppress(OSError, csv.Error), path.open(newline="", encoding="utf-8") as fh:
            count += sum(1 for row in csv.DictReader(fh) if row.get("success") == "1")
    return count


GAVE_UP_ON_WORKERS = "Gave up waiting for workers to connect"  # Locust's master, past --expect-workers-max-wait


def _tail(log: Path, size: int = 16384) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - size, 0))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def cell_verdict(interrupted: bool, exit_code: int, completed: int, log: Path) -> tuple[CellStatus, str]:
    """(status, detail) of a finished cell: a cell in which no request completed measured nothing."""
    if interrupted:
        return CellStatus.INTERRUPTED, "stopped by Ctrl-C"
    if exit_code != 0:
        if GAVE_UP_ON_WORKERS in _tail(log):
            return CellStatus.FAILED, f"the master gave up waiting for its workers (are they running?); see {log}"
        return CellStatus.FAILED, f"locust exited {exit_code}; see {log}"
    if completed == 0:
        return CellStatus.FAILED, f"no request completed; see the errors in the request log and {log}"
    return CellStatus.COMPLETED, ""


def unfinished_cells(run_dir: Path, cells: list[Cell]) -> list[Cell]:
    return [c for c in cells if not (run_dir / c.relpath / COMPLETE_MARKER).exists()]


def resolve_locustfile(name: str) -> Path:
    for base in (Path.cwd(), PROJECT_ROOT):
        candidate = (base / name).resolve()
        if candidate.is_file():
            return candidate
    raise ScenarioError(f"locustfile '{name}' not found (looked in {Path.cwd()} and {PROJECT_ROOT})")


def locust_command(
    scenario: Scenario, cell: Cell, cell_dir: Path, model: str, local_port: int | None = None
) -> list[str]:
    """The exact headless Locust command of a cell (recorded in its metadata). `local_port`: the port the
    master of `--processes` and its workers meet on (Locust's default, 5557, collides with any other
    multi-process run on the host)."""
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(resolve_locustfile(cell.workload.locustfile)),
        "--headless",
        "--only-summary",
        "-u",
        str(cell.users),
        "-r",
        str(scenario.spawn_rate),
        "-t",
        f"{math.ceil(scenario.duration_s)}s",
        "--host",
        cell.target.url,
        "--csv",
        str(cell_dir / CSV_PREFIX),
        "--csv-full-history",
        "--html",
        str(cell_dir / "locust_report.html"),
        "--json-file",
        str(cell_dir / RESULTS_JSON),
        "--stop-timeout",
        f"{math.ceil(scenario.stop_timeout_s)}s",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "INFO",
        "--logfile",
        str(cell_dir / "locust.log"),
        "--model",
        model,
        "--api",
        cell.workload.api,
        "--max-new-tokens",
        str(cell.max_new_tokens),
        "--target-label",
        cell.target.label,
        "--request-timeout",
        str(scenario.request_timeout_s),
    ]
    if cell.rate is not None:
        cmd += ["--arrival-rate", f"{cell.rate:g}"]
    if scenario.workers > 1:
        cmd += ["--processes", str(scenario.workers)]
        if local_port is not None:
            cmd += ["--master-bind-port", str(local_port), "--master-port", str(local_port)]
    if scenario.distributed is not None:
        d = scenario.distributed
        cmd += ["--master", "--expect-workers", str(d.expect_workers)]
        cmd += ["--master-bind-host", d.master_bind_host, "--master-bind-port", str(d.master_bind_port)]
        cmd += ["--expect-workers-max-wait", str(d.workers_wait_s)]
    if scenario.auto_duration:  # -t above is max_duration_s, the cap
        cmd += ["--until-ci", f"{scenario.target_ci_pct:g}", "--warmup", f"{scenario.warmup_s:g}"]
        if scenario.min_duration_s:
            cmd += ["--min-duration", f"{scenario.min_duration_s:g}"]
    for key, value in cell.workload.options:
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            cmd += [flag] if value else [f"--no-{key.replace('_', '-')}"]
        else:
            cmd += [flag, str(value)]
    return cmd


def _free_port() -> int:
    """A loopback port free now (the master binds loopback unless told otherwise)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def _last_history_row(cell_dir: Path) -> dict[str, str] | None:
    """The newest Aggregated row of Locust's stats history (read from the file's tail only)."""
    path = cell_dir / f"{CSV_PREFIX}_stats_history.csv"
    try:
        with path.open("rb") as fh:
            header = next(csv.reader([fh.readline().decode()]))
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - 8192, 0))
            tail = fh.read().decode(errors="replace").splitlines()[1:]
    except (OSError, StopIteration):
        return None
    for values in csv.reader(reversed(tail)):
        if len(values) == len(header) and "Aggregated" in values:
            return dict(zip(header, values, strict=True))
    return None


# (command, stdout file, environment) -> a started process; tests pass a fake
Launcher = Callable[[list[str], IO[bytes], dict[str, str]], "subprocess.Popen[bytes]"]


def launch_locust(cmd: list[str], out: IO[bytes], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A cell's Locust in its own session (Ctrl-C reaches it through the grid), dying with the grid."""
    return subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=child_preexec()
    )


@dataclass(frozen=True)
class HostFacts:
    """What a cell's metadata records about the machine and software that ran it."""

    locust_version: str | None
    suite_version: str | None
    git_commit: str | None
    host_cpu_count: int | None
    host: str
    started_at: str


def host_facts() -> HostFacts:
    return HostFacts(
        _version("locust"),
        _version("llm-locust-suite"),
        _git_commit(),
        os.cpu_count(),
        platform.node(),
        datetime.now(UTC).isoformat(),
    )


def cell_metadata(scenario: Scenario, cell: Cell, info: TargetInfo, cmd: list[str], facts: HostFacts) -> dict[str, Any]:
    """A cell's metadata.json as it starts (status running): pure, so what a cell records is unit-tested."""
    meta: dict[str, Any] = {
        "scenario": scenario.name,
        "scenario_digest": scenario.digest,
        "target_label": cell.target.label,
        "target_url": cell.target.url,
        "hourly_price_usd": cell.target.hourly_price_usd,
        "gpu": cell.target.gpu,
        "workload": cell.workload.name,
        "api": cell.workload.api,
        "locustfile": cell.workload.locustfile,
        "users": cell.users,
        "arrival_rate": cell.rate,
        "max_new_tokens": cell.max_new_tokens,
        "repeat": cell.repeat,
        "duration_s": float(math.ceil(scenario.duration_s)),
        "warmup_s": scenario.warmup_s,
        "spawn_rate": scenario.spawn_rate,
        "workers": scenario.workers,
        **({"distributed": asdict(scenario.distributed)} if scenario.distributed else {}),
        "csv_prefix": CSV_PREFIX,
        "command": cmd,
        "model": info.model,
        "max_model_len": info.max_model_len,
        "server_version": info.server_version,
        "metrics_available": info.metrics_available,
        **asdict(facts),
        "status": CellStatus.RUNNING.value,
    }
    if scenario.auto_duration:
        meta.update(
            duration_mode="auto",
            max_duration_s=meta["duration_s"],
            target_ci_pct=scenario.target_ci_pct,
            min_duration_s=scenario.min_duration_s,
        )
    return meta


@dataclass
class GridRunner:
    """Runs cells one at a time; `on_progress` is called about once a second while a cell runs."""

    scenario: Scenario
    run_dir: Path
    on_progress: Callable[[Cell, LiveStatus], None] | None = None
    on_start: Callable[[Cell], None] | None = None
    interrupted: bool = False
    target_info: dict[str, TargetInfo] = field(default_factory=dict)
    launch: Launcher = field(default_factory=lambda: launch_locust)
    extra_metadata: dict[str, Any] = field(default_factory=dict)  # merged into every cell's metadata.json
    _child: subprocess.Popen[bytes] | None = None

    def preflight(self) -> None:
        """Every target must answer /v1/models and serve its model before anything starts."""
        problems = []
        for target in self.scenario.targets:
            try:
                self.target_info[target.label] = probe_target(
                    target.label, target.url, target.model, self._headers(target)
                )
            except PreflightError as exc:
                problems.append(str(exc))
        if problems:
            raise PreflightError("preflight failed; nothing was started:\n  " + "\n  ".join(problems))

    @staticmethod
    def _headers(target: Any) -> dict[str, str]:
        key = os.environ.get(target.api_key_env, "") if target.api_key_env else ""
        return bearer_headers(key)

    def interrupt(self) -> None:
        """Ctrl-C: stop the running cell the way Locust stops (SIGTERM honours --stop-timeout)."""
        self.interrupted = True
        if self._child is not None and self._child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._child.pid, signal.SIGTERM)

    def run_cell(self, cell: Cell) -> CellResult:
        """Directories and metadata, the scraper, the Locust child, then the cell's verdict (written last)."""
        cell_dir = self.run_dir / cell.relpath
        fresh_cell_dir(self.run_dir, cell_dir)
        info = self.target_info[cell.target.label]
        cmd = locust_command(
            self.scenario, cell, cell_dir, info.model, _free_port() if self.scenario.workers > 1 else None
        )
        meta = cell_metadata(self.scenario, cell, info, cmd, host_facts())
        meta.update(self.extra_metadata)
        write_json_atomic(cell_dir / METADATA_FILE, meta)
        scraper = None
        if self.scenario.scrape_metrics and info.metrics_available:
            scraper = MetricsScraper(
                cell.target.url,
                cell_dir / "server_metrics.csv",
                self.scenario.scrape_interval_s,
                self._headers(cell.target),
            ).start()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        key = os.environ.get(cell.target.api_key_env, "") if cell.target.api_key_env else ""
        if key:
            env["OPENAI_API_KEY"] = key  # by environment only: the command line is recorded, the key never is
        t_start = time.time()
        with (cell_dir / "locust.stdout").open("wb") as out:
            self._child = self.launch(cmd, out, env)
            meta["locust_pid"] = self._child.pid  # lets a later --resume see an orphan that still runs
            write_json_atomic(cell_dir / METADATA_FILE, meta)
            rc = self._wait(cell, cell_dir, scraper)
        self._child = None
        meta.update(
            ended_at=datetime.now(UTC).isoformat(),
            wall_s=round(time.time() - t_start, 3),
            exit_code=rc,
            server_token_delta=scraper.stop() if scraper is not None else None,
            server_prefix_cache=scraper.prefix_cache() if scraper is not None else None,
            metrics_error=scraper.error if scraper is not None else None,
        )
        if self.scenario.auto_duration:
            meta.update(_stop_metadata(cell_dir))
        meta.update(_workers_metadata(cell_dir))
        completed = completed_requests(cell_dir)
        status, detail = cell_verdict(self.interrupted, rc, completed, cell_dir / "locust.log")
        meta.update(status=status.value, completed_requests=completed)
        write_json_atomic(cell_dir / METADATA_FILE, meta)
        if status == CellStatus.COMPLETED:
            write_text_atomic(cell_dir / COMPLETE_MARKER, meta["ended_at"] + "\n")
        return CellResult(cell, status, detail, cell_dir, cell_figures(cell_dir))

    def _wait(self, cell: Cell, cell_dir: Path, scraper: MetricsScraper | None) -> int:
        assert self._child is not None
        deadline = time.monotonic() + self.scenario.duration_s + self.scenario.stop_timeout_s + 60
        if self.scenario.distributed is not None:  # the run's clock starts once every worker has joined
            deadline += self.scenario.distributed.workers_wait_s
        previous: tuple[float, float] | None = None
        live = LiveStatus()
        while True:
            try:
                return self._child.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                os.killpg(self._child.pid, signal.SIGKILL)
                return self._child.wait()
            row = _last_history_row(cell_dir)
            if row:
                live.users = int(float(row.get("User Count") or 0))
                live.requests = int(float(row.get("Total Request Count") or 0))
                live.failures = int(float(row.get("Total Failure Count") or 0))
            llm = llm_live_row(cell_dir, CSV_PREFIX)
            figures = live_figures(llm) if llm else {}
            if figures.get("requests") is not None:
                live.requests = int(figures["requests"] or 0)
                live.in_flight = int(figures["in_flight"] or 0)
                live.ttft_p50_ms = figures["ttft_p50_ms"]
            if figures.get("throughput_tok_s") is not None:
                live.throughput_tok_s, live.throughput_source = (
                    float(figures["throughput_tok_s"] or 0.0),
                    "load generator",
                )
            elif scraper is not None and scraper.last is not None:
                now = (time.monotonic(), scraper.last.get("generation_tokens_total", 0.0))
                if previous is not None and now[1] >= previous[1] and now[0] > previous[0]:
                    live.throughput_tok_s = (
                        (now[1] - previous[1]) / (now[0] - previous[0])
                        if now[1] != previous[1]
                        else live.throughput_tok_s
                    )
                    live.throughput_source = "/metrics"
                previous = now
            if self.on_progress is not None:
                self.on_progress(cell, live)

    def _unwritable(self, cell: Cell, exc: OSError) -> CellResult:
        """The cell could not write its files: stop its Locust, leave its metadata "failed", not "running"."""
        if self._child is not None and self._child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._child.pid, signal.SIGKILL)
            self._child.wait()
        self._child = None
        cell_dir = self.run_dir / cell.relpath
        detail = f"cannot write the run directory ({exc.strerror or exc}); free space, then --resume"
        mark_failed_in_place(cell_dir, detail)
        return CellResult(cell, CellStatus.FAILED, detail, cell_dir)

    def target_alive(self, label: str) -> bool:
        target = next(t for t in self.scenario.targets if t.label == label)
        try:
            probe_target(label, target.url, self.target_info[label].model, self._headers(target), timeout_s=3.0)
        except PreflightError:
            return False
        return True

    def run(self, cells: list[Cell], on_done: Callable[[CellResult], None] | None = None) -> list[CellResult]:
        """Run cells in order; a target that stops answering gets its remaining cells skipped."""
        results: list[CellResult] = []
        dead: set[str] = set()
        for cell in cells:
            if self.interrupted:
                break
            if self.on_start is not None:
                self.on_start(cell)
            if cell.target.label in dead:
                result = CellResult(cell, CellStatus.SKIPPED, f"target '{cell.target.label}' is down")
            else:
                try:
                    result = self.run_cell(cell)
                except OSError as exc:  # disk full, folder gone: this cell and every later one would fail alike
                    results.append(self._unwritable(cell, exc))
                    if on_done is not None:
                        on_done(results[-1])
                    break
                if result.status != CellStatus.INTERRUPTED and not self.target_alive(cell.target.label):
                    dead.add(cell.target.label)
                    if result.status == CellStatus.COMPLETED:
                        result.detail = "target stopped answering during this cell"
                        result.status = CellStatus.FAILED
                        (self.run_dir / cell.relpath / COMPLETE_MARKER).unlink(missing_ok=True)
                        _mark(self.run_dir / cell.relpath, CellStatus.FAILED)
            results.append(result)
            if on_done is not None:
                on_done(result)
        return results


def _stop_metadata(cell_dir: Path) -> dict[str, Any]:
    """What an auto-duration cell's PREFIX_stop.json says: why it stopped, and its actual run time as
    `duration_s` (the end of the window the stopping rule decided on), which the analysis windows use."""
    try:
        stop = json.loads(stop_file(str(cell_dir / CSV_PREFIX)).read_text())
    except (OSError, ValueError):
        return {"stop_reason": None, "stopped_after_s": None}
    out: dict[str, Any] = {"stop_reason": stop.get("stop_reason"), "stopped_after_s": stop.get("stopped_after_s")}
    out["until_ci"] = stop
    if isinstance(out["stopped_after_s"], int | float) and out["stopped_after_s"] > 0:
        out["duration_s"] = float(out["stopped_after_s"])
    return out


def _workers_metadata(cell_dir: Path) -> dict[str, Any]:
    """A distributed cell's PREFIX_workers.json (written by the master): each worker's host, pid, versions
    and CPU, and its record delivery, with the requests whose records were lost."""
    try:
        workers = json.loads(workers_file(str(cell_dir / CSV_PREFIX)).read_text())
    except (OSError, ValueError):
        return {}
    return {"record_delivery": workers, "lost_records": workers.get("lost_records", 0)}


def _mark(cell_dir: Path, status: CellStatus) -> None:
    path = cell_dir / METADATA_FILE
    meta = json.loads(path.read_text())
    meta["status"] = status.value
    write_json_atomic(path, meta)


def mark_failed_in_place(cell_dir: Path, detail: str) -> None:
    """Best effort when the disk is full: a new file may be impossible, so rewrite the "running" status
    inside the existing metadata.json in place (the same bytes, padded: no new blocks needed)."""
    path = cell_dir / METADATA_FILE
    try:
        meta = json.loads(path.read_text())
        meta.update(status=CellStatus.FAILED.value, detail=detail)
        write_json_atomic(path, meta)
        return
    except (OSError, ValueError):
        pass
    with contextlib.suppress(OSError), path.open("r+b") as fh:
        raw = fh.read()
        fixed = raw.replace(b'"status": "running"', b'"status": "failed" ', 1)
        if fixed != raw:
            fh.seek(0)
            fh.write(fixed)
