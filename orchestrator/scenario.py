"""Scenario files (`scenarios/*.toml`): schema, validation with precise errors, and grid expansion.

A scenario names targets, workloads and a grid; `expand` turns it into the ordered list of cells the
runner executes. Validation forbids unknown keys and names the file, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.options import DEFAULT_REQUEST_TIMEOUT_S
from runformat.layout import cell_dir_name
from runformat.search import Over, Slo, SloError, parse_slo

__all__ = [
    "Cell",
    "GridOverrides",
    "QualityConfig",
    "Scenario",
    "ScenarioError",
    "SearchConfig",
    "Target",
    "Workload",
    "expand",
    "load_scenario",
    "parse_scenario",
    "parse_users",
    "safe_name",
    "scenario_from_text",
    "with_overrides",
    "with_target_urls",
]

ORDERS = ("sequential", "interleaved")
# Workload options become the load generator's flags (--prompt-tokens ...); the rest are set by the runner.
WORKLOAD_OPTIONS: dict[str, tuple[type, ...]] = {
    "docs": (str,),
    "prompt_tokens": (int,),
    "output_range_ratio": (int, float),
    "temperature": (int, float),
    "ignore_eos": (bool,),
    "chat_turns": (int,),
    "unique_prompts": (bool,),
    "shared_prefix_tokens": (int,),
    "prefix_groups": (int,),
    "prompt_tokens_range_ratio": (int, float),
    "dataset": (str,),
    "arrival": (str,),
    "burstiness": (int, float),
    "arrival_seed": (int,),
    "arrival_queue": (bool,),
}
# Users in an open-loop cell (a `rates` grid) when neither the workload nor [grid] gives concurrency: the
# pool of requests that can be in flight at once.
DEFAULT_POOL = 64
APIS = ("completions", "chat")


class ScenarioError(ValueError):
    """An invalid scenario; the message names file, key and the allowed values."""


@dataclass(frozen=True)
class Target:
    label: str
    url: str
    model: str | None = None
    api_key_env: str | None = None
    hourly_price_usd: float | None = None
    gpu: str | None = None


@dataclass(frozen=True)
class Workload:
    name: str
    locustfile: str
    api: str = "completions"
    concurrency: tuple[int, ...] = ()
    max_new_tokens: tuple[int, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    rates: tuple[float, ...] = ()  # open loop: offered req/s per cell; concurrency is then the pool


@dataclass(frozen=True)
class QualityConfig:
    """The `[quality]` table: the same seeded prompts to every target, outputs compared to `reference`'s."""

    enabled: bool = False
    prompts: int = 16  # per workload
    max_new_tokens: tuple[int, ...] = ()  # empty: each workload's own grid values
    seed: int = 1234
    concurrency: int = 2
    reference: str | None = None  # a target label; None: the first target
    threshold: float = 0.8  # acceptance: ROUGE-L F1 vs the reference at or above this
    logprobs: bool = True  # also score the reference output under each target where the server allows
    workloads: tuple[str, ...] = ()  # empty: every workload


@dataclass(frozen=True)
class SearchConfig:
    """The `[search]` table: SLOs and search settings for `loadgen search` (None: the command's default)."""

    slos: tuple[Slo, ...] = ()
    over: Over | None = None
    start: float | None = None
    max_load: float | None = None
    resolution_pct: float | None = None
    min_step: float | None = None
    max_attempts: int | None = None
    knee_gain_pct: float | None = None
    pool: int | None = None  # a rate search's users that can have a request in flight


