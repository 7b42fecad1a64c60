"""Report figures read right: closed-loop cells drawn, one tested concurrency on a whole-user axis, the warm-up
shaded in the server-metric plots, their legend below the plot."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from analysis import plots
from analysis.run import load_run
from tests.unit.analysis.runbuilder import BF16, CellSpec, write_cell


def _svg(uri: str) -> str:
    return base64.b64decode(uri.split(",", 1)[1]).decode("utf-8")


def _texts(svg: str) -> list[str]:
    return [t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def _one_cell_run(tmp_path: Path, warmup_s: float = 0.0) -> Path:
    cell_dir = tmp_path / "run" / BF16 / "batch" / "c16_m256"
    write_cell(cell_dir, BF16, "batch", 16, CellSpec(20, 1000.0), warmup_s=warmup_s)
    return tmp_path / "run"


def test_one_tested_concurrency_is_drawn_on_a_whole_user_axis(tmp_path: Path) -> None:
    run = load_run(_one_cell_run(tmp_path))
    for plot in (plots.throughput_plot(run.capacity), plots.latency_plot(run.capacity)):
        svg = _svg(plot.uri)
        assert BF16 in svg  # the closed-loop cell is drawn (its legend entry), not an empty panel
        ticks = _texts(svg)
        assert "16" in ticks and not any(re.fullmatch(r"1[56]\.\d", t) for t in ticks), ticks


def test_server_plots_shade_the_warm_up_and_label_every_line(tmp_path: Path) -> None:
    run = load_run(_one_cell_run(tmp_path, warmup_s=3.0))
    (plot,) = plots.server_plots(run.capacity, run.server_metrics, run.cells)
    texts = _texts(_svg(plot.uri))
    assert {"warm-up", "waiting (requests)", "running (requests)", "KV cache (%)"} <= set(texts)
    unshaded = load_run(_one_cell_run(tmp_path / "no-warmup"))
    (plot,) = plots.server_plots(unshaded.capacity, unshaded.server_metrics, unshaded.cells)
    assert "warm-up" not in _texts(_svg(plot.uri))
