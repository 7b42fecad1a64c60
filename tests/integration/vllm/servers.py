"""Real vLLM servers for the `vllm` tests, started through scripts/vllm_targets.sh on free ports.

The script is the one `make vllm-targets` uses, so the tests exercise the same command line users run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

__all__ = [
    "MODELS",
    "START_TIMEOUT_S",
    "VENV",
    "VllmTargets",
    "free_ports",
    "in_ci",
    "missing_prerequisites",
    "start_targets",
]

# VLLM_VENV / VLLM_MODELS (as scripts/vllm_targets.sh reads them) point at a set-up elsewhere, e.g. another
# checkout's, so a second working tree need not build its own.
VENV = Path(os.environ.get("VLLM_VENV") or REPO / ".venv-vllm")
MODELS = Path(os.environ.get("VLLM_MODELS") or REPO / ".cache" / "tinymodels")
SCRIPT = REPO / "scripts" / "vllm_targets.sh"
START_TIMEOUT_S = 420  # both servers; 65-150 s on the 2-core machine
MODEL_NAMES = {"bf16": "tiny-llama-bf16", "awq": "tiny-llama-awq"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_prerequisites() -> str | None:
    """Why the real-vLLM tests cannot run here, or None."""
    if not (VENV / ".installed").is_file():
        return f"{VENV} is not set up (run: make vllm-setup)"
    if not (MODELS / "manifest.json").is_file():
        return f"{MODELS} has no generated models (run: make vllm-setup)"
    return None


def free_ports(count: int) -> list[int]:
    """Distinct ports that were free a moment ago (vLLM cannot bind port 0 and report the port back)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class VllmTargets:
    """Servers started by one `vllm_targets.sh start`; `urls` maps bf16/awq to base URLs."""

    run_dir: Path
    urls: dict[str, str]
    env: dict[str, str]
    startup_s: float

    def model(self, name: str) -> str:
        return MODEL_NAMES[name]

    def log(self, name: str) -> str:
        return (self.run_dir / f"{name}.log").read_text(errors="replace")

    def pid(self, name: str) -> int:
        return int((self.run_dir / f"{name}.pid").read_text())

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", *self.urls], env=self.env, timeout=60, check=False)


def start_targets(
    run_dir: Path, names: tuple[str, ...] = ("bf16", "awq"), timeout_s: int = START_TIMEOUT_S
) -> VllmTargets:
    """Start the named servers on free ports; raise with the script's output (it holds the log tail)."""
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = {
        **os.environ,
        "VLLM_RUN_DIR": str(run_dir),
        "VLLM_START_TIMEOUT_S": str(timeout_s),
        **{f"VLLM_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    t0 = time.monotonic()
    done = subprocess.run(
        ["bash", str(SCRIPT), "start", *names], env=env, capture_output=True, text=True, timeout=timeout_s + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"vllm_targets.sh start {' '.join(names)} failed:\n{done.stderr[-4000:]}")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    return VllmTargets(run_dir=run_dir, urls=urls, env=env, startup_s=time.monotonic() - t0)