@dataclass(frozen=True)
class Distributed:
    """[distributed]: every cell is a `--master --expect-workers N` run; workers are started elsewhere
    (`locust -f LOCUSTFILE --worker --master-host H` in a restart loop, or a Kubernetes Deployment)."""

    expect_workers: int
    master_bind_host: str = "0.0.0.0"
    master_bind_port: int = 5557
    workers_wait_s: int = 300  # how long a cell's master waits for all its workers before it gives up


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path | None
    targets: tuple[Target, ...]
    workloads: tuple[Workload, ...]
    duration_s: float
    warmup_s: float
    spawn_rate: float
    repeats: int = 1
    workers: int = 1
    order: str = "sequential"
    stop_timeout_s: float = 30.0
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    scrape_metrics: bool = True
    scrape_interval_s: float = 1.0
    description: str = ""
    digest: str = ""
    quality: QualityConfig = field(default_factory=QualityConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    source_text: str = field(default="", compare=False, repr=False)
    # duration_s = "auto": each cell runs until its CIs are within target_ci_pct (--until-ci), at most
    # max_duration_s (then duration_s holds that cap), never less than min_duration_s.
    auto_duration: bool = False
    target_ci_pct: float | None = None
    min_duration_s: float = 0.0
    distributed: Distributed | None = None


@dataclass(frozen=True)
class Cell:
    """One headless Locust run: a target × workload × users × max_new_tokens × repeat."""

    target: Target
    workload: Workload
    users: int
    max_new_tokens: int
    repeat: int
    repeats: int
    rate: float | None = None  # open loop: offered requests/s (users are then the pool)

    @property
    def relpath(self) -> Path:
        pools = len(self.workload.concurrency)
        name = cell_dir_name(self.users, self.max_new_tokens, self.repeat, self.repeats, self.rate, pools)
        return Path(safe_name(self.target.label)) / safe_name(self.workload.name) / name


def safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


# key -> (type(s), required)
_SCENARIO_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), False),
    "description": ((str,), False),
    "duration_s": ((int, float, str), True),
    "target_ci_pct": ((int, float), False),
    "max_duration_s": ((int, float), False),
    "min_duration_s": ((int, float), False),
    "warmup_s": ((int, float), False),
    "spawn_rate": ((int, float), False),
    "repeats": ((int,), False),
    "workers": ((int,), False),
    "order": ((str,), False),
    "stop_timeout_s": ((int, float), False),
    "request_timeout_s": ((int, float), False),
}
_GRID_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "concurrency": ((list,), False),
    "rates": ((list,), False),
    "max_new_tokens": ((list,), False),
}
_SCRAPE_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "enabled": ((bool,), False),
    "interval_s": ((int, float), False),
}
_TARGET_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "label": ((str,), True),
    "url": ((str,), True),
    "model": ((str,), False),
    "api_key_env": ((str,), False),
    "hourly_price_usd": ((int, float), False),
    "gpu": ((str,), False),
}
_WORKLOAD_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "locustfile": ((str,), True),
    "api": ((str,), False),
    "concurrency": ((list,), False),
    "rates": ((list,), False),
    "max_new_tokens": ((list,), False),
    "options": ((dict,), False),
}
_QUALITY_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "enabled": ((bool,), False),
    "prompts": ((int,), False),
    "max_new_tokens": ((list,), False),
    "seed": ((int,), False),
    "concurrency": ((int,), False),
    "reference": ((str,), False),
    "threshold": ((int, float), False),
    "logprobs": ((bool,), False),
    "workloads": ((list,), False),
}
_SEARCH_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "slo": ((list,), False),
    "over": ((str,), False),
    "start": ((int, float), False),
    "max": ((int, float), False),
    "resolution_pct": ((int, float), False),
    "min_step": ((int, float), False),
    "max_attempts": ((int,), False),
    "knee_gain_pct": ((int, float), False),
    "pool": ((int,), False),
}
_TOP_KEYS = {"scenario", "grid", "scrape", "targets", "workloads", "quality", "search", "distributed"}
_DISTRIBUTED_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "expect_workers": ((int,), True),
    "master_bind_host": ((str,), False),
    "master_bind_port": ((int,), False),
    "workers_wait_s": ((int,), False),
}


