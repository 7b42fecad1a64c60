"""Every simulator fault becomes a failure with a clear reason: in Locust's failures CSV and the request log,
never a success, never a crashed user, never a lost record. The API key never reaches any output."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.integration.locustrun import run_locust

pytestmark = pytest.mark.slow

SECRET = "sk-test-0123456789-do-not-log"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (("--fault-503-rate", "1"), "HTTP 503: "),
        (("--fault-429-rate", "1"), "HTTP 429: "),
        (("--fault-500-rate", "1"), "HTTP 500: "),
        (("--fault-zero-token-rate", "1"), "zero output tokens"),
        (("--fault-reset-rate", "1"), "mid-stream"),
        (("--fault-stall-rate", "1", "--fault-stall-ms", "3000"), "stalled: no data for 1 s"),
        (("--fault-malformed-sse-rate", "1"), "malformed SSE: not an SSE line"),
        (("--fault-non-json-rate", "1"), "malformed SSE: non-JSON data"),
        (("--fault-error-event-rate", "1"), "error event in stream: "),
    ],
)
def test_fault_is_a_clear_failure(simulator_factory, tmp_path: Path, flags: tuple[str, ...], reason: str) -> None:  # type: ignore[no-untyped-def]
    sim = simulator_factory(*flags)
    run = run_locust(
        tmp_path, "batch.py", sim.url, "--max-new-tokens", "8", "--request-timeout", "1", "--api-key", SECRET,
        users=2, run_time="3s",
    )  # fmt: skip
    assert run.proc.returncode == 1, run.output[-3000:]  # Locust's exit code for a run with failures
    assert "Traceback" not in run.output
    reqs = run.requests()
    assert len(reqs) >= 1 and not reqs.success.any()
    assert reqs.error.str.contains(reason, regex=False).all(), reqs.error.value_counts()
    failures = run.failures()
    assert failures and all(reason in f["Error"] for f in failures)
    # Never a lost record: Locust counted exactly the requests the log holds.
    assert run.final_counts() == (len(reqs), len(reqs))
    for path in tmp_path.iterdir():
        assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in run.output


def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        run = run_locust(tmp_path, "batch.py", f"http://127.0.0.1:{port}", "--model", "m", users=2, run_time="2s")
    assert run.proc.returncode == 1 and "Traceback" not in run.output
    reqs = run.requests()
    assert len(reqs) >= 2 and (reqs.error == "connection refused").all()
    assert {f["Error"] for f in run.failures()} == {"LLMRequestError('connection refused')"}
