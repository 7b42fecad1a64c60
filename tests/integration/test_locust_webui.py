"""A real browser (headless Debian chromium) opens the web UI during a run and finds the live LLM tab."""

from __future__ import annotations

import json
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
NAME = "batch /v1/completions"
# The "Completed" column (the second) of the LLM tab's row for NAME is above n.
COMPLETED_ABOVE = """([n]) => [...document.querySelectorAll('table tr')].some(
    tr => tr.innerText.includes('batch /v1/completions')
    && parseInt(tr.querySelectorAll('td')[1]?.innerText.replace(/,/g, '')) > n)"""


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


def _launch(pw):  # type: ignore[no-untyped-def]
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def _llm_row(page) -> dict[str, str]:  # type: ignore[no-untyped-def]
    table = page.locator("table")
    header = table.locator("th").all_inner_texts()
    cells = table.locator("tr", has_text=NAME).first.locator("td").all_inner_texts()
    return dict(zip(header, cells, strict=False))


def _aggregated(base: str) -> dict[str, object]:
    with urllib.request.urlopen(base + "/stats/requests", timeout=10) as resp:
        payload = json.loads(resp.read())
    rows = next(e["data"] for e in payload["extended_stats"] if e["key"] == "llm")
    return next(r for r in rows if r["name"] == "Aggregated")


def _number(text: str) -> float:
    return float(text.replace(",", "")) if text.strip() else 0.0


# Every chart of the LLM charts page has drawn at least n samples of its first line.
CHARTS_DRAWN = """([n]) => ['toks', 'input', 'ttft', 'itl', 'flight'].every(id => {
    const line = document.querySelector(`#chart-${id} polyline`);
    return line && parseInt(line.dataset.points) >= n;
})"""


def _check_llm_charts(page, base: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The Download Data tab links the live LLM charts page; its charts fill with the run's samples."""
    page.get_by_role("tab", name="Download Data").click()
    link = page.get_by_role("link", name="LLM charts", exact=False)
    assert link.get_attribute("href") == "/llm/charts"
    page.goto(base + "/llm/charts")
    page.wait_for_function(CHARTS_DRAWN, arg=[3], timeout=20_000)
    samples = page.evaluate("window.llmSamples")
    assert all(s["name"] == "Aggregated" for s in samples)
    assert samples[-1]["throughput_tok_s_current"] > 0 and samples[-1]["ttft_p95_ms"] >= samples[-1]["ttft_p50_ms"] > 0
    shown = page.locator("#legend-toks b[data-key=throughput_tok_s_current]").inner_text()
    assert float(shown.replace(",", "")) > 0
    assert page.locator("#state").inner_text() == "running"
    page.screenshot(path=str(tmp_path / "llm_charts.png"), full_page=True)


def test_llm_tab_moves_before_the_first_request_completes(simulator_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Started from the UI's form; requests take ~10 s; TTFT, in-flight and tok/s show before any completes,
    the rolling tok/s holds at Stop, and the Download Report carries the LLM statistics."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    sim = simulator_factory("--fixed-ttft-ms", "300", "--fixed-itl-ms", "50")
    port = _free_port()
    log = (tmp_path / "locust.log").open("w")
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "batch.py"), "--host", sim.url,
           "--web-host", "127.0.0.1", "--web-port", str(port), "--max-new-tokens", "200"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/")
        with sync_playwright() as pw:
            browser = _launch(pw)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(base + "/")
                page.locator("input[name=userCount]").fill("4")
                page.locator("input[name=spawnRate]").fill("4")
                page.get_by_role("button", name="Start").click()
                started = time.monotonic()
                page.get_by_role("tab", name="LLM").click()
                # Tokens stream before the first request (200 tokens × 50 ms ≈ 10 s) completes.
                page.wait_for_function(
                    """() => [...document.querySelectorAll('table tr')].some(tr => {
                        if (!tr.innerText.includes('batch /v1/completions')) return false;
                        const heads = [...document.querySelectorAll('table th')].map(th => th.innerText);
                        const td = [...tr.querySelectorAll('td')].map(c => c.innerText.replace(/,/g, ''));
                        const col = name => parseFloat(td[heads.indexOf(name)] || '0');
                        return col('Output tok/s (10 s)') > 0 && col('TTFT p50 (ms)') > 0;
                    })""",
                    timeout=9_000,
                )
                row = _llm_row(page)
                assert time.monotonic() - started < 10.0
                assert _number(row["Completed"]) == 0, row
                assert _number(row["In flight"]) == 4 and _number(row["Output tokens"]) > 0, row
                assert 250 <= _number(row["TTFT p50 (ms)"]) <= 400, row
                page.screenshot(path=str(tmp_path / "llm_tab_streaming.png"), full_page=True)
                page.wait_for_function(COMPLETED_ABOVE, arg=[0], timeout=30_000)
                page.get_by_role("button", name="Stop").click()
                page.get_by_role("button", name="New").wait_for(timeout=30_000)
                # After Stop the rolling rate holds its value (it is resampled every second while running).
                seen = set()
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    seen.add(_aggregated(base)["throughput_tok_s_current"])
                    time.sleep(0.25)  # pacing a bounded poll, not waiting for a state
                assert len(seen) == 1 and next(iter(seen)) > 0, seen
                page.screenshot(path=str(tmp_path / "llm_tab_stopped.png"), full_page=True)
            finally:
                browser.close()
        with urllib.request.urlopen(base + "/stats/report", timeout=30) as resp:
            report = resp.read().decode()
        assert "<h2>LLM statistics</h2>" in report and f"POST {sim.url}/v1/completions" in report
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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
                assert "TTFT p50 (ms)" in header and "Output tok/s (10 s)" in header
                page.wait_for_function(COMPLETED_ABOVE, arg=[0], timeout=20_000)
                row = table.locator("tr", has_text="batch /v1/completions").first
                cells = row.locator("td").all_inner_texts()
                requests = int(cells[header.index("Completed")])
                ttft = float(cells[header.index("TTFT p50 (ms)")])
                assert requests > 0 and ttft > 0
                # Live: the count grows while the run goes on.
                page.wait_for_function(COMPLETED_ABOVE, arg=[requests], timeout=20_000)
                _check_llm_charts(page, base, tmp_path)
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