def _check_table(where: str, table: Any, schema: dict[str, tuple[tuple[type, ...], bool]]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: expected a table")
    for key, value in table.items():
        if key not in schema:
            raise ScenarioError(f"{where}: unknown key '{key}' (allowed: {', '.join(sorted(schema))})")
        types, _ = schema[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(dict.fromkeys("number" if t in (int, float) else t.__name__ for t in types))
            raise ScenarioError(f"{where}.{key}: expected {names}, got {type(value).__name__} {value!r}")
    for key, (_, required) in schema.items():
        if required and key not in table:
            raise ScenarioError(f"{where}: missing required key '{key}'")
    return table


def _int_list(where: str, value: Any) -> tuple[int, ...]:
    if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ScenarioError(f"{where}: expected a non-empty list of positive integers, got {value!r}")
    return tuple(value)


def _rate_list(where: str, value: Any) -> tuple[float, ...]:
    if value is None:
        return ()
    if not value or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 and v != float("inf") for v in value
    ):
        raise ScenarioError(f"{where}: expected a non-empty list of request rates > 0 (req/s), got {value!r}")
    return tuple(float(v) for v in value)


def _check_arrival_options(where: str, options: dict[str, Any], rates: tuple[float, ...]) -> None:
    arrival_keys = [k for k in ("arrival", "burstiness", "arrival_seed", "arrival_queue") if k in options]
    if arrival_keys and not rates:
        raise ScenarioError(f"{where}.options: {', '.join(arrival_keys)} need rates (here or in [grid])")
    kinds = ("poisson", "gamma", "constant")
    if options.get("arrival", "poisson") not in kinds:
        raise ScenarioError(f"{where}.options.arrival: {options['arrival']!r} is not one of {', '.join(kinds)}")
    if "burstiness" in options and not (options["burstiness"] > 0 and options.get("arrival") == "gamma"):
        raise ScenarioError(f'{where}.options.burstiness: expected a number > 0 with arrival = "gamma"')


def parse_scenario(data: dict[str, Any], source: str, default_name: str = "scenario") -> Scenario:
    """Validate a parsed TOML document; `source` names the file in every error."""
    for key in data:
        if key not in _TOP_KEYS:
            raise ScenarioError(f"{source}: unknown table '{key}' (allowed: {', '.join(sorted(_TOP_KEYS))})")
    sc = _check_table(f"{source}: [scenario]", data.get("scenario", {}), _SCENARIO_KEYS)
    grid = _check_table(f"{source}: [grid]", data.get("grid", {}), _GRID_KEYS)
    scrape = _check_table(f"{source}: [scrape]", data.get("scrape", {}), _SCRAPE_KEYS)
    order = sc.get("order", "sequential")
    if order not in ORDERS:
        raise ScenarioError(f"{source}: [scenario].order: '{order}' is not one of {', '.join(ORDERS)}")
    targets = []
    for i, t in enumerate(data.get("targets", [])):
        t = _check_table(f"{source}: [[targets]] #{i + 1}", t, _TARGET_KEYS)
        if not t["url"].startswith(("http://", "https://")):
            raise ScenarioError(f"{source}: [[targets]] #{i + 1}.url: expected http(s)://HOST:PORT, got {t['url']!r}")
        targets.append(Target(**{**t, "url": t["url"].rstrip("/")}))
    if not targets:
        raise ScenarioError(f"{source}: no [[targets]] defined (each needs label and url)")
    if len({t.label for t in targets}) != len(targets):
        raise ScenarioError(f"{source}: target labels must be unique")
    workloads = []
    for i, w in enumerate(data.get("workloads", [])):
        where = f"{source}: [[workloads]] #{i + 1}"
        w = _check_table(where, w, _WORKLOAD_KEYS)
        api = w.get("api", "completions")
        if api not in APIS:
            raise ScenarioError(f"{where}.api: '{api}' is not one of {', '.join(APIS)}")
        _check_table(
            f"{where}.options", w.get("options", {}), {key: (types, False) for key, types in WORKLOAD_OPTIONS.items()}
        )
        ratio = w.get("options", {}).get("output_range_ratio", 0.0)
        if not 0.0 <= ratio < 1.0:
            raise ScenarioError(f"{where}.options.output_range_ratio: expected a number in [0, 1), got {ratio}")
        rates = _rate_list(f"{where}.rates", w.get("rates", grid.get("rates")))
        _check_arrival_options(where, w.get("options", {}), rates)
        conc = w.get("concurrency", grid.get("concurrency", [DEFAULT_POOL] if rates else None))
        tokens = w.get("max_new_tokens", grid.get("max_new_tokens"))
        if conc is None or tokens is None:
            raise ScenarioError(f"{where}: needs concurrency and max_new_tokens (here or in [grid])")
        workloads.append(
            Workload(
                name=w["name"],
                locustfile=w["locustfile"],
                api=api,
                concurrency=_int_list(f"{where}.concurrency", conc),
                max_new_tokens=_int_list(f"{where}.max_new_tokens", tokens),
                options=tuple(sorted(w.get("options", {}).items())),
                rates=rates,
            )
        )
    if not workloads:
        raise ScenarioError(f"{source}: no [[workloads]] defined (each needs name and locustfile)")
    auto, target_ci, min_duration = _auto_duration(source, sc)
    duration = float(sc["max_duration_s"] if auto else sc["duration_s"])
    warmup = float(sc.get("warmup_s", 0.0))
    if duration <= 0 or warmup < 0 or warmup >= duration:
        raise ScenarioError(f"{source}: [scenario] needs duration_s > warmup_s >= 0 (got {duration}, {warmup})")
    if sc.get("request_timeout_s", 120.0) <= 0:
        raise ScenarioError(f"{source}: [scenario].request_timeout_s: expected seconds > 0")
    for key in ("repeats", "workers"):
        if sc.get(key, 1) < 1:
            raise ScenarioError(f"{source}: [scenario].{key}: expected an integer >= 1")
    quality = _quality(source, data.get("quality", {}), targets, workloads)
    search = _search(source, data.get("search", {}))
    distributed = _distributed(source, data.get("distributed"), int(sc.get("workers", 1)))
    canonical = repr(sorted(_flatten(data)))
    return Scenario(
        name=sc.get("name", default_name),
        path=None,
        targets=tuple(targets),
        workloads=tuple(workloads),
        duration_s=duration,
        warmup_s=warmup,
        spawn_rate=float(sc.get("spawn_rate", 10.0)),
        repeats=int(sc.get("repeats", 1)),
        workers=int(sc.get("workers", 1)),
        order=order,
        stop_timeout_s=float(sc.get("stop_timeout_s", 30.0)),
        request_timeout_s=float(sc.get("request_timeout_s", DEFAULT_REQUEST_TIMEOUT_S)),
        scrape_metrics=bool(scrape.get("enabled", True)),
        scrape_interval_s=float(scrape.get("interval_s", 1.0)),
        description=sc.get("description", ""),
        digest=hashlib.sha256(canonical.encode()).hexdigest()[:16],
        quality=quality,
        search=search,
        auto_duration=auto,
        target_ci_pct=target_ci,
        min_duration_s=min_duration,
        distributed=distributed,
    )


def _distributed(source: str, table: Any, workers: int) -> Distributed | None:
    if table is None:
        return None
    d = _check_table(f"{source}: [distributed]", table, _DISTRIBUTED_KEYS)
    if d["expect_workers"] < 1:
        raise ScenarioError(f"{source}: [distributed].expect_workers: expected an integer >= 1")
    port = d.get("master_bind_port", 5557)
    if not 0 < port < 65536:
        raise ScenarioError(f"{source}: [distributed].master_bind_port: expected a TCP port, got {port}")
    if workers > 1:
        raise ScenarioError(f"{source}: [scenario].workers (local --processes) and [distributed] exclude each other")
    wait_s = d.get("workers_wait_s", Distributed.workers_wait_s)
    if wait_s < 1:
        raise ScenarioError(f"{source}: [distributed].workers_wait_s: expected whole seconds >= 1, got {wait_s}")
    return Distributed(d["expect_workers"], d.get("master_bind_host", "0.0.0.0"), port, wait_s)


def _auto_duration(source: str, sc: dict[str, Any]) -> tuple[bool, float | None, float]:
    """(auto, target_ci_pct, min_duration_s) from [scenario]; the auto-only keys need duration_s = "auto"."""
    where = f"{source}: [scenario]"
    value = sc["duration_s"]
    if isinstance(value, str) and value != "auto":
        raise ScenarioError(f'{where}.duration_s: expected a number of seconds or "auto", got {value!r}')
    auto = value == "auto"
    extra = [k for k in ("target_ci_pct", "max_duration_s", "min_duration_s") if k in sc]
    if not auto:
        if extra:
            raise ScenarioError(f'{where}: {", ".join(extra)} only apply with duration_s = "auto"')
        return False, None, 0.0
    if "max_duration_s" not in sc:
        raise ScenarioError(f'{where}: duration_s = "auto" needs max_duration_s (the longest a cell may run)')
    target = float(sc.get("target_ci_pct", 5.0))
    min_duration = float(sc.get("min_duration_s", 0.0))
    if not 0 < target < 100:
        raise ScenarioError(f"{where}.target_ci_pct: expected a percentage in (0, 100), got {target}")
    if not 0 <= min_duration <= float(sc["max_duration_s"]):
        raise ScenarioError(f"{where}.min_duration_s: expected 0 <= min_duration_s <= max_duration_s")
    return True, target, min_duration


def _quality(source: str, table: Any, targets: list[Target], workloads: list[Workload]) -> QualityConfig:
    where = f"{source}: [quality]"
    q = _check_table(where, table, _QUALITY_KEYS)
    labels, names = [t.label for t in targets], [w.name for w in workloads]
    if q.get("reference") is not None and q["reference"] not in labels:
        raise ScenarioError(f"{where}.reference: '{q['reference']}' is not a target (targets: {', '.join(labels)})")
    chosen = q.get("workloads", [])
    unknown = [w for w in chosen if w not in names]
    if unknown or not all(isinstance(w, str) for w in chosen):
        raise ScenarioError(f"{where}.workloads: unknown {unknown!r} (workloads: {', '.join(names)})")
    for key in ("prompts", "concurrency"):
        if q.get(key, 1) < 1:
            raise ScenarioError(f"{where}.{key}: expected an integer >= 1, got {q[key]}")
    if not 0.0 <= q.get("threshold", 0.8) <= 1.0:
        raise ScenarioError(f"{where}.threshold: expected a number in [0, 1], got {q['threshold']}")
    tokens = _int_list(f"{where}.max_new_tokens", q["max_new_tokens"]) if "max_new_tokens" in q else ()
    return QualityConfig(
        enabled=bool(q.get("enabled", False)),
        prompts=int(q.get("prompts", 16)),
        max_new_tokens=tokens,
        seed=int(q.get("seed", 1234)),
        concurrency=int(q.get("concurrency", 2)),
        reference=q.get("reference"),
        threshold=float(q.get("threshold", 0.8)),
        logprobs=bool(q.get("logprobs", True)),
        workloads=tuple(chosen),
    )


def _search(source: str, table: Any) -> SearchConfig:
    where = f"{source}: [search]"
    t = _check_table(where, table, _SEARCH_KEYS)
    try:
        slos = tuple(parse_slo(s) if isinstance(s, str) else parse_slo(repr(s)) for s in t.get("slo", []))
    except SloError as exc:
        raise ScenarioError(f"{where}.slo: {exc}") from exc
    over = t.get("over")
    if over is not None and over not in tuple(Over):
        raise ScenarioError(f"{where}.over: {over!r} is not one of {', '.join(Over)}")
    for key in ("start", "max", "min_step", "max_attempts", "pool"):
        if key in t and not t[key] > 0:
            raise ScenarioError(f"{where}.{key}: expected a number > 0, got {t[key]}")
    for key in ("resolution_pct", "knee_gain_pct"):
        if key in t and t[key] < 0:
            raise ScenarioError(f"{where}.{key}: expected a percentage >= 0, got {t[key]}")

    def num(key: str) -> float | None:
        return float(t[key]) if key in t else None

    return SearchConfig(
        slos=slos,
        over=Over(over) if over is not None else None,
        start=num("start"),
        max_load=num("max"),
        resolution_pct=num("resolution_pct"),
        min_step=num("min_step"),
        max_attempts=int(t["max_attempts"]) if "max_attempts" in t else None,
        knee_gain_pct=num("knee_gain_pct"),
        pool=int(t["pool"]) if "pool" in t else None,
    )


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(obj, dict):
        return [kv for k, v in obj.items() for kv in _flatten(v, f"{prefix}.{k}")]
    if isinstance(obj, list):
        return [kv for i, v in enumerate(obj) for kv in _flatten(v, f"{prefix}[{i}]")]
    return [(prefix, repr(obj))]


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; every error names the file."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ScenarioError(f"{path}: no such scenario file") from exc
    return scenario_from_text(text, str(path), default_name=path.stem, path=path)


def scenario_from_text(text: str, source: str, default_name: str, path: Path | None = None) -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML ({exc})") from exc
    scenario = parse_scenario(data, source, default_name=default_name)
    return dataclasses.replace(scenario, path=path, source_text=text)


def expand(scenario: Scenario, only: dict[str, str] | None = None) -> list[Cell]:
    """All cells in run order. `only` filters by target, workload, users/concurrency, max_new_tokens, repeat."""
    per_target: list[list[Cell]] = []
    for target in scenario.targets:
        cells = [
            Cell(target, w, users, tokens, r, scenario.repeats, rate)
            for r in range(scenario.repeats)
            for w in scenario.workloads
            for rate in (w.rates or (None,))
            for users in w.concurrency
            for tokens in w.max_new_tokens
        ]
        per_target.append(cells)
    if scenario.order == "interleaved":
        # BF16, quant, BF16, quant, ...: drift over time (thermal, neighbours) hits every target alike.
        ordered = [c for group in itertools.zip_longest(*per_target) for c in group if c is not None]
    else:
        ordered = [c for cells in per_target for c in cells]
    return [c for c in ordered if _matches(c, only or {})]


def with_target_urls(scenario: Scenario, urls: dict[str, str]) -> Scenario:
    """Override targets' base URLs by label; an unknown label is an error listing the known ones."""
    labels = [t.label for t in scenario.targets]
    for label, url in urls.items():
        if label not in labels:
            raise ScenarioError(f"--target-url {label}=...: no such target (targets: {', '.join(labels)})")
        if not url.startswith(("http://", "https://")):
            raise ScenarioError(f"--target-url {label}={url}: expected http(s)://HOST:PORT")
    targets = tuple(
        dataclasses.replace(t, url=urls[t.label].rstrip("/")) if t.label in urls else t for t in scenario.targets
    )
    return dataclasses.replace(scenario, targets=targets)


@dataclass(frozen=True)
class GridOverrides:
    """`loadgen grid` flags that replace scenario settings for every workload (None: as written)."""

    duration_s: float | None = None
    warmup_s: float | None = None
    users: tuple[int, ...] | None = None
    spawn_rate: float | None = None

    @classmethod
    def from_recorded(cls, values: dict[str, Any]) -> GridOverrides:
        """Back from `recorded()` (a run's run.json); an unknown key is an error naming it."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ScenarioError(f"grid overrides: unknown key(s) {', '.join(unknown)}")
        fields: dict[str, Any] = {k: tuple(v) if k == "users" else v for k, v in values.items()}
        return cls(**fields)

    def recorded(self) -> dict[str, Any]:
        """The overrides given, by scenario key (what a cell's metadata records)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items() if v is not None}


def parse_users(text: str) -> tuple[int, ...]:
    """`--users 4,8,16` → (4, 8, 16); anything but positive integers is an error naming the flag."""
    try:
        users = tuple(int(part) for part in text.split(","))
    except ValueError:
        users = ()
    if not users or min(users) < 1:
        raise ScenarioError(f"--users {text}: expected positive integers separated by commas (e.g. 4,8,16)")
    return users


def with_overrides(scenario: Scenario, overrides: GridOverrides) -> Scenario:
    """The scenario with `--duration/--warmup/--users/--spawn-rate` applied; `users` replaces every workload's
    concurrency (an open-loop workload's pool). `--duration` runs every cell that long: it turns a
    duration_s = "auto" scenario's stopping rule off."""
    duration = scenario.duration_s if overrides.duration_s is None else overrides.duration_s
    warmup = scenario.warmup_s if overrides.warmup_s is None else overrides.warmup_s
    if not 0 < duration < float("inf"):
        raise ScenarioError(f"--duration {duration:g}: expected seconds > 0")
    if not 0 <= warmup < duration:
        raise ScenarioError(f"--warmup {warmup:g}: expected 0 <= warm-up < duration ({duration:g} s)")
    spawn_rate = scenario.spawn_rate if overrides.spawn_rate is None else overrides.spawn_rate
    if not 0 < spawn_rate < float("inf"):
        raise ScenarioError(f"--spawn-rate {spawn_rate:g}: expected users per second > 0")
    workloads = scenario.workloads
    if overrides.users is not None:
        workloads = tuple(dataclasses.replace(w, concurrency=overrides.users) for w in workloads)
    auto = scenario.auto_duration and overrides.duration_s is None
    return dataclasses.replace(
        scenario,
        duration_s=duration,
        warmup_s=warmup,
        spawn_rate=spawn_rate,
        workloads=workloads,
        auto_duration=auto,
        target_ci_pct=scenario.target_ci_pct if auto else None,
        min_duration_s=scenario.min_duration_s if auto else 0.0,
    )


_FILTERS = {
    "target": lambda c: c.target.label,
    "workload": lambda c: c.workload.name,
    "users": lambda c: str(c.users),
    "concurrency": lambda c: str(c.users),
    "max_new_tokens": lambda c: str(c.max_new_tokens),
    "rate": lambda c: "" if c.rate is None else f"{c.rate:g}",
    "repeat": lambda c: str(c.repeat),
}


def _matches(cell: Cell, only: dict[str, str]) -> bool:
    for key, wanted in only.items():
        if key not in _FILTERS:
            raise ScenarioError(f"--only {key}=...: unknown key (allowed: {', '.join(_FILTERS)})")
        if _FILTERS[key](cell) not in wanted.split(","):
            return False
    return True
