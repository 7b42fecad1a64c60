"""Helpers for integration tests that run real headless `locust` processes against the simulator."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tests.conftest import REPO

LOCUSTFILES = REPO / "locustfiles"


@dataclass
class LocustRun:
    proc: subprocess.CompletedProcess[str]
    prefix: Path

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def requests(self) -> pd.DataFrame:
        files = sorted(self.prefix.parent.glob(f"{self.prefix.name}_requests_*.csv"))
        assert files, f"no request log files for {self.prefix}; output:\n{self.output[-3000:]}"
        return pd.concat([pd.read_csv(f, keep_default_na=False, na_values=[""]) for f in files], ignore_index=True)

    def request_files(self, kind: str = "requests") -> list[Path]:
        return sorted(self.prefix.parent.glob(f"{self.prefix.name}_{kind}_*.csv"))

    def tokens(self) -> pd.DataFrame:
        files = self.request_files("tokens")
        return pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True)

    def locust_stats(self) -> list[dict[str, str]]:
        with open(f"{self.prefix}_stats.csv", newline="") as f:
            return list(csv.DictReader(f))

    def final_counts(self) -> tuple[int, int]:
        """(requests, failures) from Locust's end-of-run JSON (its CSVs can lag the end by up to 1 s)."""
        entries = self.final_json()["stats"]
        return sum(e["num_requests"] for e in entries), sum(e["num_failures"] for e in entries)

    def final_json(self) -> dict[str, Any]:
        """Locust's --json-file output: {"stats": Locust's entries, "llm": the LLM summary}."""
        data: dict[str, Any] = json.loads(Path(f"{self.prefix}_final.json").read_text())
        return data

    def failures(self) -> list[dict[str, str]]:
        with open(f"{self.prefix}_failures.csv", newline="") as f:
            return list(csv.DictReader(f))

    def llm_stats(self) -> list[dict[str, str]]:
        with open(f"{self.prefix}_llm_stats.csv", newline="") as f:
            return list(csv.DictReader(f))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_locust(
    tmp_path: Path,
    locustfile: str,
    host: str,
    *args: str,
    users: int = 4,
    run_time: str = "5s",
    timeout_s: float = 90,
    env: dict[str, str] | None = None,
    name: str = "run",
) -> LocustRun:
    """Run `locust --headless` bounded by -t and --stop-timeout, with CSVs under tmp_path/name."""
    prefix = tmp_path / name
    if "--processes" in args and "--master-bind-port" not in args:
        port = str(free_port())  # not Locust's default 5557: other multi-process runs on this host use it
        args = (*args, "--master-bind-port", port, "--master-port", port)
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / locustfile), "--headless",
        "-u", str(users), "-r", str(users), "-t", run_time, "--stop-timeout", "20",
        "--host", host, "--csv", str(prefix), "--json-file", f"{prefix}_final", "--only-summary",
        "--loglevel", "INFO", *args,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,  # any working directory must do
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    return LocustRun(proc, prefix)


def generation_tokens_total(base_url: str) -> float:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    values = re.findall(r"^vllm:generation_tokens_total(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.MULTILINE)
    assert values, "no vllm:generation_tokens_total in /metrics"
    return sum(float(v) for v in values)
