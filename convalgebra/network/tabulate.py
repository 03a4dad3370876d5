"""Render rows of a layer table as text, Markdown, CSV or JSON (no pandas).

Examples
--------
>>> rows = [{"node": "conv1", "params": 760}, {"node": "total", "params": 760}]
>>> print(render(rows, fmt="markdown"))
| node  | params |
|-------|-------:|
| conv1 |    760 |
| total |    760 |
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConvAlgebraError, printable, shown

__all__ = [
    "FORMATS",
    "render",
    "format_cell",
    "fold_rows",
    "add_percentages",
    "module_prefix",
    "LayerRow",
    "layer_rows",
    "folded_name",
    "fold_layer_rows",
]

FORMATS = ("text", "markdown", "csv", "json")


def format_cell(value: Any) -> str:
    """Thousands separators for ints, ``3x224x224`` for shapes, ``""`` for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return printable(value, limit=0)


def _is_numeric(rows: list[dict], column: str) -> bool:
    values = [r.get(column) for r in rows if r.get(column) is not None]
    return bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    )


def render(rows: Sequence[dict], columns: Sequence[str] | None = None, fmt: str = "text") -> str:
    """Render ``rows`` (dicts sharing keys) with ``columns`` in format ``fmt``.

    Parameters
    ----------
    rows : sequence of dict
    columns : sequence of str, optional
        Defaults to the keys of the first row.
    fmt : {"text", "markdown", "csv", "json"}
        ``csv`` and ``json`` keep raw values (no thousands separators).
    """
    if fmt not in FORMATS:
        raise ConvAlgebraError(f"fmt must be one of {FORMATS}, got {shown(fmt)}")
    rows = list(rows)
    columns = list(columns if columns is not None else (rows[0] if rows else []))
    if fmt == "json":
        return json.dumps([{c: _jsonable(r.get(c)) for c in columns} for r in rows], indent=1)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else _plain(r.get(c)) for c in columns])
        return buffer.getvalue().rstrip("\n")
    cells = [[format_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    right = [_is_numeric(rows, c) for c in columns]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return ("| " + " | ".join(parts) + " |") if fmt == "markdown" else "  ".join(parts).rstrip()

    header = line(list(columns))
    if fmt == "markdown":
        rule = (
            "|" + "|".join("-" * (w + 1) + (":" if r else "-") for w, r in zip(widths, right)) + "|"
        )
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([header, rule, *(line(row) for row in cells)])


_SUMMED = ("params", "buffers", "MACs", "act_bytes")


def module_prefix(node: str, depth: int) -> str:
    """The first ``depth`` parts of a dotted module path (a ``#k`` call suffix dropped).

    Examples
    --------
    >>> module_prefix("layer4.2.relu", 2), module_prefix("fc", 2), module_prefix("b.c#3", 1)
    ('layer4.2', 'fc', 'b')
    """
    return ".".join(node.split("#")[0].split(".")[:depth])


def fold_rows(rows: Sequence[dict], depth: int) -> list[dict]:
    """Fold the rows whose ``node`` shares its first ``depth`` dotted parts into one row.

    A folded row is named by the shared prefix, has kind ``block``, the sums of the
    ``params``, ``buffers``, ``MACs`` and ``act_bytes`` columns, and every other column
    (output shape, receptive field) from the group's last row in the given order; groups
    appear in the order of their first row. A group of one row keeps its kind.

    Examples
    --------
    >>> rows = [{"node": "stem", "params": 9}, {"node": "layer1.0.conv", "params": 4},
    ...         {"node": "layer1.1.conv", "params": 5, "output": (8, 4, 4)}]
    >>> fold_rows(rows, 1)
    [{'node': 'stem', 'params': 9}, {'node': 'layer1', 'params': 9, 'output': (8, 4, 4), 'kind': 'block'}]
    """
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(module_prefix(str(row["node"]), depth), []).append(row)
    out = []
    for key, members in groups.items():
        if len(members) == 1:
            out.append({**members[0], "node": key})
            continue
        out.append(_merged(members, key, "block"))
    return out


def _merged(members: Sequence[dict], name: str, kind: Any) -> dict:
    """One row for ``members``: the sums of the summed columns, the union of the flags,
    every other column from the last member."""
    row = {**members[-1], "node": name, "kind": kind}
    for column in _SUMMED:
        values = [m.get(column) for m in members if m.get(column) is not None]
        if values:
            row[column] = sum(values)
    flags = sorted({f for m in members for f in (m.get("flags") or "").split(",") if f})
    if "flags" in row:
        row["flags"] = ",".join(flags) or None
    return row


def add_percentages(rows: Sequence[dict], columns: Sequence[str]) -> list[dict]:
    """Add a ``"<column> %"`` column after each of ``columns``: the row's share of the
    ``total`` row's value, in percent rounded to 0.1 (None where the total is 0).

    Examples
    --------
    >>> add_percentages([{"node": "a", "MACs": 1}, {"node": "total", "MACs": 3}], ["MACs"])
    [{'node': 'a', 'MACs': 1, 'MACs %': 33.3}, {'node': 'total', 'MACs': 3, 'MACs %': 100.0}]
    """
    total = next((r for r in rows if r.get("node") == "total"), None)
    if total is None:
        raise ConvAlgebraError("percentages need a 'total' row")
    out = []
    for row in rows:
        new: dict = {}
        for key, value in row.items():
            new[key] = value
            if key in columns:
                whole = total.get(key) or 0
                new[f"{key} %"] = round(100 * (value or 0) / whole, 1) if whole else None
        out.append(new)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return printable(value, limit=0) if isinstance(value, str) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


#: Short names of the nodes folded into the layer they follow.
_FOLDED_NAMES = {
    "batch_norm": "BN",
    "dropout": "dropout",
    "identity": "identity",
    "relu": "ReLU",
    "relu6": "ReLU6",
    "gelu": "GELU",
    "silu": "SiLU",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid",
}
#: Activations that are not elementwise (they read along an axis): never folded.
_ALONG_AXIS = ("softmax", "log_softmax")


@dataclass(frozen=True)
class LayerRow:
    """A layer of a network table: its node, then the nodes folded into it.

    ``lead`` computes (a convolution, pooling, a merge, ...); ``folded`` are the batch
    normalisations, elementwise activations and dropouts applied to its output alone, in order.
    """

    lead: str
    folded: tuple[str, ...] = ()

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node of the row, the lead first."""
        return (self.lead, *self.folded)

    @property
    def last(self) -> str:
        """The node whose output is the row's output."""
        return self.nodes[-1]


def _foldable(layer: Any) -> bool:
    if layer.kind in ("batch_norm", "dropout", "identity"):
        return True
    return layer.kind == "activation" and getattr(layer, "fn", "") not in _ALONG_AXIS


def folded_name(graph: Any, row: LayerRow) -> str:
    """``"conv1 + BN + ReLU"``: the lead node and the short names of what is folded into it.

    Examples
    --------
    >>> from convalgebra.network import zoo
    >>> g = zoo.get("resnet18")
    >>> [folded_name(g, r) for r in layer_rows(g)[1:3]]
    ['conv1 + BN + ReLU', 'maxpool']
    """
    names = []
    for node in row.folded:
        layer = graph.layer(node)
        key = getattr(layer, "fn", None) or layer.kind
        names.append(_FOLDED_NAMES.get(key, key))
    return " + ".join([row.lead, *names])


def layer_rows(graph: Any) -> list[LayerRow]:
    """The layers of ``graph`` in order, each with the nodes folded into it.

    A batch normalisation, an elementwise activation (not softmax), a dropout or an identity
    folds into the row of the node it reads when it is that node's only reader: it then
    changes neither shape nor receptive field, and its parameters (a batch norm's ``2C``)
    are counted in that row. A graph input is a row of its own and folds nothing.

    Examples
    --------
    >>> from convalgebra.network import zoo
    >>> rows = layer_rows(zoo.get("resnet18"))
    >>> rows[1], len(rows)
    (LayerRow(lead='conv1', folded=('bn1', 'relu')), 33)
    """
    rows: list[LayerRow] = []
    row_of: dict[str, int] = {}
    readers = {node: graph.nx.out_degree(node) for node in graph.nodes}
    for node in graph.nodes:
        srcs = graph.nx.nodes[node]["inputs"]
        if len(srcs) == 1 and _foldable(graph.layer(node)) and srcs[0] in row_of:
            k = row_of[srcs[0]]
            if (
                rows[k].last == srcs[0]
                and readers[srcs[0]] == 1
                and graph.nx.nodes[rows[k].lead]["inputs"]
            ):
                rows[k] = LayerRow(rows[k].lead, (*rows[k].folded, node))
                row_of[node] = k
                continue
        row_of[node] = len(rows)
        rows.append(LayerRow(node))
    return rows


def fold_layer_rows(graph: Any, rows: Sequence[dict]) -> list[dict]:
    """Fold the per-node ``rows`` of ``graph`` (one per node, named by ``node``) into one row
    per layer of :func:`layer_rows`: a batch normalisation, activation or dropout joins the row
    of the layer it follows.

    A folded row is named by :func:`folded_name`, has its lead's kind, the sums of the
    ``params``, ``buffers``, ``MACs`` and ``act_bytes`` columns, the union of the flags and
    every other column (output shape, receptive field) from its last node, whose output is
    the row's.

    Examples
    --------
    >>> from convalgebra.network import zoo
    >>> g = zoo.get("lenet5")
    >>> rows = [{"node": n, "kind": g.info(n).kind, "params": g.info(n).params} for n in g.nodes]
    >>> [(r["node"], r["params"]) for r in fold_layer_rows(g, rows)][1:3]
    [('conv1 + sigmoid', 156), ('pool1', 0)]
    """
    by_node = {str(row["node"]): row for row in rows}
    missing = [n for n in graph.nodes if n not in by_node]
    if missing:
        raise ConvAlgebraError(
            f"rows must hold one row per node of the graph; none for {shown(missing)}"
        )
    out = []
    for layer in layer_rows(graph):
        members = [by_node[n] for n in layer.nodes]
        kind = members[0].get("kind")
        out.append(
            {**members[0], "node": folded_name(graph, layer)}
            if len(members) == 1
            else _merged(members, folded_name(graph, layer), kind)
        )
    return out
