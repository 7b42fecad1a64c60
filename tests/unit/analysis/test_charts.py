"""The interactive plots' data: embedded safely in the HTML (no label can end the <script> element, NaN is
null) and carrying the same numbers as the capacity table and the static figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from analysis import plots
from analysis.capacity import CLIENT_CPU_LIMIT_PCT
from analysis.charts import Chart, Kind, Panel, Series, chart_json
from analysis.run import load_run
from tests.unit.analysis.runbuilder import BF16, QUANT, CellSpec, build_run, write_cell


def _chart(name: str, y: list[float]) -> Chart:
    series = Series(name, Kind.LINE, "#1f77b4", [1.0, 2.0, 3.0], y, lo=[math.nan] * 3, hi=[math.inf] * 3)
    return Chart([Panel("t", "x (users)", "y (ms)", [series])])


def test_a_label_holding_script_end_tags_cannot_leave_the_json_element() -> None:
    label = "</script><script>alert(1)</script><!-- & -->"
    text = chart_json(_chart(label, [1.0, 2.0, 3.0]))
    assert "</" not in text and "<!--" not in text and "&" not in text and ">" not in text
    assert json.loads(text)["panels"][0]["series"][0]["name"] == label  # the escapes decode to the label


def test_nan_and_infinity_become_null_and_numpy_numbers_plain_json() -> None:
    y = [float(np.float64(1234.56789)), math.nan, float(np.float32(0.5))]
    data = json.loads(chart_json(_chart("s", y)))
    series = data["panels"][0]["series"][0]
    assert series["y"] == [1234.57, None, 0.5]  # 6 significant digits; NaN → null (JSON has no NaN)
    assert series["lo"] == [None] * 3 and series["hi"] == [None] * 3
    assert "categories" not in data["panels"][0]  # unset options are left out, not null


def test_throughput_chart_carries_the_capacity_tables_values_and_ci_ends(tmp_path: Path) -> None:
    run = load_run(build_run(tmp_path))
    chart = plots.throughput_plot(run.capacity).chart
    assert chart is not None
    cap = run.capacity.set_index(["target_label", "workload", "concurrency"])
    checked = 0
    for panel in chart.panels:
        workload = panel.title.split(":")[0]
        assert panel.x_label == "concurrency (users)" and panel.y_label == "output tok/s"
        assert panel.x_ticks == [16.0, 32.0]
        for series in panel.series:
            for x, y, lo, hi in zip(series.x, series.y, series.lo or [], series.hi or [], strict=True):
                assert y == cap.loc[(series.name, workload, int(x)), "throughput_tok_s"]
                assert math.isnan(lo) or lo <= y <= hi
                checked += 1
    assert checked == 8


def test_server_chart_shades_the_warm_up_and_puts_kv_cache_on_the_right_axis(tmp_path: Path) -> None:
    cell_dir = tmp_path / "run" / BF16 / "batch" / "c16_m256"
    write_cell(cell_dir, BF16, "batch", 16, CellSpec(20, 1000.0), warmup_s=3.0)
    run = load_run(tmp_path / "run")
    (plot,) = plots.server_plots(run.capacity, run.server_metrics, run.cells)
    assert plot.chart is not None
    (panel,) = plot.chart.panels
    kinds = {s.name: s for s in panel.series}
    band = kinds["warm-up"]
    assert band.kind is Kind.BAND and band.x[0] == 0.0 and band.x[1] > 0.0
    assert kinds["KV cache (%)"].right and panel.y2_label == "KV cache %" and panel.y2_max == 100.0
    assert not kinds["waiting (requests)"].right


def test_client_cpu_chart_has_a_bar_per_cell_with_its_maximum_and_the_limit_line(tmp_path: Path) -> None:
    run = load_run(build_run(tmp_path, client_bound=((QUANT, "batch", 32),)))
    plot = plots.client_cpu_plot(run.cells, run.capacity)
    assert plot.chart is not None
    (panel,) = plot.chart.panels
    bars = next(s for s in panel.series if s.kind is Kind.BAR)
    assert panel.categories == bars.x and len(bars.x) == 8
    assert bars.hi is not None and all(h >= m for h, m in zip(bars.hi, bars.y, strict=True))
    assert any(s.kind is Kind.HLINE and s.y == [CLIENT_CPU_LIMIT_PCT] for s in panel.series)
