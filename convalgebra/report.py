"""Reports of a layer's matrix: plain text (shape, structure, sparsity, the matrix itself)
and one self-contained HTML page where hovering a cell names its index triples."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from . import budget
from .spec import ConvSpec

__all__ = [
    "matrix_report",
    "format_matrix",
    "matrix_page_data",
    "conv_matrix_html",
    "MATRIX_HTML_MAX_TRIPLES",
    "MATRIX_HTML_MAX_CELLS",
    "OFFLINE_HEAD",
]

#: The head of every page the library writes: offline (nothing may load from elsewhere).
OFFLINE_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>__TITLE__</title>
"""
#: Most index triples the HTML page of a layer's matrix embeds (about 20 bytes each).
MATRIX_HTML_MAX_TRIPLES = 200_000
#: Most cells (rows times columns) of the HTML page's grid (one canvas pixel or more each).
MATRIX_HTML_MAX_CELLS = 2**22


def format_matrix(dense: np.ndarray, max_rows: int = 16, max_cols: int = 16) -> str:
    """Render a dense 2-D array with ``·`` for zeros, truncated with ``…`` past a size.

    Examples
    --------
    >>> print(format_matrix(np.array([[1, 2, 0], [0, 1, 2]])))
    1 2 ·
    · 1 2
    """
    rows = min(dense.shape[0], max_rows)
    cols = min(dense.shape[1], max_cols)
    cells = [[_cell(v) for v in row[:cols]] for row in dense[:rows]]
    width = max((len(c) for row in cells for c in row), default=1)
    lines = [
        " ".join(c.rjust(width) for c in row) + (" …" if cols < dense.shape[1] else "")
        for row in cells
    ]
    if rows < dense.shape[0]:
        lines.append("⋮")
    return "\n".join(lines)


def _cell(value) -> str:
    if value == 0:
        return "·"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}" if isinstance(value, (float, np.floating)) else str(value)


def _connected_sharing(spec: ConvSpec, sharing: np.ndarray) -> np.ndarray:
    """Use counts of the weights a channel table connects (all weights without a table)."""
    if spec.channel_table is None:
        return sharing
    links = np.array(spec.channel_table, dtype=bool)
    mask = np.broadcast_to(links.reshape(*links.shape, *[1] * spec.ndim), spec.weight_shape)
    return sharing.reshape(spec.weight_shape)[mask]


def matrix_report(spec: ConvSpec, weight=None, *, symbolic: bool = True, max_size: int = 16) -> str:
    """A report of the matrix a layer induces, as a person reads it.

    With ``symbolic=True`` and no weight, entries are the kernel symbols ``w1, w2, …``.

    Examples
    --------
    >>> print(matrix_report(ConvSpec((1, 4), 1, 2)))  # doctest: +ELLIPSIS
    Conv1d(1, 1, kernel_size=(2,), ...
    matrix: 3 x 4, 6 non-zeros (50.0% dense), structure: Toeplitz ...
    """
    from .connectivity import entry_count, weight_uses
    from .structure import matrix_structure, structure_probe

    n_out, n_in = math.prod(spec.output_shape), math.prod(spec.input_shape)
    # reflect/replicate/circular padding sends several taps to one entry: count entries
    nnz = entry_count(spec)
    shared = _connected_sharing(spec, weight_uses(spec))
    probe = structure_probe(spec)
    where = "" if probe == spec else f" (read on input {probe.input_shape}: the same levels)"
    lines = [
        spec.describe(),
        f"output shape {spec.output_shape}, weight shape {spec.weight_shape}, "
        f"{spec.n_params} parameters, {spec.macs:,} MACs",
        f"matrix: {n_out} x {n_in}, {nnz:,} non-zeros ({100 * nnz / (n_out * n_in):.1f}% dense), "
        f"structure: {matrix_structure(probe)}{where}",
        f"parameter sharing: each of the {shared.size}"
        + (" connected" if spec.channel_table is not None else "")
        + f" weights is used {shared.min()}"
        + (f" to {shared.max()}" if shared.max() != shared.min() else "")
        + " times",
    ]
    if not spec.tiles_input:
        lines.append(f"not tiling: input positions never read, per axis: {spec.unread_inputs}")
    if weight is None and symbolic:
        from .symbolic import symbolic_matrix

        corner = symbolic_matrix(spec)[: max_size + 1, : max_size + 1]
        shown = np.array(corner.tolist(), dtype=object)
    else:
        if weight is None:
            weight = np.arange(1, math.prod(spec.weight_shape) + 1).reshape(spec.weight_shape)
        shown = _corner(spec, weight, max_size + 1)
    return "\n".join(lines + ["", format_matrix(shown, max_size, max_size)])


