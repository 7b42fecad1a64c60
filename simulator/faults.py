"""Fault injection: which (if any) fault a request gets, decided deterministically per request number.

Each fault has a value: 0 = off; 0 < v <= 1 = probability per request (seeded RNG, so a run is
reproducible); v > 1 = every v-th request (integer count, e.g. 3 = requests 3, 6, 9, ...).
Faults are checked in a fixed order and the first one that fires wins, so flags combine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

__all__ = ["FAULT_KINDS", "FaultConfig", "FaultPicker"]

# Order of precedence; the names are also the CLI flags (--fault-<name with dashes>).
FAULT_KINDS = (
    "http_503",
    "http_429",
    "http_500",
    "zero_token",
    "reset",
    "stall",
    "malformed_sse",
    "non_json",
    "error_event",
)


@dataclass(frozen=True)
class FaultConfig:
    """Rates (0..1) or counts (> 1, every N-th request) per fault kind, plus their parameters."""

    http_503: float = 0.0
    http_429: float = 0.0
    http_500: float = 0.0
    zero_token: float = 0.0
    reset: float = 0.0
    stall: float = 0.0
    malformed_sse: float = 0.0
    non_json: float = 0.0
    error_event: float = 0.0
    stall_ms: float = 2000.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in FAULT_KINDS:
                value = getattr(self, f.name)
                if value < 0 or (value > 1 and value != int(value)):
                    raise ValueError(f"fault {f.name}: {value} is neither a rate in [0, 1] nor a whole count > 1")

    def any(self) -> bool:
        return any(getattr(self, kind) for kind in FAULT_KINDS)


class FaultPicker:
    """Stateful picker: call `pick()` once per generation request, in arrival order."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self.config = config
        self.rng = random.Random(seed ^ 0x5EED)
        self.count = 0

    def pick(self) -> str | None:
        self.count += 1
        if not self.config.any():
            return None
        for kind in FAULT_KINDS:
            value = getattr(self.config, kind)
            if value <= 0:
                continue
            if value > 1:
                if self.count % int(value) == 0:
                    return kind
            elif value >= 1 or self.rng.random() < value:
                return kind
        return None
