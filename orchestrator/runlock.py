"""One grid process per run directory: a lock file (pid + host), orphan Locust detection, and children that
die with the grid.

A `kill -9` of the grid must not leave a Locust process that keeps loading the target and writing into a
cell while `--resume` starts that cell again: each cell's Locust gets a parent-death signal, each cell
records its Locust pid, and a run directory is taken over only when neither its grid nor any recorded
Locust is still alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runformat.atomic import write_json_atomic
from runformat.layout import METADATA_FILE, RUN_LOCK

__all__ = ["LOCK_FILE", "RunLocked", "child_preexec", "hold_run_lock", "live_locust", "pid_alive"]

LOCK_FILE = RUN_LOCK
_PR_SET_PDEATHSIG = 1


class RunLocked(Exception):
    """The run directory is in use (its grid, or an orphan Locust of it, still runs)."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def live_locust(run_dir: Path, alive: Callable[[int], bool] = pid_alive) -> list[tuple[Path, int]]:
    """(cell directory, pid) of every recorded Locust of this run that still runs on this host.

    A pid counts only while its command line still names the cell (a reused pid is someone else), where
    the system can tell (Linux /proc)."""
    found = []
    host = platform.node()
    for meta_path in sorted(run_dir.rglob(METADATA_FILE)):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        pid = meta.get("locust_pid") if isinstance(meta, dict) else None
        if not isinstance(pid, int) or meta.get("host") != host or not alive(pid):
            continue
        cmdline = _cmdline(pid)
        if cmdline and str(meta_path.parent) not in cmdline:
            continue
        found.append((meta_path.parent, pid))
    return found


def _read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text())
        return Holder(int(data["pid"]), str(data["host"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lock_problem(holder: Holder | None, host: str, alive: Callable[[int], bool]) -> str | None:
    """Why the run directory cannot be taken, or None. Pure: the caller supplies the host and liveness."""
    if holder is None:
        return None
    if holder.host != host:
        return f"locked by a grid on another host ({holder.describe()}); delete {LOCK_FILE} only if it is gone"
    if holder.pid != os.getpid() and alive(holder.pid):
        return f"another grid is running in it ({holder.describe()})"
    return None


@contextlib.contextmanager
def hold_run_lock(run_dir: Path, alive: Callable[[int], bool] = pid_alive) -> Iterator[None]:
    """Hold RUN_DIR/RUN_LOCK while the block runs. Refuses (RunLocked) while another grid holds it or an
    orphan Locust of an earlier grid still runs; a stale lock (its grid is gone) is taken over."""
    path = run_dir / LOCK_FILE
    host = platform.node()
    problem = lock_problem(_read_holder(path), host, alive)
    if problem is None:
        orphans = live_locust(run_dir, alive)
        if orphans:
            listing = ", ".join(f"pid {pid} ({cell.relative_to(run_dir)})" for cell, pid in orphans)
            problem = f"a Locust of an earlier grid still runs: {listing}; stop it (kill PID) or wait for it"
    if problem is not None:
        raise RunLocked(f"{run_dir}: {problem}")
    write_json_atomic(path, {"pid": os.getpid(), "host": host, "since": datetime.now(UTC).isoformat()})
    try:
        yield
    finally:
        if _read_holder(path) == Holder(os.getpid(), host):
            path.unlink(missing_ok=True)


def child_preexec() -> Callable[[], None] | None:
    """A Popen `preexec_fn` that makes the child receive SIGTERM when the grid dies (Linux prctl), so a
    killed grid does not leave its Locust loading the target. None where the platform has no such call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the grid died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return die_with_parent
