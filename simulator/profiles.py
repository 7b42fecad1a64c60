"""GPU + model profiles: load and validate `profiles.toml` (or a user file) into typed `Profile`s."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["DEFAULT_PROFILE", "Profile", "ProfileError", "describe", "load_profiles"]

DEFAULT_PROFILE = "rtx2000-ada-16gb-bf16"
GIB = 1024**3


class ProfileError(ValueError):
    """A profile file is malformed: names the file, the profile and the offending key."""


@dataclass(frozen=True)
class Profile:
    """One simulated deployment: a GPU (memory, bandwidth, compute) serving one model in one weight format."""

    name: str
    description: str
    gpu: str
    gpu_memory_gib: float
    memory_bandwidth_gb_s: float
    peak_tflops: float
    bandwidth_efficiency: float
    compute_efficiency: float
    gpu_memory_utilization: float
    runtime_overhead_gib: float
    step_overhead_ms: float
    model: str
    params_b: float
    unquantized_params_b: float
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    weight_bytes_per_param: float
    kv_bytes_per_element: float
    dequant_factor: float
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    assumptions: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def weight_bytes(self) -> float:
        """Bytes of weights read per forward pass: quantized params at their width, the rest at BF16."""
        quantized = (self.params_b - self.unquantized_params_b) * 1e9
        return quantized * self.weight_bytes_per_param + self.unquantized_params_b * 1e9 * 2.0

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V for every layer: 2 × layers × kv_heads × head_dim × bytes per element."""
        return 2.0 * self.num_layers * self.num_kv_heads * self.head_dim * self.kv_bytes_per_element

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens of KV cache that fit: (memory × utilization − weights − runtime overhead) / KV bytes per token."""
        budget = self.gpu_memory_gib * GIB * self.gpu_memory_utilization
        free = budget - self.weight_bytes - self.runtime_overhead_gib * GIB
        return max(0, int(free // self.kv_bytes_per_token))


_REQUIRED = {f.name: f for f in dataclasses.fields(Profile) if f.name != "name"}
_OPTIONAL = {"assumptions", "sources"}


def _check_value(origin: str, key: str, value: object, field: dataclasses.Field[object]) -> object:
    kind = field.type
    if key in _OPTIONAL:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProfileError(f"{origin}: key {key!r} must be a list of strings")
        return tuple(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ProfileError(f"{origin}: key {key!r} must be a string, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ProfileError(f"{origin}: key {key!r} must be a positive integer, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ProfileError(f"{origin}: key {key!r} must be a non-negative number, got {value!r}")
    return float(value)


def _parse_profile(origin: str, name: str, table: object) -> Profile:
    if not isinstance(table, dict):
        raise ProfileError(f"{origin}: profile {name!r} must be a table")
    unknown = sorted(set(table) - set(_REQUIRED))
    if unknown:
        raise ProfileError(
            f"{origin}: profile {name!r} has unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(_REQUIRED))}"
        )
    missing = sorted(set(_REQUIRED) - _OPTIONAL - set(table))
    if missing:
        raise ProfileError(f"{origin}: profile {name!r} is missing key {missing[0]!r}")
    values = {key: _check_value(f"{origin}: profile {name!r}", key, v, _REQUIRED[key]) for key, v in table.items()}
    profile = Profile(name=name, **values)  # type: ignore[arg-type]
    for key in ("bandwidth_efficiency", "compute_efficiency", "gpu_memory_utilization"):
        if not 0.0 < getattr(profile, key) <= 1.0:
            raise ProfileError(f"{origin}: profile {name!r} key {key!r} must be in (0, 1]")
    if profile.kv_capacity_tokens <= 0:
        raise ProfileError(f"{origin}: profile {name!r}: weights and overhead leave no room for KV cache")
    return profile


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    """Profiles by name from `path`, or from the packaged profiles.toml when `path` is None."""
    if path is None:
        origin = "simulator/profiles.toml"
        text = resources.files("simulator").joinpath("profiles.toml").read_text(encoding="utf-8")
    else:
        origin = str(path)
        text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{origin}: {exc}") from exc
    unknown = sorted(set(data) - {"profiles"})
    if unknown:
        raise ProfileError(f"{origin}: unknown top-level key {unknown[0]!r}; allowed: 'profiles'")
    tables = data.get("profiles")
    if not isinstance(tables, dict) or not tables:
        raise ProfileError(f"{origin}: no [profiles.NAME] tables found")
    return {name: _parse_profile(origin, name, table) for name, table in tables.items()}


def describe(profile: Profile) -> str:
    """Human-readable summary with derived figures, assumptions and sources (for --list-profiles)."""
    lines = [
        f"{profile.name}: {profile.description}",
        f"  gpu: {profile.gpu}, {profile.gpu_memory_gib:g} GiB, {profile.memory_bandwidth_gb_s:g} GB/s, "
        f"{profile.peak_tflops:g} TFLOPS peak",
        f"  model: {profile.model}, {profile.params_b:g} B params, {profile.weight_bytes_per_param:g} bytes/param "
        f"-> weights {profile.weight_bytes / GIB:.2f} GiB",
        f"  kv: {profile.kv_bytes_per_token / 1024:.0f} KiB/token, capacity {profile.kv_capacity_tokens} tokens; "
        f"max_model_len {profile.max_model_len}, max_num_seqs {profile.max_num_seqs}, "
        f"max_num_batched_tokens {profile.max_num_batched_tokens}",
    ]
    lines += [f"  assumption: {a}" for a in profile.assumptions]
    lines += [f"  source: {s}" for s in profile.sources]
    return "\n".join(lines)
