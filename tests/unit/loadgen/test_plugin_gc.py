"""Spawning complete takes what exists out of the cyclic collector's sight (gc.freeze), so full
collections during the run walk only what the run allocates."""

from __future__ import annotations

import gc

from loadgen import plugin


def test_spawning_complete_freezes_what_exists() -> None:
    gc.unfreeze()
    kept = [object() for _ in range(100)]
    try:
        plugin._on_spawning_complete(None)
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
