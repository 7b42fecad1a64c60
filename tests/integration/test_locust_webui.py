"""A real browser (headless Debian chromium) opens the web UI during a run and finds the live LLM tab."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.locustrun import LOCUSTFILES

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing (run: bash scripts/ensure_chromium.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def test_llm_tab_shows_live_numbers(sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _require_chromium()
    from playwright.sync_api import sync_playwright

    port = _free_port()
    log = (tmp_path / "locust.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILES / "batch.py"),
            "--host",
            sim.url,
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
            "--autostart",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "60s",
            "--max-new-tokens",
            "16",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                page = browser.new_page()
                page.goto(base + "/")
                page.get_by_role("tab", name="LLM").click()
                table = page.locator("table")
                table.get_by_text("batch /v1/completions").first.wait_for(timeout=20_000)
                header = table.locator("th").all_inner_texts()
                assert "TTFT p50 (ms)" in header and "Output tok/s (current)" in header
                row = table.locator("tr", has_text="batch /v1/completions").first
                cells = row.locator("td").all_inner_texts()
                requests = int(cells[header.index("# Requests")])
                ttft = float(cells[header.index("TTFT avg (ms)")])
                assert requests > 0 and ttft > 0
                # Live: the count grows while the run goes on.
                page.wait_for_function(
                    """([n]) => [...document.querySelectorAll('table tr')].some(
                        tr => tr.innerText.includes('batch /v1/completions')
                        && parseInt(tr.querySelectorAll('td')[2]?.innerText) > n)""",
                    arg=[requests],
                    timeout=20_000,
                )
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
