"""Locust event glue: no client-health row at shutdown; a warning when a key meets an exposed web UI."""

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


def test_an_exposed_web_ui_with_a_key_is_warned_about(caplog) -> None:  # type: ignore[no-untyped-def]
    import argparse
    import logging

    from loadgen import plugin

    options = argparse.Namespace(web_host="0.0.0.0", master_bind_host="127.0.0.1", api_key="sk-secret", host=None)
    runtime = LoadgenRuntime(Environment(user_classes=[], parsed_options=options))
    with caplog.at_level(logging.WARNING):
        plugin._guard_key(runtime, runner=None, web_ui=object())
    assert "the web UI (--web-host 0.0.0.0) listens beyond this machine" in caplog.text
    assert "sk-secret" not in caplog.text
    caplog.clear()
    options.web_host = "127.0.0.1"
    with caplog.at_level(logging.WARNING):
        plugin._guard_key(runtime, runner=None, web_ui=object())
    assert caplog.text == ""
