"""The report directory: seed file names and shapes, Markdown sections, escaping, no-data marking."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis import naming
from analysis.bundle import Options, analyse
from analysis.report import write_report
from analysis.run import load_run
from analysis.tables import SEED_COLUMNS
from tests.unit.analysis.runbuilder import BF16, QUANT, CellSpec, build_run


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("report")
    run = build_run(
        tmp_path, failed=((QUANT, "chat", 32),), client_bound=((QUANT, "batch", 32),), mismatch=((BF16, "chat", 16),)
    )
    before = _tree_digest(run)
    index = write_report(analyse(load_run(run), Options()), tmp_path / "out")
    assert _tree_digest(run) == before, "inputs must never be modified"
    return index.parent


@pytest.mark.parametrize(
    ("label", "slug"),
    [
        ("RTX2000-16GB-BF16", "rtx16gb_bf16"),
        ("RTX2000-16GB-QUANT", "rtx16gb_quant"),
        ("H100-80GB-FP8", "h100_80gb_fp8"),
        ("my server", "my_server"),
    ],
)
def test_label_slug(label: str, slug: str) -> None:
    assert naming.label_slug(label) == slug


def test_seed_file_names_from_labels_and_scenario() -> None:
    assert naming.capacity_csv_name("day004_quant_vs_bf16", "batch", BF16) == "day004_batch_capacity_rtx16gb_bf16.csv"
    assert naming.capacity_csv_name("day004_quant_vs_bf16", "batch", QUANT) == "day004_batch_capacity_rtx16gb_quant.csv"
    assert naming.notes_name("day004_quant_vs_bf16", BF16, QUANT) == "day004_quant_vs_bf16_notes.md"
    assert naming.cost_doc_name("day004_quant_vs_bf16", BF16, QUANT) == "day004_quant_cost_comparison.md"
    assert naming.notes_name("smoke", "H100-80GB-BF16", "H100-80GB-FP8") == "smoke_fp8_vs_bf16_notes.md"
    assert naming.capacity_csv_name("smoke", "chat", "L4-24GB-AWQ") == "smoke_chat_capacity_l4_24gb_awq.csv"


def test_report_writes_the_seed_artifacts(report_dir: Path) -> None:
    names = {p.name for p in report_dir.iterdir()}
    assert {
        "index.html",
        "day004_batch_capacity_rtx16gb_bf16.csv",
        "day004_batch_capacity_rtx16gb_quant.csv",
        "day004_quant_vs_bf16_notes.md",
        "day004_quant_cost_comparison.md",
        "INFERENCE_PERFORMANCE_BEST_PRACTICES.md",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    csv = pd.read_csv(report_dir / "day004_batch_capacity_rtx16gb_bf16.csv")
    assert list(csv.columns) == SEED_COLUMNS
    assert csv["concurrency"].tolist() == [16, 32]
    assert csv["throughput_tok_s"].tolist() == [512.0, 1024.0]
    assert csv["p95_latency_ms"].tolist() == pytest.approx([1018.05, 1237.05])


def test_notes_have_the_seed_section_and_feynman_lines(report_dir: Path) -> None:
    notes = (report_dir / "day004_quant_vs_bf16_notes.md").read_text()
    assert "## Batch Capacity: BF16 vs Quant" in notes
    # one-wave synthetic cells: the numbers are shown, the verdict says they cannot decide anything
    assert "| 16 | 256 | 512.0 | 614.4 ± 339.8 | +20.0%, inconclusive |" in notes
    assert "| 32 | 256 | 1,024.0 | 921.6 | -10.0%" in notes
    assert "- Chat at conc=16: quant changed throughput by +25.0%" in notes
    assert "- Batch at conc=32: quant changed throughput by -10.0%" in notes
    assert "-10.0%, inconclusive" in notes and "completed requests < 50" in notes
    assert "What the data shows about why: the data cannot rank the workloads" in notes
    assert "Flags" not in notes  # nothing significant, so nothing flagged


def test_cost_doc_has_assumptions_tables_savings_and_caveat(report_dir: Path) -> None:
    doc = (report_dir / "day004_quant_cost_comparison.md").read_text()
    for heading in (
        "## Assumptions",
        "## Chat Workload (conc=16, max_tokens=128)",
        "## Batch Workload (conc=32, max_new_tokens=256)",
        "## Narrative",
    ):
        assert heading in doc
    assert "| Model | Throughput (tok/s) | Tokens/Hour | $/1M Tokens |" in doc
    assert "| BF16 | 256.0 | 921,600 | 0.391 |" in doc
    assert "| Quant | 320.0 | 1,152,000 | 0.312 |" in doc
    assert "**Savings**: 20.0% cost reduction with quantization" in doc
    assert "**Savings**: none: quantization costs 11.1% more" in doc  # batch: dearer, never "-11.1% reduction"
    assert "-11.1% cost reduction" not in doc
    assert "Savings</strong>: none: Quant costs 11.1% more" in (report_dir / "index.html").read_text()
    assert "$0.36/h" in doc and "Utilization: 100%" in doc
    assert "quality" in doc


def test_html_shows_warnings_and_no_data(report_dir: Path) -> None:
    html = (report_dir / "index.html").read_text()
    assert "client-bound" in html and "mismatch: client 2560 vs server 2555" in html
    assert 'class="badge nodata"' in html
    # the SVG namespace is a name, never fetched; 127.0.0.1 is the targets' URL in the text
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "").replace("http://127.0.0.1", "")
    assert html.count('class="chart-data"') == 5 + 7  # 5 summary plots + 7 cells with server metrics
    assert "data:image/svg+xml;base64," not in html  # every plot is drawn from its data, none kept as an image
    best = (report_dir / "INFERENCE_PERFORMANCE_BEST_PRACTICES.md").read_text()
    assert "Batch vs Chat quant impact" in best and "Quality-adjusted cost" in best


def test_every_plot_is_also_written_as_a_static_svg_beside_the_report(report_dir: Path) -> None:
    svgs = sorted((report_dir / "plots").glob("*.svg"))
    assert len(svgs) == 5 + 7  # the summary plots and one per cell with server metrics, as in index.html
    assert {"throughput.svg", "latency.svg", "latency_cdf.svg", "cost.svg", "client_cpu.svg"} <= {p.name for p in svgs}
    assert "server-RTX2000-16GB-BF16_batch_c16_m256.svg" in {p.name for p in svgs}
    for path in svgs:
        assert "<svg" in path.read_text(encoding="utf-8"), path.name
    assert '<a href="plots/">' in (report_dir / "index.html").read_text()


def test_html_escapes_untrusted_labels(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>-BF16"
    cells = {(evil, "chat", 16): CellSpec(20, 1000.0), (QUANT, "chat", 16): CellSpec(25, 800.0)}
    run = build_run(tmp_path, cells=cells, labels=(evil, QUANT))
    html = write_report(analyse(load_run(run), Options()), tmp_path / "out").read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;-BF16" in html
    # the plots' data: the label's </script> is escaped inside the JSON, which still parses to the label
    blobs = re.findall(r'<script type="application/json" class="chart-data">(.*?)</script>', html, re.S)
    assert len(blobs) == 5 + 2  # summary plots + one server plot per cell
    names = {s["name"] for blob in blobs for panel in json.loads(blob)["panels"] for s in panel["series"]}
    assert evil in names and QUANT in names


def test_single_target_run_reports_without_comparison(tmp_path: Path) -> None:
    run = build_run(tmp_path, cells={(BF16, "chat", 16): CellSpec(20, 1000.0)}, labels=(BF16,))
    out = write_report(analyse(load_run(run), Options()), tmp_path / "out").parent
    assert "No comparison: needs two targets." in (out / "index.html").read_text()
    assert (out / "day004_chat_capacity_rtx16gb_bf16.csv").exists()


def test_target_labels_cannot_inject_markup_into_the_markdown(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from analysis.cli import main
    from tests.unit.analysis.runbuilder import BF16, DEFAULT_CELLS, QUANT, build_run

    evil = "QUANT<b>x</b>|y"
    cells = {(evil if label == QUANT else label, w, u): spec for (label, w, u), spec in DEFAULT_CELLS.items()}
    run = build_run(tmp_path, cells=cells, labels=(BF16, evil))
    result = CliRunner().invoke(main, ["report", str(run), "--baseline", BF16, "--candidate", evil])
    assert result.exit_code == 0, result.output
    markdown = [p for p in (run / "report").iterdir() if p.suffix == ".md"]
    assert markdown
    texts = "".join(p.read_text() for p in markdown)
    assert "<b>" not in texts and "QUANT&lt;b>x&lt;/b>\\|y" in texts


def test_cost_figures_read_to_three_significant_digits() -> None:
    from analysis.report import usd

    assert [usd(v) for v in (0.0812345, 0.390625, 12.3456, 1234.5678)] == ["0.0812", "0.391", "12.3", "1,235"]
    assert usd(None) == "—" and usd(math.nan) == "—"
