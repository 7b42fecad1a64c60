"""The fault matrix: each way a server, an operator or a neighbour can misbehave, against real Locust
processes and small hand-written servers on loopback, and the verdict each must get."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration import misbehaving
from tests.integration.locustrun import LOCUSTFILES, run_locust
from tests.integration.misbehaving import Server, serve, well_behaved

pytestmark = pytest.mark.slow

SECRET = "sk-matrix-0123456789-do-not-send"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _poll(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _web_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
            return True
    except OSError:
        return False


def _post(port: int, path: str, form: dict[str, str] | None = None) -> None:
    data = urllib.parse.urlencode(form or {}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=data, timeout=10) as resp:
        assert resp.status == 200


def _locust(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, name: str = "locust"
) -> subprocess.Popen[str]:
    with (tmp_path / f"{name}.log").open("w") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "locust", *args],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _auth(server: Server) -> set[str | None]:
    return {r.headers.get("authorization") for r in server.posts()}


# -- credentials ----------------------------------------------------------------------------------------


def test_web_ui_host_redirect_gets_no_key(tmp_path: Path) -> None:
    with serve(well_behaved) as target, serve(well_behaved) as attacker:
        port = _free_port()
        proc = _locust(
            tmp_path, "-f", str(LOCUSTFILES / "batch.py"), "--host", target.url, "--web-port", str(port),
            "--model", "m", "--max-new-tokens", "4", "--api-key", SECRET,
        )  # fmt: skip
        try:
            _poll(lambda: _web_ready(port), "the web UI")
            _post(port, "/swarm", {"user_count": "1", "spawn_rate": "1", "host": target.url})
            _poll(lambda: len(target.posts()) >= 2, "requests to the configured host")
            _post(port, "/stop")
            _post(port, "/swarm", {"user_count": "1", "spawn_rate": "1", "host": attacker.url})
            _poll(lambda: len(attacker.posts()) >= 2, "requests to the host entered in the web UI")
        finally:
            _stop(proc)
        log = (tmp_path / "locust.log").read_text()
    assert _auth(target) == {f"Bearer {SECRET}"}
    assert _auth(attacker) == {None}, "the key followed the load to a host entered in the web UI"
    assert f"127.0.0.1:{port}" in log  # the web UI listened on loopback only
    assert "not sending the API key" in log and SECRET not in log


def test_spy_worker_never_receives_the_key(tmp_path: Path) -> None:
    spy = tmp_path / "spy.py"
    dump = tmp_path / "worker_options.json"
    spy.write_text(
        "import json\nfrom locust import events\n\n"
        "@events.test_start.add_listener\n"
        "def dump(environment, **_):\n"
        f"    open({str(dump)!r}, 'w').write(json.dumps(vars(environment.parsed_options), default=str))\n"
    )
    batch = str(LOCUSTFILES / "batch.py")
    master_port = _free_port()
    with serve(well_behaved) as target:
        master = _locust(
            tmp_path, "-f", batch, "--master", "--headless", "--expect-workers", "1", "-u", "1", "-r", "1",
            "-t", "4s", "--master-bind-port", str(master_port), "--host", target.url, "--model", "m",
            "--max-new-tokens", "4", "--api-key", SECRET, name="master",
        )  # fmt: skip
        worker = _locust(
            tmp_path, "-f", f"{batch},{spy}", "--worker", "--master-port", str(master_port),
            env={"OPENAI_API_KEY": "sk-the-worker-own"}, name="worker",
        )  # fmt: skip
        try:
            master.wait(timeout=60)
            _poll(lambda: worker.poll() is not None, "the worker to quit")
        finally:
            _stop(master)
            _stop(worker)
    options = json.loads(dump.read_text())
    assert SECRET not in json.dumps(options), "the master forwarded the key in its options"
    assert target.posts() and _auth(target) == {"Bearer sk-the-worker-own"}
    assert "Starting Locust" in (tmp_path / "master.log").read_text()


# -- the grid ---------------------------------------------------------------------------------------------

KILL_SCENARIO = """
[scenario]
name = "k"
duration_s = {duration}
warmup_s = 0
spawn_rate = 50
stop_timeout_s = 5
request_timeout_s = 30

[[targets]]
label = "BF16"
url = "{url}"

