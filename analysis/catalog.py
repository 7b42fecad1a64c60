"""The GPU/model catalog (`gpu_catalog.toml` shipped beside this module, or a user file): prices and hardware.

Reading the file is the only I/O here; everything it returns is plain data.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.errors import InputError

__all__ = [
    "DEFAULT_CATALOG",
    "Catalog",
    "GpuSpec",
    "ModelSpec",
    "load_catalog",
    "parse_model_bytes_flags",
    "parse_price_flags",
    "parse_weight_flags",
]

DEFAULT_CATALOG = Path(__file__).with_name("gpu_catalog.toml")

_GPU_KEYS = {
    "name": str,
    "hourly_price_usd": float,
    "price_source": str,
    "price_date": str,
    "memory_gb": float,
    "memory_bandwidth_gb_s": float,
    "peak_bf16_dense_tflops": float,
    "spec_source": str,
}
_MODEL_KEYS = {"params_b": float, "weight_gb": float, "source": str}


@dataclass(frozen=True)
class GpuSpec:
    key: str
    name: str
    hourly_price_usd: float | None = None
    price_source: str = ""
    price_date: str = ""
    memory_gb: float | None = None
    memory_bandwidth_gb_s: float | None = None
    peak_bf16_dense_tflops: float | None = None
    spec_source: str = ""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    weight_gb: float
    params_b: float | None = None
    source: str = ""


@dataclass(frozen=True)
class Catalog:
    path: Path
    gpus: dict[str, GpuSpec] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)

    def gpu(self, key: str | None) -> GpuSpec | None:
        return self.gpus.get(key) if key else None

    def model(self, name: str | None) -> ModelSpec | None:
        return self.models.get(name) if name else None


def _typed(path: Path, where: str, table: Any, schema: dict[str, type]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise InputError(f"{path}: [{where}] must be a table")
    unknown = sorted(set(table) - set(schema))
    if unknown:
        raise InputError(f"{path}: [{where}] unknown key(s) {', '.join(unknown)}; allowed: {', '.join(schema)}")
    out: dict[str, Any] = {}
    for key, value in table.items():
        want = schema[key]
        if want is float and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
        elif want is str and isinstance(value, str):
            out[key] = value
        else:
            raise InputError(f"{path}: [{where}] {key} must be a {want.__name__}, got {value!r}")
    return out


def load_catalog(path: Path | None = None) -> Catalog:
    """Parse and validate a catalog file; unknown keys and wrong types name the file, table and key."""
    path = path or DEFAULT_CATALOG
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: price catalog not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - {"gpus", "models"})
    if unknown:
        raise InputError(f"{path}: unknown table(s) {', '.join(unknown)}; allowed: gpus, models")
    gpus = {}
    for key, table in data.get("gpus", {}).items():
        values = _typed(path, f"gpus.{key}", table, _GPU_KEYS)
        gpus[key] = GpuSpec(key=key, **{"name": key, **values})
    models = {}
    for name, table in data.get("models", {}).items():
        values = _typed(path, f'models."{name}"', table, _MODEL_KEYS)
        if "weight_gb" not in values:
            raise InputError(f'{path}: [models."{name}"] needs weight_gb')
        models[name] = ModelSpec(name=name, **values)
    return Catalog(path=path, gpus=gpus, models=models)


def _label_values(flags: tuple[str, ...] | list[str], option: str, example: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for flag in flags:
        label, sep, text = flag.rpartition("=")
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not sep or not label or value < 0 or value != value:
            raise InputError(f"{option} {flag!r}: expected {example}")
        values[label] = value
    return values


def parse_price_flags(flags: tuple[str, ...] | list[str]) -> dict[str, float]:
    """`LABEL=USD_PER_HOUR` strings → {label: price}; a malformed one names itself and the expected form."""
    return _label_values(flags, "--price", "LABEL=USD_PER_HOUR, e.g. RTX2000-16GB-BF16=0.24")


def parse_weight_flags(flags: tuple[str, ...] | list[str]) -> dict[str, float]:
    """`LABEL=GB` strings → {label: model weight size in GB (10^9 bytes)}."""
    return _label_values(flags, "--weights-gb", "LABEL=GB, e.g. RTX2000-16GB-BF16=6.43")


def parse_model_bytes_flags(flags: tuple[str, ...] | list[str]) -> dict[str, float]:
    """`LABEL=GB` strings → {label: weights read per engine step in GB (10^9 bytes)} (what-if projections)."""
    return _label_values(flags, "--model-bytes", "LABEL=GB, e.g. RTX2000-16GB-QUANT=2.25")
