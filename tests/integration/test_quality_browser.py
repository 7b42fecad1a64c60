"""The report's Quality section in headless chromium: model text that contains markup renders as text.

A chat prompt makes both simulators echo `<script>` (the `[[echo]]` hook); the side-by-side viewer must
show it literally and no script may run. Skips locally without chromium, fails under CI=true.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.bundle import Options, analyse
from analysis.report import write_report
from analysis.run import load_run
from tests.conftest import REPO
from tests.integration.test_report_browser import CHROMIUM, _require_browser
from tests.unit.analysis.runbuilder import BF16, QUANT, build_run

PAYLOAD = "<script>window.__pwned = 1; document.title = 'pwned'</script><b>bold?</b>"


@pytest.mark.browser
def test_quality_viewer_escapes_model_text(tmp_path: Path, simulator_factory) -> None:  # type: ignore[no-untyped-def]
    _require_browser()
    from playwright.sync_api import sync_playwright

    bf16 = simulator_factory("--firehose")
    quant = simulator_factory("--profile", "rtx2000-ada-16gb-awq", "--firehose", "--divergence-rate", "1")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"text": f"Repeat after me: [[echo]]{PAYLOAD}[[/echo]]"}) + "\n")
    scenario = tmp_path / "q.toml"
    scenario.write_text(
        f'[scenario]\nduration_s = 2\n\n[[targets]]\nlabel = "{BF16}"\nurl = "{bf16.url}"\n\n'
        f'[[targets]]\nlabel = "{QUANT}"\nurl = "{quant.url}"\n\n'
        '[[workloads]]\nname = "chat"\nlocustfile = "locustfiles/chat.py"\nconcurrency = [1]\nmax_new_tokens = [40]\n'
        f'options = {{ docs = "{prompts}" }}\n\n[quality]\nprompts = 1\n'
    )
    run = build_run(tmp_path / "runs")
    done = subprocess.run(
        [sys.executable, "-m", "loadgen", "quality", str(scenario), "--run-dir", str(run)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    index = write_report(analyse(load_run(run), Options()), tmp_path / "report")
    assert "<script>window" not in index.read_text()  # escaped in the file, not only in the browser
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(index.as_uri(), wait_until="load")
            assert page.evaluate("() => window.__pwned") is None
            assert "pwned" not in page.title()
            section = page.locator("section#quality")
            section.scroll_into_view_if_needed()
            assert section.locator("table.quality tbody tr").count() >= 2
            reference = section.locator("pre.reference-text").first
            target = section.locator("pre.target-text").first
            assert reference.is_visible() and target.is_visible()
            assert PAYLOAD in reference.inner_text()  # shown literally, as text
            assert section.locator("pre.model-text script, pre.model-text b").count() == 0
            page.screenshot(path=str(tmp_path / "quality.png"), full_page=True)
        finally:
            browser.close()
