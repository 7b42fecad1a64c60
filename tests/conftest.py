"""Shared fixtures: real simulator processes on loopback, started on port 0 and always stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
READY_PREFIX = "SIMULATOR READY "


@dataclass
class SimProcess:
    """A running `python -m simulator` child; `url` is its base URL (no trailing slash)."""

    proc: subprocess.Popen[str]
    url: str
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_simulator(tmp_path: Path, *args: str, timeout_s: float = 30.0) -> SimProcess:
    """Start the simulator on 127.0.0.1 port 0 and wait for its READY line on stdout."""
    log_path = tmp_path / f"sim-{time.monotonic_ns()}.log"
    with log_path.open("w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--host", "127.0.0.1", "--port", "0", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(READY_PREFIX):
            return SimProcess(proc=proc, url=line[len(READY_PREFIX) :].strip(), log_path=log_path)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    raise RuntimeError(f"simulator did not become ready: {log_path.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def simulator_factory(tmp_path: Path) -> Iterator[object]:
    """Call with simulator CLI args; every process started is stopped at teardown."""
    started: list[SimProcess] = []

    def factory(*args: str) -> SimProcess:
        sim = start_simulator(tmp_path, *args)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(simulator_factory) -> SimProcess:  # type: ignore[no-untyped-def]
    """One simulator with the default profile."""
    return simulator_factory()  # type: ignore[operator]
