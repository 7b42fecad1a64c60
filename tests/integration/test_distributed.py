"""Distributed runs on loopback: workers ship their records to the master, which writes the cell's files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis.tables import capacity_from_paths
from tests.conftest import REPO
from tests.integration.locustrun import LOCUSTFILES, free_port, generation_tokens_total, run_locust

pytestmark = pytest.mark.slow

FAST = ("--fixed-ttft-ms", "30", "--fixed-itl-ms", "5")


def _requests(prefix: Path) -> pd.DataFrame:
    files = sorted(prefix.parent.glob(f"{prefix.name}_requests_*.csv"))
    assert files, f"no request files for {prefix}"
    return pd.concat([pd.read_csv(f, keep_default_na=False, na_values=[""]) for f in files], ignore_index=True)


def _workers(prefix: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(Path(f"{prefix}_workers.json").read_text())


class Cluster:
    """A headless master and separately started workers, each its own `locust` process."""

    def __init__(self, tmp_path: Path, host: str, workers: int, users: int, run_time: str) -> None:
        self.prefix = tmp_path / "run"
        self.port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "batch.py")]
        self.logs = [open(tmp_path / f"p{i}.log", "w") for i in range(workers + 1)]  # noqa: SIM115
        master = [
            *base, "--master", "--expect-workers", str(workers), "--master-bind-port", str(self.port),
            "--headless", "-u", str(users), "-r", str(users), "-t", run_time, "--stop-timeout", "20",
            "--host", host, "--csv", str(self.prefix), "--json-file", f"{self.prefix}_final", "--only-summary",
            "--max-new-tokens", "32", "--output-range-ratio", "0.5",
        ]  # fmt: skip
        self.master = subprocess.Popen(master, cwd=tmp_path, env=env, stdout=self.logs[0], stderr=subprocess.STDOUT)
        worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(self.port)]
        self.workers = [
            subprocess.Popen(worker, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
            for log in self.logs[1:]
        ]

    def wait(self, timeout_s: float = 90) -> str:
        self.master.wait(timeout=timeout_s)
        for w in self.workers:
            if w.poll() is None:
                w.wait(timeout=30)
        for log in self.logs:
            log.close()
        return "\n".join(Path(log.name).read_text()[-3000:] for log in self.logs)

    def stop(self) -> None:
        for p in [self.master, *self.workers]:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for log in self.logs:
            log.close()


def test_master_writes_every_record_of_two_separately_started_workers(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    before = generation_tokens_total(sim.url)
    cluster = Cluster(tmp_path, sim.url, workers=2, users=6, run_time="5s")
    try:
        output = cluster.wait()
    finally:
        cluster.stop()
    assert cluster.master.returncode == 0, output
    delta = generation_tokens_total(sim.url) - before
    requests = _requests(cluster.prefix)
    # Only the master writes: every file name carries a worker's <host>-<pid>, none is the master's.
    worker_pids = {str(w.pid) for w in cluster.workers}
    files = sorted(tmp_path.glob("run_requests_*.csv"))
    assert {f.stem.rsplit("-", 1)[-1] for f in files} == worker_pids, output
    assert requests["worker_id"].nunique() == 2
    assert requests["request_id"].is_unique
    assert int(requests["output_tokens"].sum()) == delta, output
    summary = _workers(cluster.prefix)
    assert [w["state"] for w in summary["workers"]] == ["finished", "finished"]
    assert summary["records"] == len(requests)
    assert summary["lost_records"] == 0 and summary["gap_records"] == 0 and summary["duplicate_batches"] == 0
    assert {w["identity"]["pid"] for w in summary["workers"]} == {w.pid for w in cluster.workers}
    # The master's LLM stats merged both workers: one TTFT sample per successful request.
    llm = pd.read_csv(f"{cluster.prefix}_llm_stats.csv")
    assert int(llm[llm["name"] == "Aggregated"]["requests"].iloc[0]) == int(requests["success"].sum())


def test_a_killed_worker_loss_is_counted_and_nothing_is_double_counted(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    cluster = Cluster(tmp_path, sim.url, workers=2, users=8, run_time="8s")
    victim = cluster.workers[1]
    try:
        deadline = time.monotonic() + 60
        victim_file = tmp_path / f"run_requests_{socket.gethostname()}-{victim.pid}.csv"
        while time.monotonic() < deadline and not (
            victim_file.exists() and len(victim_file.read_text().splitlines()) > 5
        ):
            time.sleep(0.1)
        assert victim_file.exists(), "the worker's records never reached the master"
        os.kill(victim.pid, signal.SIGKILL)
        output = cluster.wait()
    finally:
        cluster.stop()
    assert cluster.master.returncode == 0, output
    requests = _requests(cluster.prefix)
    assert requests["request_id"].is_unique
    summary = _workers(cluster.prefix)
    by_pid = {w["identity"]["pid"]: w for w in summary["workers"]}
    survivor, dead = by_pid[cluster.workers[0].pid], by_pid[victim.pid]
    assert survivor["state"] == "finished" and survivor["lost"] == 0
    assert dead["state"] == "lost" and dead["lost"] >= 1, summary
    assert dead["started"] - dead["records"] == dead["lost"]
    assert summary["records"] == len(requests) and summary["lost_records"] == dead["lost"]
    assert "never reached the master" in output
    # analysis marks the run: the loss is a named adequacy reason and a capacity column
    (row,) = capacity_from_paths([cluster.prefix]).to_dict("records")
    assert row["records_lost"] == dead["lost"] and row["adequate"] is False
    reason = f"records lost: {dead['lost']} of {dead['started']} from worker {dead['identity']['tag']}"
    assert reason in row["adequacy"], row["adequacy"]


def test_processes_ship_records_to_the_master(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    before = generation_tokens_total(sim.url)
    run = run_locust(tmp_path, "batch.py", sim.url, "--processes", "2", "--max-new-tokens", "32", users=4)
    assert run.proc.returncode == 0, run.output
    requests = run.requests()
    assert requests["worker_id"].nunique() == 2 and requests["request_id"].is_unique
    assert int(requests["output_tokens"].sum()) == generation_tokens_total(sim.url) - before
    summary = _workers(run.prefix)
    assert summary["records"] == len(requests) and summary["lost_records"] == 0


GRID = """
[scenario]
name = "dist"
duration_s = 4
warmup_s = 1
spawn_rate = 50
stop_timeout_s = 15
request_timeout_s = 30

