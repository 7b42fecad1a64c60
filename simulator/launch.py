"""Start `python -m simulator` as a child process, wait for its READY line, stop it: one launcher for the
tests, `make demo`, the benchmarks and the scripts.

The server prints `SIMULATOR READY <url>` on stdout once it listens (port 0 gets a free port).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["READY_PREFIX", "SimulatorProcess", "running_simulator", "start_simulator"]

READY_PREFIX = "SIMULATOR READY "
REPO = Path(__file__).resolve().parents[1]


@dataclass
class SimulatorProcess:
    """A running simulator; `url` is its base URL (no trailing slash), `log_path` its stderr."""

    proc: subprocess.Popen[str]
    url: str
    log_path: Path | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`; idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def start_simulator(
    args: Sequence[str] = (),
    *,
    port: int = 0,
    log_path: Path | None = None,
    cpu: int | None = None,
    timeout_s: float = 30.0,
) -> SimulatorProcess:
    """Start a simulator on 127.0.0.1:`port` (0: any free port) with extra CLI `args`; raises RuntimeError
    with the end of its log when it does not become ready in time. `cpu` pins it (taskset)."""
    cmd = [sys.executable, "-m", "simulator", "--host", "127.0.0.1", "--port", str(port), *args]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    log = log_path.open("w") if log_path is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        if log_path is not None:
            log.close()  # type: ignore[union-attr]  # the child keeps its own descriptor
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(READY_PREFIX):
            return SimulatorProcess(proc, line[len(READY_PREFIX) :].strip(), log_path)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    tail = log_path.read_text(errors="replace")[-2000:] if log_path is not None else ""
    raise RuntimeError(f"simulator {' '.join(args)} did not become ready: {tail}")


@contextlib.contextmanager
def running_simulator(args: Sequence[str] = (), **kwargs: object) -> Iterator[SimulatorProcess]:
    """`start_simulator` as a context manager: the process is always stopped."""
    sim = start_simulator(args, **kwargs)  # type: ignore[arg-type]
    try:
        yield sim
    finally:
        sim.stop()
