"""Report figures, rendered with matplotlib's object API (no pyplot state) to SVG data URIs for inlining.

Each function takes tables and returns `Plot`s; nothing here reads or writes files.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.capacity import CLIENT_CPU_LIMIT_PCT, CellData, cell_window
from analysis.charts import Chart, Kind, Panel, Series, chart_json, color, errors, numbers
from analysis.cost import KEY
from analysis.verdict import side_estimate
from runformat.layout import cell_label

__all__ = [
    "Plot",
    "client_cpu_plot",
    "cost_plot",
    "latency_cdf_plot",
    "latency_plot",
    "rate_plot",
    "server_plots",
    "throughput_plot",
]

# Text stays text in the SVG (smaller, selectable); light grid for reading values off the axes.
_STYLE: dict[str, Any] = {"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3}
_CDF_POINTS = 400


@dataclass(frozen=True)
class Plot:
    """A rendered figure: `uri` is a data: URI usable as an <img> src; `chart` the same figure's data for the
    report's interactive drawing (None: the HTML shows the static image)."""

    key: str
    title: str
    uri: str
    caption: str = ""
    chart: Chart | None = None

    @property
    def chart_json(self) -> str:
        return chart_json(self.chart) if self.chart is not None else ""

    @property
    def svg(self) -> str:
        """The static figure as SVG text (the report writes it beside index.html for documents and slides)."""
        return base64.b64decode(self.uri.split(",", 1)[1]).decode("utf-8")

    @property
    def file_name(self) -> str:
        """`<key>.svg`, a server plot named by its cell's title (its key holds the cell's path)."""
        name = f"server-{self.title}" if self.key.startswith("server:") else self.key
        return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") + ".svg"


def _style() -> AbstractContextManager[None]:
    return mpl.rc_context(_STYLE)  # type: ignore[arg-type]  # the stubs want literal rc keys