def _corner(spec: ConvSpec, weight, size: int) -> np.ndarray:
    """The top-left ``size x size`` block of the layer's matrix, from its first rows only.

    For a transposed spec the matrix is the forward one transposed, so its corner is the
    transpose of the forward corner.
    """
    from .budget import dense
    from .operators import conv_matrix_blocks

    _, block = next(iter(conv_matrix_blocks(spec, weight, size)))
    corner = dense(block[:, :size], what="the matrix corner")
    return corner.T if spec.transposed else corner


def matrix_page_data(
    spec: ConvSpec,
    *,
    max_triples: int = MATRIX_HTML_MAX_TRIPLES,
    max_cells: int = MATRIX_HTML_MAX_CELLS,
) -> dict:
    """What :func:`conv_matrix_html` embeds: the layer's triples, 0-based, in the layer's
    orientation (rows: the layer's outputs, columns: its inputs), sorted by row, column, weight.

    Raises
    ------
    ConvAlgebraError
        More than ``max_triples`` triples or ``max_cells`` cells (counted from the spec,
        before anything is built).

    Examples
    --------
    >>> data = matrix_page_data(ConvSpec((1, 3), 1, 2))
    >>> data["shape"], data["rows"], data["cols"], data["weights"]
    ([2, 3], [0, 0, 1, 1], [0, 1, 1, 2], [0, 1, 0, 1])
    """
    from .connectivity import layer_rows_cols, triples

    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    n_rows, n_cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    way_out = "use a smaller input (the pattern of the matrix repeats along each axis)"
    budget.require_steps(
        f"the HTML grid of the {n_rows:,} x {n_cols:,} matrix of {spec.describe()}",
        n_rows * n_cols,
        max_cells,
        f"{way_out}, or a larger max_cells=",
        option="max_cells",
        unit="cells",
    )
    budget.require_steps(
        f"the HTML page of the matrix of {spec.describe()}",
        budget.triple_count(spec),
        max_triples,
        f"{way_out}, or a larger max_triples=",
        option="max_triples",
        unit="triples",
    )
    t = triples(spec)
    rows, cols = layer_rows_cols(spec, t)
    order = np.lexsort((t.weight_index, cols, rows))
    return {
        "layer": spec.describe(),
        "shape": [n_rows, n_cols],
        "output_shape": list(spec.output_shape),
        "input_shape": list(spec.input_shape),
        "weight_shape": list(spec.weight_shape),
        "taps": math.prod(spec.kernel_size),
        "rows": rows[order].tolist(),
        "cols": cols[order].tolist(),
        "weights": t.weight_index[order].tolist(),
    }


def conv_matrix_html(
    spec: ConvSpec,
    path: str | Path | None = None,
    *,
    max_triples: int = MATRIX_HTML_MAX_TRIPLES,
    max_cells: int = MATRIX_HTML_MAX_CELLS,
) -> str:
    """One self-contained, offline HTML page of the layer's matrix ``M`` (``M @ x.ravel()``
    equals the layer's output): every cell a triple reaches is shaded, and hovering a cell
    shows its (output index, input index, weight index) triples, 1-based.

    Parameters
    ----------
    spec : ConvSpec
        The layer; its input size sets the matrix's shape.
    path : str or Path, optional
        A file to write (created or replaced; never a link, folder or device).
    max_triples, max_cells : int
        Budget of the page (see :func:`matrix_page_data`).

    Returns
    -------
    str
        The HTML page.

    Notes
    -----
    The triples are those of :func:`convalgebra.connectivity.triples`: entry ``M[o, i]`` is
    the sum of ``w[k]`` over the triples ``(o, i, k)``. The page prints them numbered from 1
    and as multi-indices as the derivations write them: output ``z_(c, position)``, input
    ``a_(c, position)``, weight ``w_(c_out, c_in in its group, taps)``.

    Examples
    --------
    >>> page = conv_matrix_html(ConvSpec((1, 4), 1, 2))
    >>> page.startswith("<!DOCTYPE html>"), "default-src 'none'" in page
    (True, True)
    """
    data = matrix_page_data(spec, max_triples=max_triples, max_cells=max_cells)
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    page = (
        _MATRIX_PAGE.replace("__TITLE__", html.escape(f"matrix of {spec.describe()}"))
        .replace("__SCRIPT__", _MATRIX_SCRIPT)
        .replace("__DATA__", payload)
    )
    if path is not None:
        from .files import write_file

        write_file(path, page.encode("utf-8"))
    return page


