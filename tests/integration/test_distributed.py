"""Distributed runs on loopback: workers ship their records to the master, which writes the cell's files."""

from __future__ import annotations

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

from tests.integration.locustrun import LOCUSTFILES, generation_tokens_total, run_locust

pytestmark = pytest.mark.slow

FAST = ("--fixed-ttft-ms", "30", "--fixed-itl-ms", "5")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        self.port = _free_port()
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
