"""Builds small synthetic grid runs on disk in the runner's layout, with numbers checkable by hand.

Each cell has `n` requests, the i-th sent at t0 + i × 8/n s, all completing inside the 10 s window
(warm-up 0), each producing exactly max_new_tokens tokens. So:
    throughput_tok_s = n × max_new_tokens / 10
    e2e_ms(i)        = e2e_base_ms + i          → p95 = e2e_base_ms + 0.95 × (n − 1)
    ttft_ms(i)       = ttft_base_ms + i
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SCENARIO = "day004_quant_vs_bf16"
BF16 = "RTX2000-16GB-BF16"
QUANT = "RTX2000-16GB-QUANT"
T0 = 1_700_000_000.0
DURATION_S = 10.0
PRICE_USD_H = 0.36


@dataclass(frozen=True)
class CellSpec:
    n: int
    e2e_base_ms: float
    ttft_base_ms: float = 100.0


# (label, workload, users) -> spec. Chat: 128 tokens, batch: 256 tokens.
DEFAULT_CELLS: dict[tuple[str, str, int], CellSpec] = {
    (BF16, "chat", 16): CellSpec(20, 1000.0),  # 256 tok/s
    (QUANT, "chat", 16): CellSpec(25, 800.0),  # 320 tok/s: +25 %
    (BF16, "chat", 32): CellSpec(40, 1200.0),  # 512 tok/s
    (QUANT, "chat", 32): CellSpec(40, 1100.0),  # 512 tok/s
    (BF16, "batch", 16): CellSpec(20, 1000.0),  # 512 tok/s
    (QUANT, "batch", 16): CellSpec(24, 900.0),  # 614.4 tok/s: +20 %
    (BF16, "batch", 32): CellSpec(40, 1200.0),  # 1024 tok/s
    (QUANT, "batch", 32): CellSpec(36, 1500.0),  # 921.6 tok/s: −10 %, p95 +~25 %
}
TOKENS = {"chat": 128, "batch": 256}
MODELS = {BF16: "meta-llama/Llama-3.2-3B-Instruct", QUANT: "meta-llama/Llama-3.2-3B-Instruct-AWQ"}


def expected_throughput(spec: CellSpec, tokens: int) -> float:
    return spec.n * tokens / DURATION_S


def expected_p95(spec: CellSpec) -> float:
    return spec.e2e_base_ms + 0.95 * (spec.n - 1)


def _scenario_toml(labels: list[str], prices: dict[str, float | None]) -> str:
    lines = ["[scenario]", f'name = "{SCENARIO}"', f"duration_s = {DURATION_S}", "warmup_s = 0", ""]
    for label in labels:
        lines += ["[[targets]]", f'label = "{label}"', f'url = "http://127.0.0.1:{8000 + labels.index(label)}"']
        lines.append('gpu = "rtx2000-ada-16gb"')
        if prices.get(label) is not None:
            lines.append(f"hourly_price_usd = {prices[label]}")
        lines.append("")
    return "\n".join(lines)


def write_cell(cell_dir: Path, label: str, workload: str, users: int, spec: CellSpec, repeat: int = 0, **meta) -> None:
    tokens = TOKENS[workload]
    cell_dir.mkdir(parents=True, exist_ok=True)
    i = np.arange(spec.n)
    start = T0 + repeat * 100.0 + i * (8.0 / spec.n)
    e2e = spec.e2e_base_ms + i
    ttft = spec.ttft_base_ms + i
    requests = pd.DataFrame(
        {
            "request_id": [f"{label}-{workload}-{users}-{repeat}-{k}" for k in i],
            "target_label": label,
            "workload": workload,
            "api": "completions",
            "max_new_tokens": tokens,
            "start_wall_s": start,
            "t_send_s": start - T0,
            "ttft_ms": ttft,
            "e2e_ms": e2e,
            "tpot_ms": (e2e - ttft) / (tokens - 1),
            "itl_mean_ms": (e2e - ttft) / (tokens - 1),
            "itl_p99_ms": (e2e - ttft) / (tokens - 1),
            "prompt_tokens": 100,
            "output_tokens": tokens,
            "tokens_source": "usage",
            "finish_reason": "length",
            "http_status": 200,
            "success": 1,
            "error": "",
            "user_id": i % users,
            "worker_id": "host-1",
        }
    )
    requests.to_csv(cell_dir / "locust_requests_host-1.csv", index=False)
    arrivals = [" ".join(f"{a:.3f}" for a in np.linspace(t, e, tokens)) for t, e in zip(ttft, e2e, strict=True)]
    pd.DataFrame({"request_id": requests["request_id"], "arrivals_ms": arrivals, "counts": ""}).to_csv(
        cell_dir / "locust_tokens_host-1.csv", index=False
    )
    seconds = np.arange(0, int(DURATION_S) + 1)
    cpu = meta.pop("client_cpu_pct", 40.0)
    pd.DataFrame(
        {
            "wall_s": start[0] + seconds,
            "cpu_pct": cpu,
            "dispatch_lag_p99_ms": 1.0,
            "dispatch_lag_max_ms": 2.0,
            "active_users": users,
        }
    ).to_csv(cell_dir / "locust_client_host-1.csv", index=False)
    pd.DataFrame(
        {
            "wall_s": start[0] + seconds,
            "running": np.minimum(users, seconds * 4),
            "waiting": np.maximum(0, seconds - 5),
            "kv_cache_usage_perc": np.minimum(0.9, seconds / 12.0),
            "preemptions_total": 0,
            "prompt_tokens_total": seconds * 100,
            "generation_tokens_total": seconds * 1000,
        }
    ).to_csv(cell_dir / "server_metrics.csv", index=False)
    generation = meta.pop("server_generation", spec.n * tokens)
    metadata = {
        "scenario": SCENARIO,
        "target_label": label,
        "target_url": "http://127.0.0.1:8000",
        "hourly_price_usd": None,
        "gpu": "rtx2000-ada-16gb",
        "workload": workload,
        "api": "completions",
        "users": users,
        "max_new_tokens": tokens,
        "repeat": repeat,
        "duration_s": DURATION_S,
        "warmup_s": 0.0,
        "csv_prefix": "locust",
        "model": MODELS.get(label, "unknown-model"),
        "metrics_available": True,
        "server_token_delta": {"generation": generation, "prompt": spec.n * 100},
        "status": "completed",
        **meta,
    }
    (cell_dir / "metadata.json").write_text(json.dumps(metadata))
    (cell_dir / "COMPLETE").write_text("done\n")


def build_run(
    root: Path,
    cells: dict[tuple[str, str, int], CellSpec] | None = None,
    repeats: int = 1,
    prices: dict[str, float | None] | None = None,
    labels: tuple[str, ...] = (BF16, QUANT),
    failed: tuple[tuple[str, str, int], ...] = (),
    client_bound: tuple[tuple[str, str, int], ...] = (),
    mismatch: tuple[tuple[str, str, int], ...] = (),
) -> Path:
    """A run directory `root/<scenario>-<stamp>/` with scenario.toml and one dir per cell."""
    cells = DEFAULT_CELLS if cells is None else cells
    prices = {lb: PRICE_USD_H for lb in labels} if prices is None else prices
    run = root / f"{SCENARIO}-20250101T000000Z"
    run.mkdir(parents=True)
    (run / "scenario.toml").write_text(_scenario_toml(list(labels), prices))
    for (label, workload, users), spec in cells.items():
        for r in range(repeats):
            name = f"c{users}_m{TOKENS[workload]}" + (f"_r{r}" if repeats > 1 else "")
            cell_dir = run / label / workload / name
            if (label, workload, users) in failed:
                cell_dir.mkdir(parents=True)
                meta = {"target_label": label, "workload": workload, "users": users, "status": "failed"}
                meta |= {
                    "max_new_tokens": TOKENS[workload],
                    "repeat": r,
                    "duration_s": DURATION_S,
                    "csv_prefix": "locust",
                }
                (cell_dir / "metadata.json").write_text(json.dumps(meta))
                continue
            extra: dict[str, object] = {}
            if (label, workload, users) in client_bound:
                extra["client_cpu_pct"] = 97.0
            if (label, workload, users) in mismatch:
                extra["server_generation"] = spec.n * TOKENS[workload] - 5
            varied = CellSpec(spec.n + r, spec.e2e_base_ms + 10 * r, spec.ttft_base_ms)
            write_cell(cell_dir, label, workload, users, varied, repeat=r, **extra)
    return run


@dataclass(frozen=True)
class SteadySpec:
    """A closed loop in steady state: `users` streams back to back, independent phases, ±10 % jitter."""

    users: int
    e2e_ms: float
    ttft_ms: float = 100.0
    seed: int = 0


def write_steady_cell(cell_dir: Path, label: str, workload: str, spec: SteadySpec, duration_s: float = 60.0) -> None:
    """A cell long enough to judge: throughput ≈ users × tokens / e2e, p95 ≈ e2e × (1 + 1.645 × 0.1)."""
    rng = np.random.default_rng(spec.seed)
    starts, e2es, ttfts, users = [], [], [], []
    for u in range(spec.users):
        t = rng.uniform(0.0, spec.e2e_ms / 1000.0)
        while t < duration_s:
            e2e = spec.e2e_ms * max(0.5, 1.0 + 0.1 * rng.standard_normal())
            starts.append(t)
            e2es.append(e2e)
            ttfts.append(min(e2e / 2, spec.ttft_ms * max(0.5, 1.0 + 0.1 * rng.standard_normal())))
            users.append(u)
            t += e2e / 1000.0
    write_cell(cell_dir, label, workload, spec.users, CellSpec(len(starts), spec.e2e_ms, spec.ttft_ms))
    sent = _Sent(np.array(starts), np.array(e2es), np.array(ttfts), np.array(users))
    _rewrite_requests(cell_dir, label, workload, spec.users, sent, duration_s)


@dataclass(frozen=True)
class _Sent:
    """Requests of a synthetic cell: send offsets (s from T0), latencies, users, open-loop schedule."""

    starts_s: np.ndarray
    e2e_ms: np.ndarray
    ttft_ms: np.ndarray
    users: np.ndarray
    scheduled_s: np.ndarray | None = None


def _rewrite_requests(cell_dir: Path, label: str, workload: str, users: int, sent: _Sent, duration_s: float) -> None:
    """Replace a `write_cell` cell's request log and token traces with `sent`, and its duration."""
    tokens = TOKENS[workload]
    start, e2e_a, ttft_a = T0 + sent.starts_s, sent.e2e_ms, sent.ttft_ms
    n = len(start)
    requests = pd.read_csv(cell_dir / "locust_requests_host-1.csv").iloc[0:0].reindex(range(n))
    requests = requests.assign(
        request_id=[f"{label}-{workload}-{users}-{k}" for k in range(n)],
        target_label=label,
        workload=workload,
        api="completions",
        max_new_tokens=tokens,
        start_wall_s=start,
        t_send_s=start - T0,
        ttft_ms=ttft_a,
        e2e_ms=e2e_a,
        tpot_ms=(e2e_a - ttft_a) / (tokens - 1),
        itl_mean_ms=(e2e_a - ttft_a) / (tokens - 1),
        itl_p99_ms=(e2e_a - ttft_a) / (tokens - 1),
        prompt_tokens=100,
        output_tokens=tokens,
        tokens_source="usage",
        finish_reason="length",
        http_status=200,
        success=1,
        error="",
        user_id=sent.users,
        worker_id="host-1",
    )
    if sent.scheduled_s is not None:
        requests = requests.assign(
            scheduled_wall_s=T0 + sent.scheduled_s, schedule_lag_ms=(sent.starts_s - sent.scheduled_s) * 1000.0
        )
    requests.to_csv(cell_dir / "locust_requests_host-1.csv", index=False)
    arrivals = [" ".join(f"{a:.3f}" for a in np.linspace(t, e, tokens)) for t, e in zip(ttft_a, e2e_a, strict=True)]
    pd.DataFrame({"request_id": requests["request_id"], "arrivals_ms": arrivals, "counts": ""}).to_csv(
        cell_dir / "locust_tokens_host-1.csv", index=False
    )
    meta = json.loads((cell_dir / "metadata.json").read_text())
    meta.update(duration_s=duration_s, server_token_delta={"generation": n * tokens, "prompt": 0})
    meta["users"] = users
    (cell_dir / "metadata.json").write_text(json.dumps(meta))


