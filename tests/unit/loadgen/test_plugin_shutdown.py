"""The load generator's shutdown writes no client-health row (it would fall inside the window)."""

from __future__ import annotations

from pathlib import Path

from locust.env import Environment

from loadgen.clienthealth import ClientHealth
from loadgen.plugin import LoadgenRuntime
from loadgen.requestlog import CsvRecordSink


def test_shutdown_writes_no_health_row(tmp_path: Path) -> None:
    runtime = LoadgenRuntime(Environment(user_classes=[]))
    runtime.sink = CsvRecordSink(str(tmp_path / "run"), tag="h-1")
    runtime.health = ClientHealth(active_users=lambda: 0, cpu_percent=lambda: 99.0)
    runtime.sink.write_client(runtime.health.sample())  # one row while running
    runtime.close()
    rows = (tmp_path / "run_client_h-1.csv").read_text().splitlines()
    assert len(rows) == 2  # the header and the row written while running; none at shutdown