[distributed]
expect_workers = 2
master_bind_host = "127.0.0.1"
master_bind_port = {port}
workers_wait_s = {wait_s}

[[targets]]
label = "SIM"
url = "{url}"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = {concurrency}
max_new_tokens = {max_new_tokens}
"""

WORKER_LOOP = REPO / "scripts" / "locust_worker_loop.sh"


def _worker_loops(tmp_path: Path, port: int, count: int) -> list[subprocess.Popen[bytes]]:
    """The supervisor loop README documents, one per worker, each the leader of its own process group."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOCUST": f"{sys.executable} -m locust", "RESTART_DELAY_S": "0.5"}
    args = ["-f", str(LOCUSTFILES / "batch.py"), "--master-host", "127.0.0.1", "--master-port", str(port)]
    loops = []
    for i in range(count):
        with (tmp_path / f"loop{i}.log").open("wb") as log:
            loops.append(
                subprocess.Popen(
                    ["sh", str(WORKER_LOOP), *args],
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return loops


def _stop_groups(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)


def _grid(scenario: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", "grid", str(scenario), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _distributed_grid(tmp_path: Path, url: str, concurrency: list[int], max_new_tokens: list[int]) -> list[Path]:
    """A [distributed] grid whose two workers run in supervisor loops; returns its cell directories."""
    port = free_port()
    scenario = tmp_path / "dist.toml"
    scenario.write_text(
        GRID.format(port=port, url=url, concurrency=concurrency, max_new_tokens=max_new_tokens, wait_s=60)
    )
    loops = _worker_loops(tmp_path, port, 2)
    try:
        done = _grid(scenario, tmp_path / "runs")
    finally:
        _stop_groups(loops)
    logs = "\n".join((tmp_path / f"loop{i}.log").read_text()[-2000:] for i in range(2))
    assert done.returncode == 0, done.stderr[-3000:] + logs
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    cells = sorted(p.parent for p in run_dir.rglob("metadata.json"))
    for cell in cells:
        meta = json.loads((cell / "metadata.json").read_text())
        assert meta["status"] == "completed" and (cell / "COMPLETE").exists(), (cell, meta.get("detail"), logs)
    return cells


def test_a_distributed_grid_runs_two_cells_with_workers_that_rejoin(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    cells = _distributed_grid(tmp_path, sim.url, [4], [16, 24])
    assert [c.name for c in cells] == ["c4_m16", "c4_m24"]
    pids_by_cell = []
    for cell in cells:
        meta = json.loads((cell / "metadata.json").read_text())
        requests = _requests(cell / "locust")
        assert requests["worker_id"].nunique() == 2 and requests["request_id"].is_unique
        assert int(requests["output_tokens"].sum()) == meta["server_token_delta"]["generation"]
        delivery = meta["record_delivery"]
        assert delivery["records"] == len(requests) and delivery["lost_records"] == 0 and delivery["gap_records"] == 0
        identities = [w["identity"] for w in delivery["workers"]]
        assert all(w["state"] == "finished" for w in delivery["workers"])
        for identity in identities:
            assert identity["host"] and identity["locust_version"] and identity["python"], identity
            assert identity["cpu_count"] >= 1 and identity["cpu_model"], identity
        pids = {i["pid"] for i in identities}
        assert {w["node_id"] for w in delivery["workers"]} == set(requests["worker_id"])
        assert len(pids) == 2
        pids_by_cell.append(pids)
    # The first cell's workers exited with their master; the loops started new ones for the second cell.
    assert not pids_by_cell[0] & pids_by_cell[1]


def test_a_worker_rejoining_while_a_master_quits_joins_the_next(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # One user on two workers: the idle worker exits at once and its loop restarts it while the master still
    # waits (about 9 s) for the busy worker's slow stream to end and ship. The master must leave it unanswered
    # (not count it, not wait for its batches), and it joins the second cell's master.
    sim = simulator_factory("--fixed-ttft-ms", "30", "--fixed-itl-ms", "300")
    first, second = _distributed_grid(tmp_path, sim.url, [1, 2], [40])
    log = (first / "locust.log").read_text()
    assert "left to join the next master" in log and "no last record batch" not in log
    early = json.loads((first / "metadata.json").read_text())["record_delivery"]
    late = json.loads((second / "metadata.json").read_text())["record_delivery"]
    assert [w["state"] for w in early["workers"]] == [w["state"] for w in late["workers"]] == ["finished"] * 2
    turned_away = log.split(" connected while this master quits")[0].rsplit("worker ", 1)[-1]
    assert turned_away in {w["node_id"] for w in late["workers"]}
    assert late["records"] == len(_requests(second / "locust")) and late["lost_records"] == 0


def test_a_cell_whose_workers_never_join_fails_saying_so(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*FAST)
    scenario = tmp_path / "alone.toml"
    scenario.write_text(GRID.format(port=free_port(), url=sim.url, concurrency=[2], max_new_tokens=[8], wait_s=2))
    done = _grid(scenario, tmp_path / "runs")
    (meta_path,) = (tmp_path / "runs").rglob("metadata.json")
    meta = json.loads(meta_path.read_text())
    assert meta["status"] == "failed" and not (meta_path.parent / "COMPLETE").exists(), done.stderr[-2000:]
    assert "the master gave up waiting for its workers" in done.stderr, done.stderr[-2000:]
