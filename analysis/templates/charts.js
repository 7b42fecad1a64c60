// Draws every <figure class="chart"> from the JSON beside it (analysis/charts.py) as SVG: axes with units,
// lines, markers, 95% CI error bars, bars, shaded bands and reference lines; hovering shows the nearest
// point's exact values, clicking a legend entry hides or shows its series. No libraries, no network.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var W = 480, H = 300, HIT = 22;

  function el(tag, attrs, parent) {
    var node = document.createElementNS(NS, tag);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, value, attrs) {
    var node = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    node.textContent = value;
    return node;
  }

  function finite(v) {
    return typeof v === "number" && isFinite(v);
  }

  // A value in a tooltip: as stored (6 significant digits), with thousands separators.
  function exact(v) {
    if (!finite(v)) return "—";
    return Number(v.toPrecision(6)).toLocaleString("en-US", { maximumFractionDigits: 6 });
  }

  function niceStep(range, count) {
    var raw = range / count, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
    return mag * (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10);
  }

  function ticks(lo, hi) {
    var step = niceStep(hi - lo, 5), out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return { values: out, step: step };
  }

  function tickLabel(v, step) {
    var digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step))));
    return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // [min, max] over the values a side of the panel draws, with the panel's fixed limits applied.
  function extent(values, fromZero, fixedMax, pad) {
    var v = values.filter(finite);
    var lo = v.length ? Math.min.apply(null, v) : 0, hi = v.length ? Math.max.apply(null, v) : 1;
    if (fromZero) lo = Math.min(0, lo);
    if (fixedMax !== undefined) hi = fixedMax;
    else if (hi > lo) { var room = (hi - lo) * pad; hi += room; if (!fromZero) lo -= room; }
    if (hi <= lo) { hi = lo + Math.max(1, Math.abs(lo) * 0.5); lo = fromZero ? lo : lo - (hi - lo); }
    return [lo, hi];
  }

  function yValues(series, right) {
    var out = [];
    series.forEach(function (s) {
      if (!!s.right !== right || s.kind === "band" || s.kind === "vline") return;
      out = out.concat(s.y || [], s.lo || [], s.hi || []);
    });
    return out;
  }

  function layout(panel) {
    var cat = !!panel.categories;
    var m = { l: cat ? 96 : 62, r: panel.y2_label ? 60 : 18, t: 30, b: cat ? 104 : 46 };
    var box = { x0: m.l, x1: W - m.r, y0: m.t, y1: H - m.b };
    var xs = [];
    if (!cat) panel.series.forEach(function (s) { if (s.kind !== "hline") xs = xs.concat(s.x || []); });
    var xr = cat ? [0, Math.max(1, panel.categories.length)] : extent(xs.concat(panel.x_ticks || []), false, undefined, 0.04);
    if (!cat && panel.x_min !== undefined) xr[0] = panel.x_min;
    if (!cat && panel.x_max !== undefined) xr[1] = panel.x_max;
    var yr = extent(yValues(panel.series, false), true, panel.y_max, 0.06);
    var y2r = extent(yValues(panel.series, true), true, panel.y2_max, 0.06);
    function sx(v) { return box.x0 + (v - xr[0]) / (xr[1] - xr[0]) * (box.x1 - box.x0); }
    function sy(v, right) {
      var r = right ? y2r : yr;
      return box.y1 - (v - r[0]) / (r[1] - r[0]) * (box.y1 - box.y0);
    }
    return { cat: cat, box: box, xr: xr, yr: yr, y2r: y2r, sx: sx, sy: sy };
  }

  function axes(svg, panel, L) {
    var b = L.box, g = el("g", { "class": "axes" }, svg);
    var yt = ticks(L.yr[0], L.yr[1]);
    yt.values.forEach(function (v) {
      var y = L.sy(v, false);
      el("line", { x1: b.x0, x2: b.x1, y1: y, y2: y, "class": "grid" }, g);
      text(g, b.x0 - 6, y + 4, tickLabel(v, yt.step), { "text-anchor": "end" });
    });
    if (panel.y2_label) {
      var y2t = ticks(L.y2r[0], L.y2r[1]);
      y2t.values.forEach(function (v) { text(g, b.x1 + 6, L.sy(v, true) + 4, tickLabel(v, y2t.step), {}); });
      text(g, 0, 0, panel.y2_label, { "class": "axis-title", transform: "translate(" + (W - 10) + "," + (b.y0 + b.y1) / 2 + ") rotate(90)", "text-anchor": "middle" });
    }
    if (L.cat) {
      panel.categories.forEach(function (c, i) {
        var x = L.sx(i + 0.5), label = c.length > 22 ? c.slice(0, 21) + "…" : c;
        var t = text(g, x, b.y1 + 12, label, { "text-anchor": "end", transform: "rotate(-30 " + x + " " + (b.y1 + 12) + ")" });
        el("title", {}, t).textContent = c;
      });
    } else {
      var xt = panel.x_ticks ? { values: panel.x_ticks, step: 1 } : ticks(L.xr[0], L.xr[1]);
      xt.values.forEach(function (v) {
        var x = L.sx(v);
        el("line", { x1: x, x2: x, y1: b.y0, y2: b.y1, "class": "grid" }, g);
        text(g, x, b.y1 + 16, tickLabel(v, xt.step), { "text-anchor": "middle" });
      });
    }
    el("rect", { x: b.x0, y: b.y0, width: b.x1 - b.x0, height: b.y1 - b.y0, "class": "frame" }, g);
    text(g, (b.x0 + b.x1) / 2, H - 6, panel.x_label, { "class": "axis-title", "text-anchor": "middle" });
    text(g, 0, 0, panel.y_label, { "class": "axis-title", transform: "translate(14," + (b.y0 + b.y1) / 2 + ") rotate(-90)", "text-anchor": "middle" });
    text(g, (b.x0 + b.x1) / 2, 18, panel.title, { "class": "panel-title", "text-anchor": "middle" });
  }

  function marker(g, kind, x, y, color, hollow) {
    var fill = hollow ? "#fff" : color, a = { "class": "marker", stroke: color, fill: fill };
    if (kind === "s") return el("rect", Object.assign(a, { x: x - 3.5, y: y - 3.5, width: 7, height: 7 }), g);
    if (kind === "x") return el("path", Object.assign(a, { d: "M" + (x - 5) + " " + (y - 5) + "l10 10m0 -10l-10 10", "stroke-width": 2.5 }), g);
    return el("circle", Object.assign(a, { cx: x, cy: y, r: hollow ? 5 : 3.5 }), g);
  }

  function errorBar(g, x, lo, hi, color) {
    el("path", { d: "M" + x + " " + lo + "V" + hi + "M" + (x - 3) + " " + lo + "h6M" + (x - 3) + " " + hi + "h6", stroke: color, "class": "errbar" }, g);
  }

  // Draws one series into g; returns its hover targets {x, y, i, w}.
  function drawSeries(g, s, L, barSlot) {
    var b = L.box, right = !!s.right, hits = [], dash = s.dash ? "6 4" : null;
    function stroke(attrs) { if (dash) attrs["stroke-dasharray"] = dash; return attrs; }
    if (s.kind === "band") {
      var x0 = Math.max(b.x0, L.sx(s.x[0])), x1 = Math.min(b.x1, L.sx(s.x[1]));
      el("rect", { x: x0, y: b.y0, width: Math.max(0, x1 - x0), height: b.y1 - b.y0, fill: s.color, "fill-opacity": 0.15 }, g);
      return hits;
    }
    if (s.kind === "hline") {
      var hy = L.sy(s.y[0], right);
      el("line", stroke({ x1: b.x0, x2: b.x1, y1: hy, y2: hy, stroke: s.color, "stroke-width": 1.2 }), g);
      return hits;
    }
    if (s.kind === "vline") {
      var vx = L.sx(s.x[0]);
      el("line", { x1: vx, x2: vx, y1: b.y0, y2: b.y1, stroke: s.color, "stroke-width": 1.6 }, g);
      return hits;
    }
    if (s.kind === "bar") {
      var slot = (b.x1 - b.x0) / L.xr[1] * 0.8 / barSlot.count;
      s.y.forEach(function (v, i) {
        if (!finite(v)) return;
        var cx = L.sx(i + 0.5) - 0.4 * (b.x1 - b.x0) / L.xr[1] + slot * (barSlot.index + 0.5), top = L.sy(v, right), base = L.sy(Math.max(0, L.yr[0]), right);
        el("rect", { x: cx - slot / 2, y: Math.min(top, base), width: slot, height: Math.abs(base - top), fill: s.color, "class": "bar" }, g);
        if (s.hi && finite(s.hi[i])) errorBar(g, cx, L.sy(s.lo && finite(s.lo[i]) ? s.lo[i] : v, right), L.sy(s.hi[i], right), "#333");
        hits.push({ x: cx, y: top, i: i, w: slot / 2, base: base });
      });
      return hits;
    }
    var pts = [];
    s.x.forEach(function (x, i) {
      var y = s.y[i];
      pts.push(finite(x) && finite(y) ? [L.sx(x), L.sy(y, right), i] : null);
    });
    if (s.kind === "line") {
      var d = "", pen = "M";
      pts.forEach(function (p) { if (!p) { pen = "M"; return; } d += pen + p[0].toFixed(1) + " " + p[1].toFixed(1); pen = "L"; });
      if (d) el("path", stroke({ d: d, fill: "none", stroke: s.color, "stroke-width": 1.6, "class": "line" }), g);
    }
    pts.forEach(function (p) {
      if (!p) return;
      var i = p[2];
      if (s.lo && s.hi && finite(s.lo[i]) && finite(s.hi[i])) errorBar(g, p[0], L.sy(s.lo[i], right), L.sy(s.hi[i], right), s.color);
      if (s.marker) marker(g, s.marker, p[0], p[1], s.color, s.hollow && s.hollow[i]).setAttribute("data-i", i);
      hits.push({ x: p[0], y: p[1], i: i });
    });
    return hits;
  }

  function tipLine(tip, label, value, cls) {
    var row = document.createElement("div");
    if (label) row.appendChild(document.createTextNode(label + ": "));
    var span = document.createElement("span");
    span.className = cls;
    span.textContent = value;
    row.appendChild(span);
    tip.appendChild(row);
  }

  function showTip(fig, tip, panel, s, i, event) {
    tip.textContent = "";
    tipLine(tip, "", s.name, "tip-series");
    tipLine(tip, panel.x_label, panel.categories ? String(s.x[i]) : exact(s.x[i]), "tip-x");
    tipLine(tip, s.right ? panel.y2_label : panel.y_label, exact(s.y[i]), "tip-y");
    if (s.lo && s.hi && finite(s.lo[i]) && finite(s.hi[i])) {
      var range = s.kind === "bar" ? exact(s.hi[i]) : "[" + exact(s.lo[i]) + ", " + exact(s.hi[i]) + "]";
      tipLine(tip, s.err_label, range, "tip-err");
    }
    if (s.hollow && s.hollow[i]) tipLine(tip, "", "inadequate cell (hollow marker)", "tip-note");
    tip.hidden = false;
    var r = fig.getBoundingClientRect();
    var left = Math.min(event.clientX - r.left + 14, r.width - tip.offsetWidth - 4);
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = (event.clientY - r.top + 14) + "px";
  }

  function drawPanel(fig, tip, panel) {
    var wrap = document.createElement("div");
    wrap.className = "chart-panel";
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": panel.title }, wrap);
    var L = layout(panel);
    axes(svg, panel, L);
    var bars = panel.series.filter(function (s) { return s.kind === "bar"; });
    var legend = document.createElement("div");
    legend.className = "chart-legend";
    var groups = [], targets = [];
    panel.series.forEach(function (s, k) {
      var g = el("g", { "class": "series series-" + s.kind, "data-series": k, "data-name": s.name }, svg);
      drawSeries(g, s, L, { count: bars.length, index: bars.indexOf(s) }).forEach(function (h) { targets.push([k, h]); });
      groups.push(g);
      var button = document.createElement("button");
      button.type = "button";
      button.className = "legend-item";
      button.setAttribute("aria-pressed", "true");
      button.setAttribute("data-series", k);
      var swatch = document.createElement("span");
      swatch.className = "swatch" + (s.dash ? " dashed" : "") + (s.kind === "band" ? " band" : "");
      swatch.style.borderColor = s.color;
      if (s.kind === "band" || s.kind === "bar") swatch.style.background = s.color;
      button.appendChild(swatch);
      button.appendChild(document.createTextNode(s.name));
      button.addEventListener("click", function () {
        var on = button.getAttribute("aria-pressed") !== "true";
        button.setAttribute("aria-pressed", String(on));
        g.style.display = on ? "" : "none";
      });
      legend.appendChild(button);
    });
    var ring = el("circle", { r: 7, "class": "hover-ring", visibility: "hidden" }, svg);
    svg.addEventListener("mousemove", function (event) {
      var pt = svg.createSVGPoint();
      pt.x = event.clientX;
      pt.y = event.clientY;
      var p = pt.matrixTransform(svg.getScreenCTM().inverse()), best = null, bestD = HIT;
      targets.forEach(function (t) {
        if (groups[t[0]].style.display === "none") return;
        var h = t[1], d = h.w !== undefined
          ? (Math.abs(p.x - h.x) <= h.w && p.y >= Math.min(h.y, h.base) - 8 && p.y <= Math.max(h.y, h.base) ? 0 : Infinity)
          : Math.hypot(p.x - h.x, p.y - h.y);
        if (d < bestD) { bestD = d; best = t; }
      });
      if (!best) { tip.hidden = true; ring.setAttribute("visibility", "hidden"); return; }
      ring.setAttribute("cx", best[1].x);
      ring.setAttribute("cy", best[1].y);
      ring.setAttribute("visibility", "visible");
      showTip(fig, tip, panel, panel.series[best[0]], best[1].i, event);
    });
    svg.addEventListener("mouseleave", function () { tip.hidden = true; ring.setAttribute("visibility", "hidden"); });
    wrap.appendChild(legend);
    return wrap;
  }

  document.querySelectorAll("figure.chart").forEach(function (fig) {
    var data = JSON.parse(fig.querySelector("script.chart-data").textContent);
    var box = fig.querySelector(".chart-panels"), tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    data.panels.forEach(function (panel) { box.appendChild(drawPanel(fig, tip, panel)); });
    fig.appendChild(tip);
  });
})();
