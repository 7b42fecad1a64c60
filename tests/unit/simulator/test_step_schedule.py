"""Engine steps in real time: how late each back-to-back step starts (overrun), and the anchored timeline."""

from __future__ import annotations

from simulator.engine import Engine
from simulator.metrics import ServerMetrics
from simulator.profiles import load_profiles
from simulator.streams import EngineDriver

MS = 1_000_000


def _driver(anchored: bool) -> EngineDriver:
    metrics = ServerMetrics("m", lambda: (0, 0, 0.0))
    return EngineDriver(Engine.from_profile(load_profiles()["h100-80gb-bf16"]), metrics, lambda: 0, anchored)


def test_by_default_a_late_step_ends_its_duration_after_it_started() -> None:
    d = _driver(anchored=False)
    assert d._due(start=0, last_due=None, duration_ns=4 * MS) == 4 * MS
    assert d._due(start=5 * MS, last_due=4 * MS, duration_ns=4 * MS) == 9 * MS
    assert d.metrics.step_overrun.sum == 0.001 and d.metrics.step_misses == 0


def test_anchored_steps_absorb_host_time_shorter_than_a_step() -> None:
    d = _driver(anchored=True)
    assert d._due(start=5 * MS, last_due=4 * MS, duration_ns=4 * MS) == 8 * MS  # on the model's timeline
    assert d.metrics.step_misses == 0


def test_an_anchored_step_later_than_its_own_duration_starts_a_new_timeline_and_counts_a_miss() -> None:
    d = _driver(anchored=True)
    assert d._due(start=9 * MS, last_due=4 * MS, duration_ns=4 * MS) == 13 * MS
    assert d.metrics.step_misses == 1
    text = d.metrics.render().decode()
    assert "sim:engine_step_misses_total" in text and "sim:engine_step_overrun_seconds_count" in text