@dataclass(frozen=True)
class RateSpec:
    """An open-loop cell: Poisson arrivals at `rate_per_s` over a pool of `users`, latencies ±10 % around
    `e2e_ms`, every `drop_every`-th arrival dropped (0: none)."""

    rate_per_s: float
    users: int
    e2e_ms: float
    ttft_ms: float = 100.0
    seed: int = 0
    drop_every: int = 0


def write_rate_cell(cell_dir: Path, label: str, workload: str, spec: RateSpec, duration_s: float = 60.0) -> None:
    """An open-loop cell as a rate grid writes it: request log with schedule columns, dropped arrivals and
    the dispatcher's summary (offered rate = `spec.rate_per_s`)."""
    rng = np.random.default_rng(spec.seed)
    scheduled = np.cumsum(rng.exponential(1.0 / spec.rate_per_s, int(spec.rate_per_s * duration_s * 1.5) + 10))
    scheduled = scheduled[scheduled < duration_s]
    dropped = np.zeros(len(scheduled), dtype=bool)
    if spec.drop_every:
        dropped[spec.drop_every - 1 :: spec.drop_every] = True
    kept = scheduled[~dropped]
    e2e = spec.e2e_ms * np.maximum(0.5, 1.0 + 0.1 * rng.standard_normal(len(kept)))
    ttft = np.minimum(e2e / 2, spec.ttft_ms * np.maximum(0.5, 1.0 + 0.1 * rng.standard_normal(len(kept))))
    write_cell(cell_dir, label, workload, spec.users, CellSpec(len(kept), spec.e2e_ms, spec.ttft_ms))
    sent = _Sent(kept + 0.0002, e2e, ttft, np.arange(len(kept)) % spec.users, scheduled_s=kept)
    _rewrite_requests(cell_dir, label, workload, spec.users, sent, duration_s)
    pd.DataFrame({"scheduled_wall_s": T0 + scheduled[dropped]}).to_csv(
        cell_dir / "locust_drops_host-1.csv", index=False
    )
    summary = {"kind": "poisson", "rate_per_s": spec.rate_per_s, "total_rate_per_s": spec.rate_per_s}
    summary |= {"burstiness": 1.0, "seed": spec.seed, "queue": False, "process_index": 0, "processes": 1}
    summary |= {"scheduled": len(scheduled), "dropped": int(dropped.sum()), "started_wall_s": T0}
    (cell_dir / "locust_arrivals_host-1.json").write_text(json.dumps(summary))
    meta = json.loads((cell_dir / "metadata.json").read_text())
    (cell_dir / "metadata.json").write_text(json.dumps(meta | {"arrival_rate": spec.rate_per_s}))


