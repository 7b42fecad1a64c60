"""Every analysis command through click's CliRunner: help, output, bad input → one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.cli import main
from analysis.textformat import significant
from tests.unit.analysis.runbuilder import BF16, QUANT, build_run

COMMANDS = ["capacity", "compare", "cost", "slo", "report"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("cli"))


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert "-h, --help" in result.output


def test_help_shows_defaults() -> None:
    assert "[default: 20.0]" in invoke("compare", "--help").output
    assert "[default: 1.0]" in invoke("cost", "--help").output
    assert "[default: 0.01]" in invoke("slo", "--help").output
    assert "[default: RUN/report]" in invoke("report", "--help").output


def test_compare_prints_table_and_writes_csv(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("compare", run_dir, "--baseline", BF16, "--candidate", QUANT, "-o", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "c.csv")
    assert set(table["throughput_tok_s_verdict"]) == {"inconclusive"}  # one-wave cells decide nothing
    assert table["flags"].isna().all()
    assert {"throughput_tok_s_change_ci95_low_pct", "savings_ci95_high_pct", "adequacy"} <= set(table.columns)


def test_compare_unknown_label_exits_2_listing_known(run_dir: Path) -> None:
    result = invoke("compare", run_dir, "--baseline", "A100-BF16")
    assert result.exit_code == 2
    assert f"unknown target label 'A100-BF16'; known labels: {BF16}, {QUANT}" in result.output


def test_cost_prints_assumptions_and_the_seed_tables(run_dir: Path) -> None:
    result = invoke("cost", run_dir, "--price", f"{BF16}=0.72", "--utilization", "0.5")
    assert result.exit_code == 0, result.output
    assert "## Assumptions" in result.output
    assert f"{BF16}: GPU NVIDIA RTX 2000 Ada 16 GB, $0.72/h (--price flag)" in result.output
    assert "Utilization: 50%" in result.output
    # 0.72 $/h ÷ (256 tok/s × 3600 × 0.5) × 1e6 = 1.5625, shown to three significant digits
    assert "| BF16 | 256.0 | 460,800 | 1.56 |" in result.output


@pytest.mark.parametrize("flag", ["nonsense", "=1", f"{BF16}=cheap", f"{BF16}=-1"])
def test_cost_bad_price_flag(run_dir: Path, flag: str) -> None:
    result = invoke("cost", run_dir, "--price", flag)
    assert result.exit_code == 2
    assert "expected LABEL=USD_PER_HOUR" in result.output


def test_cost_price_for_unknown_label(run_dir: Path) -> None:
    result = invoke("cost", run_dir, "--price", "H100=2.0")
    assert result.exit_code == 2 and "known labels" in result.output


def test_slo_selects_concurrency(run_dir: Path) -> None:
    result = invoke("slo", run_dir, "--p95-ms", "1100")
    assert result.exit_code == 0, result.output
    assert "p95 latency ≤ 1100 ms" in result.output


def test_slo_requires_bound() -> None:
    assert invoke("slo", ".").exit_code == 2  # click's usage error: missing --p95-ms


def test_report_default_directory(run_dir: Path) -> None:
    result = invoke("report", run_dir)
    assert result.exit_code == 0, result.output
    index = Path(result.output.strip().splitlines()[-1])
    assert index == run_dir / "report" / "index.html" and index.exists()


def test_missing_directory(tmp_path: Path) -> None:
    for command in (["capacity"], ["compare"], ["cost"], ["report"], ["slo", "--p95-ms", "1"]):
        result = invoke(*command[:1], tmp_path / "nope" / "run", *command[1:])
        assert result.exit_code == 2, command
        assert "no such file or directory" in result.output


def test_directory_without_runs(tmp_path: Path) -> None:
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert "no runs found" in result.output


def test_request_log_missing_column_names_file_and_column(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    log = next(run.rglob("locust_requests_*.csv"))
    text = log.read_text().replace("e2e_ms", "latency")
    log.write_text(text)
    result = invoke("report", run)
    assert result.exit_code == 2
    assert str(log) in result.output and "lacks column(s) e2e_ms" in result.output


def test_locust_csv_with_nan_names_file_and_column(tmp_path: Path) -> None:
    stats = tmp_path / "run_stats.csv"
    stats.write_text(
        "Type,Name,Request Count,Failure Count,Average Content Size,50%,95%,99%\n"
        "POST,chat,10,0,,100,200,300\nAggregated,Aggregated,10,0,128,100,200,300\n"
    )
    result = invoke("capacity", tmp_path / "run")
    assert result.exit_code == 2
    assert "run_stats.csv: column 'Average Content Size' has empty/NaN values" in result.output


def test_empty_request_log_and_zero_window_are_no_data(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    logs = sorted(run.rglob("locust_requests_*.csv"))
    logs[0].write_text(logs[0].read_text().splitlines()[0] + "\n")  # header only
    meta_path = logs[1].parent / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["warmup_s"] = 60.0  # longer than the 10 s cell
    meta_path.write_text(json.dumps(meta))
    result = invoke("capacity", run)
    assert result.exit_code == 0, result.output
    assert result.output.count("no data") == 2
    assert "zero-length window" in result.output


def _replace_in_column(log: Path, column: str, row: int, value: str) -> None:
    """Set data row `row` (1-based) of `column` to `value`, as a hand edit or a broken writer would."""
    import csv as csv_module

    rows = list(csv_module.reader(log.read_text().splitlines()))
    rows[row][rows[0].index(column)] = value
    with log.open("w", newline="") as fh:
        csv_module.writer(fh).writerows(rows)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("success", "yes", "'yes' is not 0 or 1"),
        ("success", "", "an empty value is not 0 or 1"),
        ("e2e_ms", "fast", "'fast' is not a number"),
        ("ttft_ms", "12ms", "'12ms' is not a number"),
        ("output_tokens", "many", "'many' is not a whole number"),
        ("prompt_tokens", "1.5", "'1.5' is not a whole number"),
        ("start_wall_s", "noon", "'noon' is not a number"),
    ],
)
@pytest.mark.parametrize("command", ["capacity", "report"])
def test_bad_request_log_value_names_file_row_and_column(
    tmp_path: Path, command: str, column: str, value: str, expected: str
) -> None:
    run = build_run(tmp_path)
    log = next(run.rglob("locust_requests_*.csv"))
    _replace_in_column(log, column, 3, value)
    result = invoke(command, run)
    assert result.exit_code == 2, result.output
    assert f"{log}: row 3 (line 4), column {column!r}: {expected}" in result.output
    assert "Traceback" not in result.output


def test_header_only_locust_stats_is_no_data(tmp_path: Path) -> None:
    (tmp_path / "run_stats.csv").write_text("Type,Name,Request Count,Failure Count,Average Content Size,50%,95%,99%\n")
    result = invoke("capacity", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "no data" in result.output and "locust_csv" not in result.output  # not a row of NaN figures


def test_report_on_a_locust_prefix_leaves_the_prefix_usable(tmp_path: Path) -> None:
    (tmp_path / "run_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,Average Content Size,50%,95%,99%\nPOST,chat,10,0,128,100,200,300\n"
    )
    first = invoke("report", tmp_path / "run")
    assert first.exit_code == 0, first.output
    assert Path(first.output.strip().splitlines()[-1]) == tmp_path / "run_report" / "index.html"
    again = invoke("capacity", tmp_path / "run")
    assert again.exit_code == 0, again.output  # before: PREFIX/report/ made PREFIX a directory without runs


@pytest.mark.parametrize("text", ["16", "16x", "x128", "0x128", "16x0", "16*128", "a x b", "-1x128"])
def test_report_rejects_bad_reference_cells(run_dir: Path, tmp_path: Path, text: str) -> None:
    result = invoke("report", run_dir, "-o", tmp_path / "r", "--chat-cell", text)
    assert result.exit_code == 2
    assert "Invalid value for '--chat-cell'" in result.output
    assert "CONCURRENCYxMAX_NEW_TOKENS" in result.output or "must both be at least 1" in result.output
    assert not (tmp_path / "r").exists()


def test_reference_cells_default_to_the_seed_and_can_be_chosen(run_dir: Path, tmp_path: Path) -> None:
    help_text = invoke("report", "--help").output
    assert "[default: 16x128]" in help_text and "[default: 32x256]" in help_text
    seed = invoke("cost", run_dir).output
    assert "Chat Workload (conc=16, max_tokens=128)" in seed and "Batch Workload (conc=32, max_new_tokens=256)" in seed
    chosen = invoke("cost", run_dir, "--chat-cell", "32X128", "--batch-cell", "16 x 256").output
    assert "Chat Workload (conc=32, max_tokens=128)" in chosen
    assert "Batch Workload (conc=16, max_new_tokens=256)" in chosen
    result = invoke("report", run_dir, "-o", tmp_path / "r", "--chat-cell", "32x128")
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r" / "index.html").read_text()
    assert "Chat workload (conc=32, max_new_tokens=128)" in html


def test_slo_and_compare_print_cost_to_three_significant_digits_and_attainment_as_percent(
    run_dir: Path, tmp_path: Path
) -> None:
    prices = ["--price", f"{BF16}=0.25", "--price", f"{QUANT}=0.25"]
    assert invoke("slo", run_dir, "--p95-ms", 8000, *prices, "-o", tmp_path / "slo.csv").exit_code == 0
    table = pd.read_csv(tmp_path / "slo.csv")
    printed = invoke("slo", run_dir, "--p95-ms", 8000, *prices)
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    header = lines[0].split()
    plain = header.index("tested_concurrency")  # the columns before it hold no spaces
    assert len(lines) == len(table) + 1
    for (_, row), line in zip(table.iterrows(), lines[1:], strict=True):
        cells = dict(zip(header[:plain], line.split()[:plain], strict=True))
        cost = cells["usd_per_1m_tokens"]
        assert len(cost.replace(".", "").lstrip("0")) == 3  # three significant digits, whatever the size
        assert float(cost) == pytest.approx(row["usd_per_1m_tokens"], abs=5e-4)  # the CSV holds 3 decimals
        assert cells["slo_attainment"] == f"{row['slo_attainment'] * 100:.1f}%"
    compared = invoke("compare", run_dir, "--baseline", BF16, "--candidate", QUANT, *prices)
    assert compared.exit_code == 0, compared.output
    costs = {c for line in compared.stdout.splitlines()[1:] for c in line.split()[-3:]}
    assert "0.136" in costs  # chat c32 at $0.25/h and 512 tok/s: 0.25 / (512 × 3600) × 1e6, not "0.1"


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.13563, "0.136"), (0.067817, "0.0678"), (12.345, "12.3"), (1234.5, "1,234"), (0.0, "0"), (float("nan"), "NaN")],
)
def test_significant_digits(value: float, text: str) -> None:
    assert significant(value) == text
