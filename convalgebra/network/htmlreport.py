"""The interactive HTML report of a layer graph: one self-contained, offline file.

:func:`graph_html` writes a page with no external resource (no CDN, no network): a sortable
table of the nodes (shape, receptive field size/jump/start per axis, parameters, MACs,
activation memory), the input grid where hovering a row draws the receptive box of that
node's selected unit, one slider per spatial axis (or a click on the grid) to pick the unit,
its exact effective field as a heatmap, and a CSV download. The boxes are the library's own:
:meth:`LayerGraph.unit_receptive_field` of every position along each axis, embedded in the
page. The effective fields are computed in the page, by the backward pass of
:func:`~convalgebra.effective.effective_receptive_field` (uniform weights) over the embedded
linearised network (:func:`field_data`): a field for every unit at the cost of one sparse
matrix per axis and layer input (57 KB for resnet18 at 3x224x224).

Examples
--------
>>> from convalgebra.network.graph import LayerGraph
>>> from convalgebra.network.layers import Conv
>>> g = LayerGraph.sequential((1, 8, 8), [Conv(2, 3, stride=2)], name="tiny")
>>> data = report_data(g)
>>> [n["node"] for n in data["nodes"]], data["nodes"][1]["boxes"][0]
(['input', 'conv1'], [[0, 2], [2, 4], [4, 6]])
>>> page = graph_html(g)
>>> import re
>>> re.findall(r'(?:src|href)="([^"]*)"', page)  # nothing loaded from anywhere
['data:,', '#']
"""

from __future__ import annotations

import html
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

from .. import budget
from ..errors import ConvAlgebraError, shown
from .linearised import node_steps

__all__ = [
    "DEFAULT_MAX_UNITS",
    "DEFAULT_MAX_FIELD_ENTRIES",
    "field_data",
    "report_data",
    "graph_html",
    "graph_summary_html",
    "axis_names",
    "canvas_scale",
]

#: Largest number of unit lookups (one per position along the longest axis of each node).
DEFAULT_MAX_UNITS = 50_000
#: Most non-zero entries of the per-axis matrices the page embeds for its effective fields
#: (about 25 bytes each), and most multiply-adds the page's backward pass may take per unit.
DEFAULT_MAX_FIELD_ENTRIES = 1_000_000
_AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
_TABLE_KEYS = ("node", "kind", "output", "params", "MACs", "act_bytes", "RF w/o gates", "flags")


def _number(value: Any) -> Any:
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else float(value)
    return value


def axis_names(n: int) -> tuple[str, ...]:
    """``("H", "W")`` for two spatial axes; ``("x0", …)`` past three."""
    return _AXIS_NAMES.get(n, tuple(f"x{a}" for a in range(n)))


def _unit_count(graph: Any) -> int:
    """Lookups the report makes at most: the diagonal units, then one per position of
    each axis for the diagonal units that read nothing."""
    total = 0
    for node in graph.nodes:
        sizes = _sizes(graph, node)
        total += max(sizes) + sum(sizes) if sizes else 1
    return total


def _sizes(graph: Any, node: str) -> tuple[int, ...] | None:
    axes, shape = graph.axes(node), graph.shape(node)
    if not axes or any(a is None for a in axes) or graph.spatial_ndim == 0:
        return None
    return tuple(shape[a] for a in axes)