[[workloads]]
name = "batch"
locustfile = "locustfiles/batch.py"
concurrency = [2]
max_new_tokens = [8]
"""


def _grid(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", "grid", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout_s
    )


def _locust_pid(runs: Path) -> int | None:
    for meta in runs.rglob("metadata.json"):
        pid = json.loads(meta.read_text()).get("locust_pid")
        if pid:
            return int(pid)
    return None


def test_sigkill_then_resume(tmp_path: Path, simulator_factory) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.runlock import pid_alive

    sim = simulator_factory()
    scenario = tmp_path / "k.toml"
    scenario.write_text(KILL_SCENARIO.format(url=sim.url, duration=60))
    runs = tmp_path / "runs"
    grid = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "grid", str(scenario), "--out", str(runs)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _poll(lambda: _locust_pid(runs) is not None, "the cell's Locust", timeout_s=60)
    finally:
        grid.kill()
        grid.wait(timeout=10)
    pid = _locust_pid(runs)
    assert pid is not None
    _poll(lambda: not pid_alive(pid), "the orphaned Locust to die with its grid", timeout_s=40)

    run_dir = next(runs.iterdir())
    (run_dir / "scenario.toml").write_text(KILL_SCENARIO.format(url=sim.url, duration=3))  # a short re-run
    resumed = _grid("--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    cell = next(p.parent for p in run_dir.rglob("COMPLETE"))
    meta = json.loads((cell / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["locust_pid"] != pid
    assert not (run_dir / "RUN_LOCK").exists()
    assert not any(p.name.startswith(".") for p in cell.parent.iterdir())


# -- streams ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "args", "verdict"),
    [
        ("trickle", ("--request-timeout", "1", "--request-deadline", "1.5"), "deadline: not finished within 1.5 s"),
        ("endless_line", (), "malformed SSE: a line longer than 1048576 bytes without an end"),
        ("json_200", (), "not an event stream: HTTP 200 with application/json"),
        ("error_after_first_token", (), "error event in stream: engine died (code 500)"),
        ("too_many_requests", (), "HTTP 429: "),
    ],
)
def test_bad_stream_gets_its_verdict(tmp_path: Path, behaviour: str, args: tuple[str, ...], verdict: str) -> None:
    with serve(getattr(misbehaving, behaviour)) as server:
        run = run_locust(
            tmp_path, "batch.py", server.url, "--model", "m", "--max-new-tokens", "16", *args,
            users=2, run_time="3s",
        )  # fmt: skip
    assert "Traceback" not in run.output, run.output[-3000:]
    reqs = run.requests()
    finished = reqs[~reqs.error.fillna("").str.startswith("interrupted")]
    assert len(finished) >= 1 and not finished.success.any()
    assert finished.error.str.contains(verdict, regex=False).all(), finished.error.value_counts()
    # Back-off: a failing server is not hammered (before: thousands of requests in 3 s from 2 users).
    assert len(reqs) <= 30, len(reqs)
    if behaviour == "too_many_requests":
        assert (finished.retry_after_s == 1.0).all()
        assert len(reqs) <= 2 * 4  # Retry-After: 1 honoured: about one request per user per second


def test_final_done_without_newline_is_success(tmp_path: Path) -> None:
    with serve(misbehaving.done_without_newline) as server:
        run = run_locust(
            tmp_path, "batch.py", server.url, "--model", "m", "--max-new-tokens", "16", users=2, run_time="2s"
        )
    reqs = run.requests()
    assert len(reqs) >= 2 and reqs.success.all(), reqs.error.value_counts()


def test_usage_lie_is_suspect_and_shown_by_analysis(tmp_path: Path) -> None:
    with serve(misbehaving.usage_lie) as server:
        run = run_locust(
            tmp_path, "batch.py", server.url, "--model", "m", "--max-new-tokens", "16", users=2, run_time="2s"
        )
    reqs = run.requests()
    done = reqs[reqs.success == 1]
    assert len(done) >= 2 and (done.tokens_source == "suspect").all() and (done.output_tokens == 3).all()
    from click.testing import CliRunner

    from analysis.cli import main as analysis_main

    report = CliRunner().invoke(analysis_main, ["report", str(run.prefix)])
    assert report.exit_code == 0, report.output
    html = Path(report.output.strip().splitlines()[-1]).read_text()
    assert "server usage counts suspect in" in html