def build_rate_run(root: Path, cells: dict[tuple[str, str], list[RateSpec]], duration_s: float = 60.0) -> Path:
    """A rate-grid run (cells r<rate>_m<tokens>, one pool per rate) under `root`."""
    run = root / f"{SCENARIO}-20250101T000000Z"
    run.mkdir(parents=True)
    labels = sorted({label for label, _ in cells})
    (run / "scenario.toml").write_text(_scenario_toml(labels, dict.fromkeys(labels, PRICE_USD_H)))
    for (label, workload), specs in cells.items():
        for spec in specs:
            name = f"r{spec.rate_per_s:g}_m{TOKENS[workload]}"
            write_rate_cell(run / label / workload / name, label, workload, spec, duration_s)
    return run


def build_steady_run(root: Path, cells: dict[tuple[str, str], SteadySpec], duration_s: float = 60.0) -> Path:
    """A run of long, steady cells (adequate for verdicts) under `root`."""
    run = root / f"{SCENARIO}-20250101T000000Z"
    run.mkdir(parents=True)
    labels = sorted({label for label, _ in cells})
    (run / "scenario.toml").write_text(_scenario_toml(labels, dict.fromkeys(labels, PRICE_USD_H)))
    for (label, workload), spec in cells.items():
        write_steady_cell(
            run / label / workload / f"c{spec.users}_m{TOKENS[workload]}", label, workload, spec, duration_s
        )
    return run