def _boxes(graph: Any, node: str, sizes: tuple[int, ...] | None) -> dict[str, Any]:
    """Per axis, the clipped ``[first, last]`` of each unit along it (None: reads nothing).

    A unit's box is one interval per axis and the interval along an axis depends on that
    axis' position only, so the units on the diagonal give every axis at once; a diagonal
    unit that reads nothing (one of its axes' positions reads only padding) is asked again
    with the other axes at a unit that reads something.
    """
    if sizes is None:
        box = graph.unit_receptive_field(node).box
        return {"units": None, "boxes": None, "fixed": None if box is None else list(box)}
    per_axis: list[list] = [[None] * s for s in sizes]
    missing, reference = [], None
    for p in range(max(sizes)):
        position = tuple(min(p, s - 1) for s in sizes)
        box = graph.unit_receptive_field(node, position).box
        if box is None:
            missing.append(p)
            continue
        reference = reference or position
        for a, s in enumerate(sizes):
            if p < s:
                per_axis[a][p] = list(box[a])
    if missing and reference is None:
        reference = _reading_unit(graph, node, sizes)
    for p in missing:
        if reference is None:
            break
        for a, s in enumerate(sizes):
            if p < s and per_axis[a][p] is None:
                box = graph.unit_receptive_field(node, (*reference[:a], p, *reference[a + 1 :])).box
                per_axis[a][p] = None if box is None else list(box[a])
    return {"units": list(sizes), "boxes": per_axis, "fixed": None}


def _reading_unit(
    graph: Any, node: str, sizes: tuple[int, ...], limit: int = 100_000
) -> tuple[int, ...] | None:
    """The first unit (C order) that reads some input, or None if none does."""
    import itertools

    for count, position in enumerate(itertools.product(*(range(s) for s in sizes))):
        if count >= limit:
            raise ConvAlgebraError(
                f"no unit of node {shown(node)} among its first {limit:,} reads any input "
                "on the diagonal or before: the report cannot place its boxes"
            )
        if graph.unit_receptive_field(node, position).box is not None:
            return position
    return None


def _sparse(matrix: Any) -> list:
    """``[n_out, n_in, row starts, columns, values]`` of a matrix (CSR, exact floats)."""
    import numpy as np

    rows, cols = np.nonzero(matrix)
    starts = np.searchsorted(rows, np.arange(matrix.shape[0] + 1))
    values = [float(v) for v in matrix[rows, cols]]
    return [int(matrix.shape[0]), int(matrix.shape[1]), starts.tolist(), cols.tolist(), values]


def _work(step: Any, shape: tuple[int, ...]) -> int:
    """Multiply-adds of the page's contraction of one step from a node of ``shape``."""
    if step.matrices is None:
        return 0
    total, sizes = 0, list(shape[1:])
    for a, matrix in enumerate(step.matrices):
        rest = math.prod(sizes[:a]) * math.prod(sizes[a + 1 :])
        total += int((matrix != 0).sum()) * rest
        sizes[a] = matrix.shape[1]
    return total


def field_data(graph: Any, *, max_entries: int = DEFAULT_MAX_FIELD_ENTRIES) -> dict[str, Any]:
    """The linearised network the page's effective fields are computed from.

    Every node's input ports as :func:`~convalgebra.network.linearised.node_steps` gives
    them (per-axis matrices, sparse, and a gain): clicking a unit, the page runs the backward
    pass of :func:`~convalgebra.effective.effective_receptive_field` (uniform weights) from
    that unit, contracting these matrices in the same order, and draws the normalised
    absolute gradient at the graph's first input. A node that has no field says why
    (``notes``); above ``max_entries`` entries or multiply-adds per unit no field is
    embedded and ``omitted`` says so.

    Examples
    --------
    >>> from convalgebra.network.graph import LayerGraph
    >>> from convalgebra.network.layers import Conv
    >>> g = LayerGraph.sequential((1, 4), [Conv(1, 3)])
    >>> field_data(g)["steps"]["conv1"]
    [['input', 0.3333333333333333, [[2, 4, [0, 3, 6], [0, 1, 2, 1, 2, 3], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]]]]
    """
    n = graph.spatial_ndim
    if n not in (1, 2) or not graph.inputs:
        return {"omitted": "effective fields are drawn for inputs with 1 or 2 spatial axes"}
    steps: dict[str, list] = {}
    notes: dict[str, str] = {}
    entries = work = 0
    for v in graph.nodes:
        shape = graph.shape(v)
        if len(shape) != n + 1:
            notes[v] = f"node {v!r} of shape {tuple(shape)} has no spatial axes"
            continue
        try:
            own = node_steps(graph, v)
        except ConvAlgebraError as exc:
            notes[v] = str(exc)
            continue
        blocked = [notes[s.source] for s in own if s.source in notes]
        if blocked:
            notes[v] = blocked[0]
            continue
        entries += sum(int((m != 0).sum()) for s in own for m in s.matrices or ())
        work += sum(_work(s, shape) for s in own)
        steps[v] = [
            [s.source, s.gain, None if s.matrices is None else [_sparse(m) for m in s.matrices]]
            for s in own
        ]
    try:
        budget.require_steps(
            "the effective fields of the report (the larger of its matrix entries and its multiply-adds per unit)",
            max(entries, work),
            max_entries,
            "use a smaller input shape or a larger max_field_entries=",
            option="max_field_entries",
            unit="entries",
        )
    except ConvAlgebraError as exc:
        return {"omitted": str(exc)}
    return {"input": graph.inputs[0], "steps": steps, "notes": notes}


