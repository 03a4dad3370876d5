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
from .reportpage import PAGE, SCRIPT, STYLE

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


def _linear_nodes(graph: Any, notes: dict[str, str]):
    """Yield ``(node, its steps)`` for every node with an effective field; record in
    ``notes`` why each other node has none (its own form, or an ancestor's)."""
    n, failed = graph.spatial_ndim, {}
    for v in graph.nodes:
        shape = graph.shape(v)
        if len(shape) != n + 1:
            failed[v] = f"node {v!r} of shape {tuple(shape)} has no spatial axes"
        else:
            try:
                own = node_steps(graph, v)
            except ConvAlgebraError as exc:
                failed[v] = str(exc)
            else:
                blocked = [failed[s.source] for s in own if s.source in failed]
                if not blocked:
                    yield v, own
                    continue
                failed[v] = blocked[0]
        notes[v] = failed[v]


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
    notes: dict[str, str] = {}
    entries = work = 0
    for v, own in _linear_nodes(graph, notes):  # counted first, embedded after the budget
        entries += sum(int((m != 0).sum()) for s in own for m in s.matrices or ())
        work += sum(_work(s, graph.shape(v)) for s in own)
    try:
        budget.require_steps(
            "the effective fields of the report (the larger of their matrix entries "
            "and their multiply-adds per unit)",
            max(entries, work),
            max_entries,
            "use a smaller input shape or a larger max_field_entries=",
            option="max_field_entries",
            unit="entries",
        )
    except ConvAlgebraError as exc:
        return {"omitted": str(exc)}
    steps = {
        v: [
            [s.source, s.gain, None if s.matrices is None else [_sparse(m) for m in s.matrices]]
            for s in own
        ]
        for v, own in _linear_nodes(graph, {})
    }
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
        PAGE.replace("__TITLE__", html.escape(name))
        .replace("__STYLE__", STYLE)
        .replace("__SCRIPT__", SCRIPT)
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
