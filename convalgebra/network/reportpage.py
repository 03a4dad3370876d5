"""The static text of the interactive report's page: its HTML, its style and its script.

The script is written by hand, small and self-contained (no library, nothing loaded): it
reads the JSON :func:`convalgebra.network.htmlreport.report_data` embeds, fills the table,
draws each unit's receptive box and runs the effective field's backward pass over the
embedded linearised network (:func:`convalgebra.network.htmlreport.field_data`).
"""

from __future__ import annotations

from ..report import OFFLINE_HEAD

__all__ = ["PAGE", "STYLE", "SCRIPT"]

PAGE = (
    OFFLINE_HEAD
    + """<style>__STYLE__</style>
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
)

STYLE = """
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

SCRIPT = r"""
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