def report_data(
    graph: Any,
    *,
    name: str = "graph",
    max_units: int = DEFAULT_MAX_UNITS,
    max_field_entries: int = DEFAULT_MAX_FIELD_ENTRIES,
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (``name``: the graph's).

    Raises
    ------
    ConvAlgebraError
        The report would look up more than ``max_units`` unit fields.
    """
    if not isinstance(max_units, int) or isinstance(max_units, bool) or max_units < 1:
        raise ConvAlgebraError(f"max_units must be a positive integer, got {shown(max_units)}")
    count = _unit_count(graph)
    if count > max_units:
        raise ConvAlgebraError(
            f"the report of {name!r} looks up to {count:,} unit fields (the units on the "
            f"diagonal of each node, and each axis' positions again where a diagonal unit reads "
            f"nothing), more than max_units={max_units:,}; use a smaller input shape or a "
            "larger max_units="
        )
    table = graph.table()
    rows = {r["node"]: r for r in table.rows}
    n = graph.spatial_ndim
    nodes = []
    for node in graph.nodes:
        row = rows[node]
        fields = graph.receptive_field(node)
        entry = {k: _number(row.get(k)) for k in _TABLE_KEYS if k in row}
        entry["output"] = "x".join(map(str, row["output"]))
        entry["size"] = [_number(f.size) for f in fields]
        entry["jump"] = [_number(f.jump) for f in fields]
        entry["start"] = [_number(f.start) for f in fields]
        entry["aligned"] = [bool(f.aligned and f.exact and not f.is_global) for f in fields]
        entry["RF"] = row.get("RF")
        entry.update(_boxes(graph, node, _sizes(graph, node)))
        nodes.append(entry)
    summary = graph.summary()
    return {
        "name": name,
        "input": list(graph.shape(graph.inputs[0])) if graph.inputs else [],
        "extent": list(graph.extent),
        "axes": list(axis_names(n)),
        "gated": "RF w/o gates" in table.columns,
        "totals": {k: summary[k] for k in ("params", "buffers", "macs", "activation_bytes")},
        "nodes": nodes,
        "field": field_data(graph, max_entries=max_field_entries),
    }


def graph_summary_html(graph: Any, name: str = "graph") -> str:
    """The notebook view of a graph: a title line and the layer table."""
    s = graph.summary()
    title = (
        f"LayerGraph {name!r}: {len(graph)} nodes, {s['params']:,} parameters, {s['macs']:,} MACs"
    )
    return f"<div><strong>{html.escape(title)}</strong>{graph.table()._repr_html_()}</div>"


def graph_html(
    graph: Any,
    path: str | Path | None = None,
    *,
    name: str = "graph",
    title: str | None = None,
    max_units: int = DEFAULT_MAX_UNITS,
    max_field_entries: int = DEFAULT_MAX_FIELD_ENTRIES,
) -> str:
    """The self-contained interactive report of ``graph`` (written to ``path`` if given).

    Parameters
    ----------
    graph : LayerGraph
    path : str or Path, optional
        A file to write (created or replaced; refused if it exists and is not a regular file).
    name : str
        The graph's name (the CSV file is named after it).
    title : str, optional
        Default: the graph's name.
    max_units : int
        Budget of unit lookups (see :func:`report_data`).
    max_field_entries : int
        Budget of the embedded effective fields (see :func:`field_data`); above it the page
        draws boxes without heatmaps and says so.

    Returns
    -------
    str
        The HTML page.
    """
    data = report_data(graph, name=name, max_units=max_units, max_field_entries=max_field_entries)
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    name = title if title is not None else f"convalgebra report: {name}"
    page = (
        _PAGE.replace("__TITLE__", html.escape(name))
        .replace("__STYLE__", _STYLE)
        .replace("__SCRIPT__", _SCRIPT)
        .replace("__DATA__", payload)
    )
    if path is not None:
        target = Path(path)
        if target.exists() and not target.is_file():
            raise ConvAlgebraError(f"path {shown(str(target))} exists and is not a regular file")
        target.write_text(page, encoding="utf-8")
    return page


def canvas_scale(extent: tuple[int, ...] | list[int], pixels: int = 448) -> float:
    """Screen pixels per input position of the page's input grid (the longer axis fills
    ``pixels``).

    Examples
    --------
    >>> canvas_scale((224, 224)), canvas_scale((28, 14))
    (2.0, 16.0)
    """
    shown_axes = list(extent)[-2:] or [1]
    return pixels / max(shown_axes) if math.prod(shown_axes) else 1.0


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<h1 id="title">__TITLE__</h1>
<p id="summary"></p>
<div id="main">
<div id="left">
<p><a id="csv" download="layers.csv" href="#">Download CSV</a>
<span class="hint">click a header to sort, hover a row to see its unit's field, click a row to
pin it, click the input grid to pick the unit</span></p>
<table id="layers"><thead></thead><tbody></tbody></table>
</div>
<div id="right">
<div id="view"><canvas id="heat"></canvas><svg id="grid" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div id="sliders"></div>
<p id="box-label"></p>
<p id="field-label"></p>
</div>
</div>
<script type="application/json" id="data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px; }
#main { display: flex; gap: 24px; align-items: flex-start; }
#left { flex: 1 1 auto; max-height: 88vh; overflow: auto; }
#right { position: sticky; top: 8px; }
table { border-collapse: collapse; }
th, td { padding: 2px 6px; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { position: sticky; top: 0; background: #f4f4f4; cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:hover td { background: #eef4ff; }
tr.pinned td { background: #ffe9b3; }
.hint { color: #777; margin-left: 12px; }
#view { position: relative; background: #fafafa; }
#grid { border: 1px solid #999; display: block; position: relative; cursor: crosshair; }
#heat { position: absolute; left: 1px; top: 1px; image-rendering: pixelated; }
#sliders label { display: block; margin-top: 6px; }
#box-label, #field-label { max-width: 460px; }
"""

_SCRIPT = r"""
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const axes = data.axes;
const shownAxes = axes.length >= 2 ? [axes.length - 2, axes.length - 1] : [0];
const extent = data.extent.length ? data.extent : [1];
const gridH = axes.length >= 2 ? extent[shownAxes[0]] : 1;
const gridW = axes.length >= 2 ? extent[shownAxes[1]] : extent[0] || 1;
const scale = 448 / Math.max(gridH, gridW);
const fmt = (v) => v === null || v === undefined ? "" :
  (typeof v === "number" ? v.toLocaleString("en-US") : String(v));
const columns = [["node", "node"], ["kind", "kind"], ["output", "output"]];
axes.forEach((a, i) => {
  columns.push(["size " + a, (n) => n.size[i]], ["jump " + a, (n) => n.jump[i]],
               ["start " + a, (n) => n.start[i]]);
});
if (data.gated) columns.push(["RF w/o gates", "RF w/o gates"]);
columns.push(["params", "params"], ["MACs", "MACs"], ["memory (bytes)", "act_bytes"],
             ["flags", "flags"]);
const value = (n, c) => typeof c[1] === "function" ? c[1](n) : n[c[1]];
const positions = new Map();
data.nodes.forEach((n) => {
  if (n.units) positions.set(n.node, n.units.map((s) => Math.floor((s - 1) / 2)));
});
let pinned = null, current = null;

const t = data.totals;
document.getElementById("summary").textContent =
  data.nodes.length + " nodes, input " + data.input.join("x") + ", " +
  fmt(t.params) + " parameters, " + fmt(t.macs) + " MACs, " +
  fmt(t.activation_bytes) + " bytes of activations";

const thead = document.querySelector("#layers thead");
const tbody = document.querySelector("#layers tbody");
const headRow = document.createElement("tr");
columns.forEach((c, i) => {
  const th = document.createElement("th");
  th.textContent = c[0];
  th.dataset.col = String(i);
  th.addEventListener("click", () => sortBy(i, th));
  headRow.appendChild(th);
});
thead.appendChild(headRow);

function fillRows(nodes) {
  tbody.textContent = "";
  nodes.forEach((n) => {
    const tr = document.createElement("tr");
    tr.dataset.node = n.node;
    if (n.node === pinned) tr.className = "pinned";
    columns.forEach((c) => {
      const td = document.createElement("td");
      const v = value(n, c);
      td.textContent = fmt(v);
      if (typeof v === "number") td.className = "num";
      tr.appendChild(td);
    });
    tr.addEventListener("mouseenter", () => show(n.node));
    tr.addEventListener("click", () => pin(n.node));
    tbody.appendChild(tr);
  });
}

function sortBy(i, th) {
  const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  thead.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  const c = columns[i];
  const sorted = data.nodes.slice().sort((a, b) => {
    const x = value(a, c), y = value(b, c);
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    if (typeof x === "number" && typeof y === "number") return dir * (x - y);
    return dir * String(x).localeCompare(String(y));
  });
  fillRows(sorted);
}

const svgNS = "http://www.w3.org/2000/svg";
const svg = document.getElementById("grid");
svg.setAttribute("viewBox", "0 0 " + gridW + " " + gridH);
svg.setAttribute("width", String(gridW * scale));
svg.setAttribute("height", String(gridH * scale));
svg.setAttribute("preserveAspectRatio", "none");
svg.dataset.scale = String(scale);
function svgEl(name, attrs) {
  const el = document.createElementNS(svgNS, name);
  Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, String(v)));
  svg.appendChild(el);
  return el;
}
if (Math.max(gridH, gridW) <= 64) {
  for (let x = 1; x < gridW; x++)
    svgEl("line", {x1: x, y1: 0, x2: x, y2: gridH, stroke: "#e4e4e4", "stroke-width": 0.05});
  for (let y = 1; y < gridH; y++)
    svgEl("line", {x1: 0, y1: y, x2: gridW, y2: y, stroke: "#e4e4e4", "stroke-width": 0.05});
}
const theory = svgEl("rect", {id: "theory", fill: "none", stroke: "#888",
  "stroke-dasharray": "4 3", "vector-effect": "non-scaling-stroke", visibility: "hidden"});
const box = svgEl("rect", {id: "box", fill: "rgba(220,60,40,0.08)", stroke: "#c0392b",
  "stroke-width": 2, "vector-effect": "non-scaling-stroke", visibility: "hidden"});

function nodeOf(name) { return data.nodes.find((n) => n.node === name); }

function intervals(n) {
  if (n.boxes) {
    const pos = positions.get(n.node);
    return n.boxes.map((b, a) => b[pos[a]]);
  }
  return n.fixed;
}

function show(name) {
  current = name;
  const n = nodeOf(name);
  const iv = intervals(n);
  buildSliders(n);
  const label = document.getElementById("box-label");
  const unit = n.units ? " unit (" + positions.get(n.node).join(", ") + ")" : "";
  if (!iv || iv.some((x) => x === null)) {
    box.setAttribute("visibility", "hidden");
    theory.setAttribute("visibility", "hidden");
    label.textContent = name + unit + ": reads no input position";
    drawField(n);
    return;
  }
  const rows = axes.length >= 2 ? iv[shownAxes[0]] : [0, 0];
  const cols = axes.length >= 2 ? iv[shownAxes[1]] : iv[0];
  box.setAttribute("x", cols[0]);
  box.setAttribute("y", rows[0]);
  box.setAttribute("width", cols[1] - cols[0] + 1);
  box.setAttribute("height", rows[1] - rows[0] + 1);
  box.setAttribute("visibility", "visible");
  box.dataset.box = JSON.stringify(iv);
  drawTheory(n);
  drawField(n);
  label.textContent = name + unit + ": input " +
    iv.map((p, a) => axes[a] + " " + p[0] + "\u2013" + p[1]).join(", ") +
    " (size/jump " + (n.RF || "") + ")";
}

function drawTheory(n) {
  const pos = positions.get(n.node);
  if (!pos || !n.aligned.every((x) => x)) { theory.setAttribute("visibility", "hidden"); return; }
  const lo = (a) => n.start[a] + pos[a] * n.jump[a] - (n.size[a] - 1) / 2;
  const rowsA = shownAxes.length === 2 ? shownAxes[0] : null, colsA = shownAxes.slice(-1)[0];
  theory.setAttribute("x", lo(colsA));
  theory.setAttribute("width", n.size[colsA]);
  theory.setAttribute("y", rowsA === null ? 0 : lo(rowsA));
  theory.setAttribute("height", rowsA === null ? 1 : n.size[rowsA]);
  theory.setAttribute("visibility", "visible");
}

const field = data.field;
const heat = document.getElementById("heat");
heat.width = gridW; heat.height = gridH;
heat.style.width = gridW * scale + "px"; heat.style.height = gridH * scale + "px";
const fieldCache = new Map();
const product = (xs) => xs.reduce((a, b) => a * b, 1);

// y = A x along axis a of g (shape: spatial sizes, C order), A sparse [nOut, nIn, starts,
// columns, values]: returns (A^T along a) g, summing over the outputs o in order.
function contract(g, shape, a, m) {
  const [nOut, nIn, starts, cols, vals] = m;
  const outer = product(shape.slice(0, a)), inner = product(shape.slice(a + 1));
  const out = new Float64Array(outer * nIn * inner);
  for (let p = 0; p < outer; p++) {
    for (let o = 0; o < nOut; o++) {
      const from = (p * nOut + o) * inner;
      for (let k = starts[o]; k < starts[o + 1]; k++) {
        const to = (p * nIn + cols[k]) * inner, v = vals[k];
        for (let q = 0; q < inner; q++) out[to + q] += v * g[from + q];
      }
    }
  }
  const next = shape.slice(); next[a] = nIn;
  return [out, next];
}

// The backward pass of effective_receptive_field (uniform weights) from one unit.
function effectiveField(n, pos) {
  if (field.omitted) return {note: field.omitted};
  if (field.notes[n.node]) return {note: field.notes[n.node]};
  const key = n.node + "@" + pos.join(",");
  if (fieldCache.has(key)) return fieldCache.get(key);
  const start = new Float64Array(product(n.units));
  start[pos.reduce((flat, p, a) => flat * n.units[a] + p, 0)] = 1;
  const grads = new Map([[n.node, [start, n.units]]]);
  let reached = null;
  for (let i = data.nodes.length - 1; i >= 0; i--) {
    const v = data.nodes[i].node, entry = grads.get(v);
    if (!entry) continue;
    grads.delete(v);
    if (v === field.input) { reached = entry[0]; continue; }
    (field.steps[v] || []).forEach(([src, gain, mats]) => {
      let [g, shape] = entry;
      if (mats) {
        mats.forEach((m, a) => { [g, shape] = contract(g, shape, a, m); });
        g = g.map((x) => x * gain);
      }
      const prev = grads.get(src);
      if (prev) g = prev[0].map((x, k) => x + g[k]);
      grads.set(src, [g, shape]);
    });
  }
  const values = new Float64Array(gridW * gridH);
  let total = 0;
  if (reached) reached.forEach((x) => { total += Math.abs(x); });
  if (reached && total > 0) reached.forEach((x, k) => { values[k] = Math.abs(x) / total; });
  const result = {values: values};
  fieldCache.set(key, result);
  return result;
}

function drawField(n) {
  const label = document.getElementById("field-label");
  const ctx = heat.getContext("2d");
  ctx.clearRect(0, 0, gridW, gridH);
  heat.values = null;
  if (!n.units) { heat.dataset.state = "none"; label.textContent = ""; return; }
  const pos = positions.get(n.node);
  const f = effectiveField(n, pos);
  heat.dataset.node = n.node;
  heat.dataset.unit = JSON.stringify(pos);
  if (f.note) {
    heat.dataset.state = "omitted";
    label.textContent = "effective field not drawn: " + f.note;
    return;
  }
  let peak = 0;
  f.values.forEach((v) => { if (v > peak) peak = v; });
  const img = ctx.createImageData(gridW, gridH);
  f.values.forEach((v, k) => {
    const t = peak > 0 ? v / peak : 0;
    img.data[4 * k] = 255; img.data[4 * k + 1] = Math.round(200 * (1 - t));
    img.data[4 * k + 2] = 0; img.data[4 * k + 3] = Math.round(255 * Math.sqrt(t));
  });
  ctx.putImageData(img, 0, 0);
  heat.values = f.values;
  heat.dataset.state = "drawn";
  heat.dataset.peak = String(peak);
  label.textContent = "heatmap: the exact effective field of this unit (uniform weights: " +
    "|d unit / d input|, normalised to sum 1); peak " + peak.toPrecision(4);
}

svg.addEventListener("click", (event) => {
  const n = current && nodeOf(current);
  if (!n || !n.units) return;
  const r = svg.getBoundingClientRect();
  const x = Math.floor((event.clientX - r.left - svg.clientLeft) / scale);
  const y = Math.floor((event.clientY - r.top - svg.clientTop) / scale);
  const coord = axes.length >= 2 ? [y, x] : [x];
  const pos = positions.get(n.node);
  n.units.forEach((s, a) => {
    const c = coord[a - (axes.length - coord.length)];
    if (c === undefined || !n.jump[a]) return;
    pos[a] = Math.min(s - 1, Math.max(0, Math.round((c - n.start[a]) / n.jump[a])));
  });
  pinned = null;
  pin(n.node);
});

function buildSliders(n) {
  const holder = document.getElementById("sliders");
  holder.textContent = "";
  if (!n.units) return;
  n.units.forEach((s, a) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "range"; input.min = "0"; input.max = String(s - 1);
    input.id = "unit-" + a;
    input.value = String(positions.get(n.node)[a]);
    input.addEventListener("input", () => {
      positions.get(n.node)[a] = Number(input.value);
      show(n.node);
    });
    label.append("unit " + axes[a] + " ", input);
    holder.appendChild(label);
  });
}

function pin(name) {
  pinned = pinned === name ? null : name;
  tbody.querySelectorAll("tr").forEach((tr) =>
    tr.classList.toggle("pinned", tr.dataset.node === pinned));
  if (pinned) show(pinned);
}

document.getElementById("left").addEventListener("mouseleave", () => {
  if (pinned) show(pinned);
});

function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}
const csv = [columns.map((c) => csvCell(c[0])).join(",")].concat(
  data.nodes.map((n) => columns.map((c) => csvCell(value(n, c))).join(","))).join("\n") + "\n";
const link = document.getElementById("csv");
link.href = "data:text/csv;charset=utf-8," + encodeURIComponent(csv);
link.download = data.name + ".csv";

fillRows(data.nodes);
const first = data.nodes.find((n) => n.units) || data.nodes[0];
if (first) show(first.node);
"""
