"""Shared fixtures: real simulator processes on loopback, started on port 0 and always stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.launch import SimulatorProcess
from simulator.launch import start_simulator as launch

REPO = Path(__file__).resolve().parents[1]
SimProcess = SimulatorProcess


def start_simulator(tmp_path: Path, *args: str, timeout_s: float = 30.0) -> SimulatorProcess:
    """Start the simulator on 127.0.0.1 port 0, its stderr in a log file under tmp_path."""
    return launch(args, log_path=tmp_path / f"sim-{time.monotonic_ns()}.log", timeout_s=timeout_s)


@pytest.fixture
def simulator_factory(tmp_path: Path) -> Iterator[object]:
    """Call with simulator CLI args; every process started is stopped at teardown."""
    started: list[SimProcess] = []

    def factory(*args: str) -> SimProcess:
        sim = start_simulator(tmp_path, *args)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(simulator_factory) -> SimProcess:  # type: ignore[no-untyped-def]
    """One simulator with the default profile."""
    return simulator_factory()  # type: ignore[operator]
