"""Run `python -m loadgen grid` against real vLLM servers from a scenario written on the fly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from tests.conftest import REPO

__all__ = [
    "AWQ_LABEL",
    "BF16_LABEL",
    "CUT_AT_STOP",
    "cell_dirs",
    "failures",
    "grid_command",
    "requests_of",
    "run_dir_from",
    "run_grid",
    "scenario_text",
]

# Labels the analysis recognises as baseline (BF16) and candidate (AWQ) without flags.
BF16_LABEL = "TINY-LLAMA-BF16"
AWQ_LABEL = "TINY-LLAMA-AWQ"


def scenario_text(
    targets: dict[str, str],
    workloads: list[dict[str, Any]],
    duration_s: int = 8,
    warmup_s: int = 2,
    spawn_rate: int = 50,
) -> str:
    """A scenario TOML; `workloads` hold name, locustfile, api, users, tokens and optional options."""
    lines = [
        "[scenario]",
        'name = "vllm"',
        f"duration_s = {duration_s}",
        f"warmup_s = {warmup_s}",
        f"spawn_rate = {spawn_rate}",
        'order = "interleaved"',
        "stop_timeout_s = 30",
        "request_timeout_s = 60",
    ]
    for label, url in targets.items():
        lines += ["", "[[targets]]", f'label = "{label}"', f'url = "{url}"']
    for w in workloads:
        lines += [
            "",
            "[[workloads]]",
            f'name = "{w["name"]}"',
            f'locustfile = "{w["locustfile"]}"',
            f'api = "{w["api"]}"',
            f"concurrency = [{w['users']}]",
            f"max_new_tokens = [{w['tokens']}]",
        ]
        if w.get("options"):
            pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in w["options"].items())
            lines.append(f"options = {{ {pairs} }}")
    return "\n".join(lines) + "\n"


def grid_command(scenario: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "loadgen", "grid", str(scenario), "--out", str(out)]


def run_dir_from(stdout: str) -> Path | None:
    """The grid prints its run directory as the last line of stdout."""
    lines = stdout.strip().splitlines()
    return Path(lines[-1]) if lines else None


def run_grid(scenario: Path, out: Path, timeout_s: float = 600) -> tuple[subprocess.CompletedProcess[str], Path | None]:
    """Run the grid to the end; return the process and its run directory (None if it printed none)."""
    done = subprocess.run(grid_command(scenario, out), cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    return done, run_dir_from(done.stdout)


def cell_dirs(run_dir: Path) -> list[Path]:
    return sorted(p.parent for p in run_dir.rglob("metadata.json"))


def requests_of(cell: Path) -> pd.DataFrame:
    # `error` is empty in most rows: read it as text, or pandas types an all-empty column as float.
    frame = pd.concat(
        pd.read_csv(p, dtype={"error": "string"}, keep_default_na=False, na_values={"prompt_tokens": [""]})
        for p in sorted(cell.glob("locust_requests_*.csv"))
    )
    return frame.assign(success=frame["success"].astype(bool))


# Users still waiting for response headers when a cell's clock runs out are logged as interrupted; they
# never reached the model, generated nothing, and are no verdict on the server.
CUT_AT_STOP = "interrupted: user stopped before a response"


def failures(requests: pd.DataFrame) -> pd.DataFrame:
    return requests.loc[~requests["success"] & (requests["error"] != CUT_AT_STOP)]
