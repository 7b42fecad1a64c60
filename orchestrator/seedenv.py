"""The seed workflow's interface: `GPU_NAME=... OUT_CSV=... URL=.../v1/completions make grid`.

The environment becomes a one-target batch scenario (the seed's reduced grid: 16 and 32 users × 256
new tokens); after the grid, the CLI writes the analysis package's capacity table to OUT_CSV.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.scenario import Scenario, ScenarioError, scenario_from_text

__all__ = ["SEED_ENV_HELP", "scenario_from_env"]

SEED_ENV_HELP = (
    "URL (http://HOST:PORT/v1/completions or /v1/chat/completions), GPU_NAME (the target label), "
    "OUT_CSV (capacity CSV to write), and optionally CONCURRENCY (default '16 32'), MAX_NEW_TOKENS "
    "(default 256), DURATION_S (default 60), WARMUP_S (default 10), PRICE_PER_HOUR."
)
_API_PATHS = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}


def _ints(env: Mapping[str, str], key: str, default: str) -> list[int]:
    raw = env.get(key, default).replace(",", " ").split()
    try:
        values = [int(v) for v in raw]
    except ValueError as exc:
        raise ScenarioError(f"environment {key}={env.get(key)!r}: expected integers like '{default}'") from exc
    if not values or min(values) < 1:
        raise ScenarioError(f"environment {key}: expected positive integers like '{default}'")
    return values


def _number(env: Mapping[str, str], key: str, default: float) -> float:
    try:
        return float(env.get(key, default))
    except ValueError as exc:
        raise ScenarioError(f"environment {key}={env.get(key)!r}: expected a number") from exc


def scenario_from_env(env: Mapping[str, str]) -> tuple[Scenario, Path | None]:
    url = env["URL"]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ScenarioError(f"environment URL={url!r}: expected http://HOST:PORT/v1/completions")
    path = parts.path.rstrip("/")
    api = _API_PATHS.get(path, "completions")
    if path and path not in _API_PATHS and path != "/v1":
        raise ScenarioError(f"environment URL={url!r}: path must be one of {', '.join(_API_PATHS)} (or none)")
    label = env.get("GPU_NAME") or parts.netloc
    lines = [
        "[scenario]",
        f"name = {json.dumps('seed_' + ''.join(c if c.isalnum() else '_' for c in label))}",
        f"duration_s = {_number(env, 'DURATION_S', 60)}",
        f"warmup_s = {_number(env, 'WARMUP_S', 10)}",
        "spawn_rate = 32",
        "",
        "[[targets]]",
        f"label = {json.dumps(label)}",
        f"url = {json.dumps(f'{parts.scheme}://{parts.netloc}')}",
    ]
    if env.get("PRICE_PER_HOUR"):
        lines.append(f"hourly_price_usd = {_number(env, 'PRICE_PER_HOUR', 0)}")
    lines += [
        "",
        "[[workloads]]",
        'name = "batch"',
        'locustfile = "locustfiles/batch.py"',
        f"api = {json.dumps(api)}",
        f"concurrency = {_ints(env, 'CONCURRENCY', '16 32')}",
        f"max_new_tokens = {_ints(env, 'MAX_NEW_TOKENS', '256')}",
    ]
    scenario = scenario_from_text("\n".join(lines) + "\n", "environment (URL/GPU_NAME)", "seed")
    out_csv = Path(env["OUT_CSV"]).expanduser() if env.get("OUT_CSV") else None
    return scenario, out_csv
