"""`make demo`: start the two simulated targets, run the smoke grid against them, build the report.

Uses :8000/:8001 (the seed's ports; PORTS="9000 9001" for others) when free, else any free ports; the targets
are always stopped.
`make demo TARGETS=vllm` instead drives the real vLLM pair that `make vllm-targets` started.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from simulator.launch import SimulatorProcess, start_simulator

REPO = Path(__file__).resolve().parents[1]
# The report projects the measured GPU onto these (docs/WHATIF.md): "how would this change on A100/H100?"
WHATIF = ["--whatif-gpu", "a100-80gb", "--whatif-gpu", "h100-80gb"]
TARGETS = [("RTX2000-16GB-BF16", "rtx2000-ada-16gb-bf16", 8000), ("RTX2000-16GB-QUANT", "rtx2000-ada-16gb-awq", 8001)]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def simulators(log_dir: Path) -> Iterator[dict[str, str]]:
    started: list[SimulatorProcess] = []
    urls: dict[str, str] = {}
    try:
        ports = [int(p) for p in os.environ.get("PORTS", "").split()] or [port for *_, port in TARGETS]
        if len(ports) != len(TARGETS):
            raise SystemExit(f'demo: PORTS takes {len(TARGETS)} ports, e.g. PORTS="9000 9001"')
        for (label, profile, _), port in zip(TARGETS, ports, strict=True):
            log = log_dir / f"sim-{profile}.log"
            try:
                sim = start_simulator(["--profile", profile], port=port if _port_free(port) else 0, log_path=log)
            except RuntimeError as exc:
                raise SystemExit(f"demo: simulator {profile} did not start; see {log}") from exc
            started.append(sim)
            urls[label] = sim.url
            print(f"demo: {label} ({profile}) serving at {urls[label]}", flush=True)
        yield urls
    finally:
        for sim in started:
            sim.stop()


def run_grid(scenario: str, out: Path, overrides: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", "grid", scenario, "--out", str(out / "runs"), *overrides],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )


def main() -> int:
    out = REPO / "reports" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    targets = os.environ.get("TARGETS", "sim")
    if targets == "vllm":
        # The grid's preflight names any server that is not up and starts nothing.
        print("demo: using the real vLLM pair on :8000/:8001 (start it with `make vllm-targets`)", flush=True)
        grid = run_grid("scenarios/vllm_smoke.toml", out, [])
    elif targets == "sim":
        with simulators(out) as urls:
            overrides = [arg for label, url in urls.items() for arg in ("--target-url", f"{label}={url}")]
            grid = run_grid("scenarios/smoke.toml", out, overrides)
    else:
        print(f"demo: TARGETS={targets!r} is not one of sim, vllm", file=sys.stderr)
        return 2
    if grid.returncode != 0 or not grid.stdout.strip():
        print("demo: the smoke grid failed (see above)", file=sys.stderr)
        return 1
    run_dir = Path(grid.stdout.strip().splitlines()[-1])
    report = subprocess.run(
        [sys.executable, "-m", "analysis", "report", str(run_dir), "-o", str(run_dir / "report"), *WHATIF], cwd=REPO
    )
    if report.returncode != 0:
        print("demo: report generation failed (see above)", file=sys.stderr)
        return 1
    index = run_dir / "report" / "index.html"
    print(f"\ndemo: run directory {run_dir}")
    print(f"demo: report {index}")
    print("demo: open it in a browser; the seed's CSV and Markdown files are beside it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
