"""scripts/locust_worker_loop.sh: restarts the worker with its arguments, stops on SIGTERM, gives up on a
worker that keeps failing at once. A stand-in `locust` (LOCUST=...) records each start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.unit.deploy.test_kubernetes import WORKER_LOOP

FAKE = """
import os, sys, time
from pathlib import Path
log = Path(sys.argv[1])
with log.open("a") as f:
    f.write(" ".join(sys.argv[2:]) + f" pid={os.getpid()}\\n")
mode = sys.argv[2]
if mode == "fail":
    sys.exit(3)
if mode == "hold" or len(log.read_text().splitlines()) >= 3:
    time.sleep(60)
"""


def _loop(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    fake = tmp_path / "fake_locust.py"
    fake.write_text(FAKE)
    starts = tmp_path / "starts.log"
    env = {**os.environ, "LOCUST": f"{sys.executable} {fake} {starts} {mode}", "RESTART_DELAY_S": "0"}
    proc = subprocess.Popen(
        ["sh", str(WORKER_LOOP), "-f", "x.py", "--master-host", "h"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return proc, starts


def _lines(path: Path, count: int, deadline_s: float = 20.0) -> list[str]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{path}: fewer than {count} starts")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stderr is not None:
        proc.stderr.close()


def test_the_worker_restarts_with_its_arguments_after_each_exit(tmp_path: Path) -> None:
    proc, starts = _loop(tmp_path, "exit")
    try:
        lines = _lines(starts, 3)
    finally:
        _stop(proc)
    assert all(line.startswith("exit --worker -f x.py --master-host h pid=") for line in lines)
    assert len({line.rsplit("pid=", 1)[1] for line in lines}) == 3  # a new process each time


def test_sigterm_stops_the_worker_and_the_loop(tmp_path: Path) -> None:
    proc, starts = _loop(tmp_path, "hold")
    try:
        (line,) = _lines(starts, 1)
        worker_pid = int(line.rsplit("pid=", 1)[1])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker_pid):
            time.sleep(0.05)
        assert not _alive(worker_pid)
    finally:
        _stop(proc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_failing_at_once_ends_the_loop_with_its_status(tmp_path: Path) -> None:
    proc, starts = _loop(tmp_path, "fail")
    try:
        assert proc.wait(timeout=30) == 3
        assert proc.stderr is not None
        assert "failed 5 times within 10s of starting (last exit status 3)" in proc.stderr.read()
        assert len(starts.read_text().splitlines()) == 5
    finally:
        _stop(proc)