def _legend(ax: Axes, **kwargs: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty legend only warns
        ax.legend(**kwargs)


def _render(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(n_panels: int, height: float = 3.2) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(max(4.8, 4.6 * n_panels), height), layout="constrained")
    axes = fig.subplots(1, max(n_panels, 1), squeeze=False)[0]
    return fig, list(axes)


_PLOTTED = ("throughput_tok_s", "p95_latency_ms", "ttft_p95_ms")
_OFFERED = "offered_rate_req_s"
_LOAD_LABEL = {False: "concurrency (users)", True: "offered load, req/s"}


def _per_workload(capacity: pd.DataFrame) -> pd.DataFrame:
    """Per target × cell: each plotted metric's estimate and 95% CI half-width (repeats combined), adequacy,
    and the cell's load on the x-axis: users for a closed loop, offered req/s for an open-loop cell."""
    ok = capacity.dropna(subset=["concurrency", "throughput_tok_s"])
    for column in (_OFFERED, "achieved_rate_req_s", "sustained"):
        if column not in ok:
            ok = ok.assign(**{column: np.nan})
    rows = []
    for key, group in ok.groupby(["target_label", *KEY], dropna=False):  # a closed loop's offered rate is NaN
        row: dict[str, Any] = dict(zip(["target_label", *KEY], key, strict=True))
        for metric in _PLOTTED:
            est = side_estimate(group, metric)
            row[metric], row[f"{metric}_ci95"], row["adequate"] = est.value, est.half_width, est.adequate
        row["open_loop"] = bool(pd.notna(row[_OFFERED]))
        row["load"] = row[_OFFERED] if row["open_loop"] else row["concurrency"]
        row["achieved_rate_req_s"] = float(group["achieved_rate_req_s"].mean())
        row["sustained"] = all(bool(v) for v in group["sustained"].dropna())
        rows.append(row)
    ci = [f"{m}_ci95" for m in _PLOTTED]
    extra = ["open_loop", "load", "achieved_rate_req_s", "sustained"]
    return pd.DataFrame(rows, columns=["target_label", *KEY, "adequate", *_PLOTTED, *ci, *extra])


def _panels(agg: pd.DataFrame) -> list[tuple[str, bool, pd.DataFrame]]:
    """(workload, open loop?, rows): one panel per workload and kind of load, closed-loop panels first."""
    if agg.empty:
        return []
    return [
        (str(workload), bool(open_loop), sub)
        for (open_loop, workload), sub in agg.groupby(["open_loop", "workload"], sort=True)
    ]


def _series(sub: pd.DataFrame, open_loop: bool) -> list[tuple[str, pd.DataFrame]]:
    """A panel's lines, each sorted by load: one per target, and per max_new_tokens and (open loop) pool of
    users where those vary, named by what varies."""
    several_tokens = sub["max_new_tokens"].nunique() > 1
    several_pools = open_loop and sub["concurrency"].nunique() > 1
    keys = ["target_label", "max_new_tokens", *(["concurrency"] if several_pools else [])]
    out = []
    for key, line in sub.groupby(keys):
        first = line.iloc[0]
        name = _series_label(str(key[0]), int(first["max_new_tokens"]), several_tokens)
        out.append((f"{name} c{int(first['concurrency'])}" if several_pools else name, line.sort_values("load")))
    return out


def _points(ax: Axes, line: pd.DataFrame, metric: str, fmt: str, color: str, label: str) -> None:
    """A metric vs load with 95% CI error bars; hollow markers for inadequate cells."""
    ax.errorbar(
        line["load"],
        line[metric],
        yerr=line[f"{metric}_ci95"].fillna(0),
        fmt=fmt,
        color=color,
        capsize=3,
        label=label,
    )
    bad = line[~line["adequate"].astype(bool)]
    if len(bad):
        ax.plot(bad["load"], bad[metric], "o", mfc="white", mec=color, ms=8, zorder=3)


_MAX_TICKS = 12


def _concurrency_axis(ax: Axes, concurrency: pd.Series) -> None:
    """Ticks at the tested concurrencies (whole users); one tested value gets room either side, not the
    ±4% matplotlib gives a single point (15.2–16.8 users)."""
    values = sorted({int(v) for v in concurrency.dropna()})
    if not values:
        return
    if len(values) <= _MAX_TICKS:
        ax.set_xticks(values, [str(v) for v in values])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(values) == 1:
        pad = max(1.0, values[0] * 0.5)
        ax.set_xlim(values[0] - pad, values[0] + pad)


def _x_range(concurrency: pd.Series) -> dict[str, Any]:
    """The interactive twin of `_concurrency_axis`: ticks at the tested users, room either side of one."""
    values = sorted({int(v) for v in concurrency.dropna()})
    out: dict[str, Any] = {"x_ticks": [float(v) for v in values]} if 0 < len(values) <= _MAX_TICKS else {}
    if len(values) == 1:
        pad = max(1.0, values[0] * 0.5)
        out.update(x_min=values[0] - pad, x_max=values[0] + pad)
    return out


# (metric, legend suffix, marker, dashed): the series each target gets in a load panel
_Metric = tuple[str, str, str, bool]


def _load_chart(panels: list[tuple[str, bool, pd.DataFrame]], what: str, ylabel: str, metrics: list[_Metric]) -> Chart:
    """`_load_figure`'s data: per panel, per target line and metric, the estimates with their 95% CI ends."""
    out = []
    for workload, open_loop, sub in panels:
        series = []
        for i, (name, line) in enumerate(_series(sub, open_loop)):
            for metric, suffix, marker, dash in metrics:
                y = numbers(line[metric])
                lo, hi = errors(y, numbers(line[f"{metric}_ci95"]))
                hollow = [not bool(v) for v in line["adequate"]]
                x = numbers(line["load"])
                series.append(
                    Series(name + suffix, Kind.LINE, color(i), x, y, lo, hi, hollow=hollow, marker=marker, dash=dash)
                )
        axis = {} if open_loop else _x_range(sub["load"])
        out.append(Panel(f"{workload}: {what}", _LOAD_LABEL[open_loop], ylabel, series, **axis))
    return Chart(out)


def _series_label(label: str, tokens: int, several_tokens: bool) -> str:
    return f"{label} m{tokens}" if several_tokens else label


def _versus(panels: list[tuple[str, bool, pd.DataFrame]]) -> str:
    """What a figure's x-axes show, for its title."""
    kinds = dict.fromkeys("offered load" if open_loop else "concurrency" for _, open_loop, _ in panels)
    return " and ".join(kinds) or "concurrency"


def _load_figure(
    panels: list[tuple[str, bool, pd.DataFrame]], what: str, ylabel: str, draw: Callable[..., None], fontsize: int
) -> str:
    """One panel per (workload, kind of load) with `draw(ax, line, color, name)` per series, x = load."""
    with _style():
        fig, axes = _figure(len(panels))
        for ax, (workload, open_loop, sub) in zip(axes, panels, strict=False):
            for i, (name, line) in enumerate(_series(sub, open_loop)):
                draw(ax, line, f"C{i}", name)
            ax.set(title=f"{workload}: {what}", xlabel=_LOAD_LABEL[open_loop], ylabel=ylabel)
            if not open_loop:
                _concurrency_axis(ax, sub["load"])
            ax.set_ylim(bottom=0)
            _legend(ax, fontsize=fontsize)
        return _render(fig)


def throughput_plot(capacity: pd.DataFrame) -> Plot:
    """Throughput vs load (concurrency, or offered req/s for open-loop cells), one panel per workload and
    kind of load, one line per target, with 95% CI error bars."""
    panels = _panels(_per_workload(capacity))

    def draw(ax: Axes, line: pd.DataFrame, color: str, name: str) -> None:
        _points(ax, line, "throughput_tok_s", "o-", color, name)

    uri = _load_figure(panels, "throughput", "output tok/s", draw, fontsize=8)
    chart = _load_chart(panels, "throughput", "output tok/s", [("throughput_tok_s", "", "o", False)])
    caption = (
        "Output tokens per second in the steady window; bars: 95% CI (batch means, repeats combined); "
        "hollow markers: cells too short or otherwise inadequate to support a verdict."
    )
    return Plot("throughput", f"Throughput vs {_versus(panels)}", uri, caption, chart)


def latency_plot(capacity: pd.DataFrame) -> Plot:
    """p95 end-to-end latency (solid) and TTFT p95 (dashed) vs load."""
    panels = _panels(_per_workload(capacity))

    def draw(ax: Axes, line: pd.DataFrame, color: str, name: str) -> None:
        _points(ax, line, "p95_latency_ms", "o-", color, f"{name} p95")
        _points(ax, line, "ttft_p95_ms", "s--", color, f"{name} TTFT p95")

    uri = _load_figure(panels, "latency", "ms", draw, fontsize=7)
    metrics = [("p95_latency_ms", " p95", "o", False), ("ttft_p95_ms", " TTFT p95", "s", True)]
    chart = _load_chart(panels, "latency", "ms", metrics)
    caption = "Solid: p95 end-to-end; dashed: TTFT p95; bars: 95% CI; hollow markers: inadequate cells."
    return Plot("latency", f"p95 latency and TTFT p95 vs {_versus(panels)}", uri, caption, chart)


def rate_plot(capacity: pd.DataFrame) -> Plot | None:
    """Open loop: achieved vs offered request rate per workload, one line per target, the diagonal where they
    are equal, crosses on cells that did not sustain their offered rate; None without open-loop cells."""
    panels = [(w, sub) for w, open_loop, sub in _panels(_per_workload(capacity)) if open_loop]
    if not panels:
        return None
    chart = []
    with _style():
        fig, axes = _figure(len(panels))
        for ax, (workload, sub) in zip(axes, panels, strict=False):
            series = []
            for i, (name, line) in enumerate(_series(sub, True)):
                ax.plot(line["load"], line["achieved_rate_req_s"], "o-", color=f"C{i}", label=name)
                x, y = numbers(line["load"]), numbers(line["achieved_rate_req_s"])
                series.append(Series(name, Kind.LINE, color(i), x, y, marker="o"))
            short = sub[~sub["sustained"]]
            if len(short):
                ax.plot(
                    short["load"],
                    short["achieved_rate_req_s"],
                    "x",
                    color="C3",
                    ms=10,
                    mew=2,
                    zorder=3,
                    label="not sustained",
                )
                x, y = numbers(short["load"]), numbers(short["achieved_rate_req_s"])
                series.append(Series("not sustained", Kind.POINTS, color(3), x, y, marker="x"))
            top = float(np.nanmax([sub["load"].max(), sub["achieved_rate_req_s"].max()]))
            ax.plot([0, top], [0, top], ":", color="grey", lw=1, label="achieved = offered")
            series.append(Series("achieved = offered", Kind.LINE, "#808080", [0.0, top], [0.0, top], dash=True))
            title = f"{workload}: achieved vs offered"
            chart.append(Panel(title, _LOAD_LABEL[True], "achieved, req/s", series, x_min=0.0))
            ax.set(title=title, xlabel=_LOAD_LABEL[True], ylabel="achieved, req/s")
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
            _legend(ax, fontsize=7)
        uri = _render(fig)
    caption = (
        "Requests sent per second of the window against the offered arrival rate; dotted: achieved = offered; "
        "red crosses: cells that did not sustain their offered rate (dropped or late arrivals, see the table)."
    )
    return Plot("rate", "Achieved vs offered rate", uri, caption, Chart(chart))


def _load_tag(concurrency: object, offered: object) -> str:
    """A cell's load in a legend or tick label: c<users>, or r<req/s> for an open-loop cell."""
    if isinstance(offered, int | float) and not np.isnan(offered):
        return f"r{offered:g}"
    return f"c{concurrency!s}"


def _window_e2e(cell: CellData) -> np.ndarray:
    req = cell.requests
    if req.empty:
        return np.empty(0)
    ws, we = cell_window(cell)
    start = req["start_wall_s"].to_numpy(dtype=float)
    keep = (start >= ws) & (start <= we) & req["success"].to_numpy(dtype=bool)
    values = req["e2e_ms"].to_numpy(dtype=float)[keep]
    return values[~np.isnan(values)]


def latency_cdf_plot(cells: list[CellData], capacity: pd.DataFrame) -> Plot:
    """Empirical CDF of end-to-end latency per target × cell (concurrency or offered rate), one panel per
    workload."""
    keys = capacity.set_index("cell")[["target_label", *KEY, "repeat"]] if "cell" in capacity else pd.DataFrame()
    workloads = sorted(capacity["workload"].dropna().unique())
    lines: dict[str, list[Series]] = {w: [] for w in workloads}
    with _style():
        fig, axes = _figure(len(workloads))
        panel = dict(zip(workloads, axes, strict=False))
        for cell in cells:
            if cell.name not in keys.index:
                continue
            key = keys.loc[cell.name]
            values = _window_e2e(cell)
            if values.size == 0 or key["workload"] not in panel:
                continue
            probs = np.linspace(0, 1, min(_CDF_POINTS, values.size))
            rep = f" r{key['repeat']!s}" if key["repeat"] else ""
            load = _load_tag(key["concurrency"], key[_OFFERED])
            name = f"{key['target_label']!s} {load} m{key['max_new_tokens']!s}{rep}"
            quantiles = np.quantile(values, probs)
            panel[key["workload"]].plot(quantiles, probs, label=name)
            series = lines[str(key["workload"])]
            series.append(Series(name, Kind.LINE, color(len(series)), numbers(quantiles), numbers(probs)))
        for workload, ax in panel.items():
            ax.set(title=f"{workload}: latency CDF", xlabel="end-to-end latency (ms)", ylabel="fraction of requests")
            ax.axhline(0.95, color="grey", lw=0.8, ls=":")
            _legend(ax, fontsize=6)
        uri = _render(fig)
    p95 = Series("p95", Kind.HLINE, "#808080", y=[0.95], dash=True)
    chart = Chart(
        [
            Panel(f"{w}: latency CDF", "end-to-end latency (ms)", "fraction of requests", [*s, p95], y_max=1.0)
            for w, s in lines.items()
        ]
    )
    caption = "Successful requests started in the window; dotted line: p95."
    return Plot("latency_cdf", "Latency CDFs", uri, caption, chart)


def cost_plot(cost: pd.DataFrame) -> Plot:
    """$/1M tokens per cell, grouped bars per target."""
    data = cost.dropna(subset=["usd_per_1m_tokens"])
    bars: list[Series] = []
    categories: list[str] = []
    with _style():
        fig, (ax,) = _figure(1, height=3.4)
        fig.set_size_inches(max(5.0, 0.9 * data[KEY].drop_duplicates().shape[0] + 3), 3.4)
        if not data.empty:
            loads = [_load_tag(int(c), o) for c, o in zip(data["concurrency"], data[_OFFERED], strict=True)]
            data = data.assign(cell=data["workload"] + " " + pd.Series(loads, index=data.index))
            data = data.assign(cell=data["cell"] + " m" + data["max_new_tokens"].astype(int).astype(str))
            wide = data.pivot_table(index="cell", columns="target_label", values="usd_per_1m_tokens")
            x = np.arange(len(wide.index))
            width = 0.8 / max(len(wide.columns), 1)
            categories = [str(c) for c in wide.index]
            for i, label in enumerate(wide.columns):
                ax.bar(x + i * width - 0.4 + width / 2, wide[label], width, label=str(label))
                bars.append(Series(str(label), Kind.BAR, color(i), list(categories), numbers(wide[label])))
            ax.set_xticks(x, wide.index, rotation=20, ha="right")
            _legend(ax, fontsize=8)
        ax.set(title="Cost per million output tokens", ylabel="$ / 1M tokens")
        uri = _render(fig)
    chart = Chart([Panel("Cost per million output tokens", "cell", "$ / 1M tokens", bars, categories=categories)])
    caption = "Lower is cheaper; assumptions are listed in the cost section."
    return Plot("cost", "$/1M tokens per cell", uri, caption, chart)


def server_plots(
    capacity: pd.DataFrame, server: dict[str, pd.DataFrame], cells: list[CellData] | None = None
) -> list[Plot]:
    """Per cell: KV-cache usage (%) and queue depth (waiting, running) over time from the /metrics scrape, the
    warm-up (before the steady window) shaded."""
    windows = {cell.name: cell_window(cell) for cell in cells or [] if not cell.requests.empty}
    plots = []
    for row in capacity.itertuples(index=False):
        frame = server.get(str(row.cell), pd.DataFrame())
        title = cell_label(row.target_label, row.workload, row.concurrency, row.max_new_tokens, row.repeat)
        if frame.empty or "wall_s" not in frame:
            continue
        with _style():
            fig, (ax,) = _figure(1, height=3.0)
            fig.set_size_inches(5.6, 3.0)
            t0 = frame["wall_s"].min()
            t = frame["wall_s"] - t0
            series = _warmup_band(windows.get(str(row.cell)), t0)
            _shade_warmup(ax, windows.get(str(row.cell)), t0)
            for i, (col, style) in enumerate((("waiting", "-"), ("running", "--"))):
                if col in frame:
                    ax.plot(t, frame[col], style, label=f"{col} (requests)")
                    line = Series(
                        f"{col} (requests)", Kind.LINE, color(i), numbers(t), numbers(frame[col]), dash=i == 1
                    )
                    series.append(line)
            ax.set(xlabel="s since first scrape", ylabel="requests", title=title)
            axes = [ax]
            if "kv_cache_usage_perc" in frame:
                kv = ax.twinx()
                kv.plot(t, frame["kv_cache_usage_perc"] * 100.0, color="C3", label="KV cache (%)")
                pct = numbers(frame["kv_cache_usage_perc"] * 100.0)
                series.append(Series("KV cache (%)", Kind.LINE, color(3), numbers(t), pct, right=True))
                kv.set_ylim(0, 100)
                kv.set_ylabel("KV cache %")
                kv.grid(False)
                axes.append(kv)
            _shared_legend(fig, axes)
            caption = "Queue depth and KV-cache usage; shaded: the warm-up, left out of every figure."
            kv_axis = "kv_cache_usage_perc" in frame
            panel = Panel(
                title, "s since first scrape", "requests", series, "KV cache %" if kv_axis else "", y2_max=100.0
            )
            chart = Chart([panel])
            plots.append(Plot(f"server:{row.cell}", title, _render(fig), caption, chart))
    return plots


def _warmup_band(window: tuple[float, float] | None, t0: float) -> list[Series]:
    """`_shade_warmup`'s band as a series (none when there was no warm-up)."""
    if window is None or not np.isfinite(window[0]) or window[0] <= t0:
        return []
    return [Series("warm-up", Kind.BAND, "#808080", [0.0, float(window[0] - t0)])]


def _shade_warmup(ax: Axes, window: tuple[float, float] | None, t0: float) -> None:
    """Shade from the first scrape to the steady window's start (wall seconds → seconds since t0)."""
    if window is None or not np.isfinite(window[0]) or window[0] <= t0:
        return
    ax.axvspan(0.0, window[0] - t0, color="grey", alpha=0.15, lw=0, label="warm-up")


def _shared_legend(fig: Figure, axes: list[Axes]) -> None:
    """One legend below the plot for every axis (a twin axis's lines too), in the figure's own font size."""
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 4), fontsize=9, frameon=False)