_MATRIX_PAGE = (
    OFFLINE_HEAD
    + """<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 17px; margin: 0 0 4px; }
#holder { position: relative; display: inline-block; border: 1px solid #999; }
#matrix { display: block; image-rendering: pixelated; cursor: crosshair; }
#mark { position: absolute; border: 2px solid #c0392b; pointer-events: none;
  box-sizing: border-box; display: none; }
#cell { font: 13px/1.5 ui-monospace, monospace; white-space: pre; min-height: 5em;
  background: #f6f6f6; padding: 6px 8px; margin: 8px 0; }
.hint { color: #777; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<p id="summary"></p>
<p class="hint">Hover a cell: its row (an output), column (an input) and the weights on it,
as (output, input, weight) triples numbered from 1. Shaded: entries some triple reaches
(hue: the kernel tap).</p>
<div id="cell">&nbsp;</div>
<div id="holder"><canvas id="matrix"></canvas><div id="mark"></div></div>
<script type="application/json" id="data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""
)

_MATRIX_SCRIPT = r"""
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const [nRows, nCols] = data.shape;
const cell = Math.max(1, Math.min(24, Math.floor(960 / Math.max(nRows, nCols))));
const taps = data.taps;
const first = new Map();
data.rows.forEach((r, k) => {
  const key = r * nCols + data.cols[k];
  if (!first.has(key)) first.set(key, k);
});
document.getElementById("summary").textContent = "M is " + nRows.toLocaleString("en-US") +
  " x " + nCols.toLocaleString("en-US") + ", " + first.size.toLocaleString("en-US") +
  " non-zero entries from " + data.rows.length.toLocaleString("en-US") +
  " triples; output " + data.output_shape.join("x") + ", input " + data.input_shape.join("x") +
  ", weight " + data.weight_shape.join("x");

const canvas = document.getElementById("matrix");
canvas.width = nCols * cell;
canvas.height = nRows * cell;
canvas.dataset.cell = String(cell);
const ctx = canvas.getContext("2d");
ctx.fillStyle = "#ffffff";
ctx.fillRect(0, 0, canvas.width, canvas.height);
first.forEach((k, key) => {
  const r = Math.floor(key / nCols), c = key - r * nCols;
  ctx.fillStyle = "hsl(" + Math.round(300 * (data.weights[k] % taps) / taps) + ",65%,45%)";
  ctx.fillRect(c * cell, r * cell, cell, cell);
});
function blockLines(count, block, vertical) {
  ctx.fillStyle = "#999";
  for (let b = block; b < count; b += block) {
    if (vertical) ctx.fillRect(b * cell, 0, 1, canvas.height);
    else ctx.fillRect(0, b * cell, canvas.width, 1);
  }
}
const perRow = nRows / data.output_shape[0], perCol = nCols / data.input_shape[0];
if (data.output_shape[0] > 1) blockLines(nRows, perRow, false);
if (data.input_shape[0] > 1) blockLines(nCols, perCol, true);

function multi(index, shape) {
  const out = [];
  for (let a = shape.length - 1; a >= 0; a--) {
    out.unshift(index % shape[a] + 1);
    index = Math.floor(index / shape[a]);
  }
  return "(" + out.join(",") + ")";
}

const panel = document.getElementById("cell");
const mark = document.getElementById("mark");
function describe(r, c) {
  const found = [];
  for (let k = first.get(r * nCols + c); k !== undefined && k < data.rows.length &&
       data.rows[k] === r && data.cols[k] === c; k++) found.push(data.weights[k]);
  const head = "M[" + (r + 1) + ", " + (c + 1) + "]: row " + (r + 1) + " = output z_" +
    multi(r, data.output_shape) + ", column " + (c + 1) + " = input a_" +
    multi(c, data.input_shape);
  if (!found.length) return [head + "\n= 0 (no triple)", found];
  const lines = found.map((w) => "triple (" + (r + 1) + ", " + (c + 1) + ", " + (w + 1) +
    "): weight " + (w + 1) + " = w_" + multi(w, data.weight_shape));
  return [head + "\n= " + found.map((w) => "w_" + multi(w, data.weight_shape)).join(" + ") +
    "\n" + lines.join("\n"), found];
}
canvas.addEventListener("mousemove", (event) => {
  const box = canvas.getBoundingClientRect();
  const c = Math.floor((event.clientX - box.left) / cell);
  const r = Math.floor((event.clientY - box.top) / cell);
  if (r < 0 || c < 0 || r >= nRows || c >= nCols) return;
  const [text, found] = describe(r, c);
  panel.textContent = text;
  panel.dataset.row = String(r + 1);
  panel.dataset.col = String(c + 1);
  panel.dataset.weights = JSON.stringify(found.map((w) => w + 1));
  mark.style.left = (c * cell - 2) + "px";
  mark.style.top = (r * cell - 2) + "px";
  mark.style.width = mark.style.height = (cell + 4) + "px";
  mark.style.display = "block";
});
"""