def client_cpu_plot(cells: list[CellData], capacity: pd.DataFrame) -> Plot:
    """Load-generator CPU% per cell (mean bar, max whisker) against the client-bound limit."""
    names = dict(zip(capacity.get("cell", []), capacity["target_label"], strict=False))
    rows = []
    for cell in cells:
        if cell.client.empty or "cpu_pct" not in cell.client:
            continue
        meta = cell.metadata
        label = names.get(cell.name, "?")
        tag = f"{label} {meta.get('workload', '')} c{meta.get('users', '?')} m{meta.get('max_new_tokens', '?')}"
        rows.append((tag, float(cell.client["cpu_pct"].mean()), float(cell.client["cpu_pct"].max())))
    limit = f"client-bound limit {CLIENT_CPU_LIMIT_PCT:g}%"
    series = [Series(limit, Kind.HLINE, color(3), y=[CLIENT_CPU_LIMIT_PCT], dash=True)]
    tags = [tag for tag, _, _ in rows]
    means, maxes = [mean for _, mean, _ in rows], [most for _, _, most in rows]
    if rows:
        bar = Series("mean CPU %", Kind.BAR, color(0), tags, means, lo=means, hi=maxes, err_label="max CPU %")
        series.insert(0, bar)
    chart = Chart([Panel("Load generator CPU per cell", "cell", "CPU %", series, categories=tags, y_max=105.0)])
    with _style():
        fig, (ax,) = _figure(1, height=3.4)
        fig.set_size_inches(max(5.0, 0.7 * len(rows) + 2.5), 3.4)
        if rows:
            x = np.arange(len(tags))
            # max − mean can come out a rounding step below zero when every sample is equal
            err = np.vstack([np.zeros(len(means)), np.clip(np.array(maxes) - np.array(means), 0.0, None)])
            ax.bar(x, means, yerr=err, capsize=3, color="C0", label="mean CPU %")
            ax.set_xticks(x, tags, rotation=30, ha="right", fontsize=7)
        ax.axhline(CLIENT_CPU_LIMIT_PCT, color="C3", ls="--", label=limit)
        ax.set(title="Load generator CPU per cell", ylabel="CPU %")
        ax.set_ylim(0, 105)
        _legend(ax, fontsize=7)
        uri = _render(fig)
    return Plot(
        "client_cpu", "Client CPU per cell", uri, "Above the dashed line the generator, not the server, limits.", chart
    )
