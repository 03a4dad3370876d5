"""The cost of a whole network, layer by layer: parameters, buffers, MACs and memory.

Every number comes from the :class:`~convalgebra.network.graph.LayerGraph` (its per-node
facts and :meth:`~convalgebra.network.graph.LayerGraph.summary`); each row of the table shows
the arithmetic that gives it (``64 \\cdot 3 \\cdot 7 \\cdot 7 + 2 \\cdot 64 = 9{,}536``) and
the totals add the rows up. Rows are layers: a batch normalisation, an elementwise activation
or a dropout is folded into the layer it follows
(:func:`~convalgebra.network.tabulate.layer_rows`).

Notes
-----
A convolution has ``C_out (C_in/G) ∏k`` weights and ``C_out`` biases and does
``(C_in/G) ∏k`` MACs per output element; a batch normalisation has ``2C`` parameters and
``2C + 1`` buffers (running mean and variance, the batch counter). Memory is at
``dtype_bytes`` per element: the parameters and buffers, and every node's output kept for one
forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConvAlgebraError, shown
from ..network.tabulate import LayerRow, folded_name, layer_rows
from .model import Derivation, Equation, Expr, Step, Table
from .networks import product, row_macs, row_params, total
from .printing import number
from .verify import RoundTripError

__all__ = ["derive_network_cost", "cost_meaning", "NetworkCost"]

#: The counted columns of the tables (their headers, the names in the meaning).
_COUNTED = ("parameters", "buffers", "MACs", "output bytes")


@dataclass(frozen=True)
class NetworkCost(Derivation):
    """A network's cost derivation: its equations, then every cell of its table, read back."""

    def verify(self, meaning: dict | None = None) -> int:
        """Every printed equation (see :meth:`Derivation.verify`), then every row of the
        table (output shape and the value each count cell ends with) on ``meaning``: per row
        ``i`` (0 the input) ``shape_i``, ``parameters_i``, ``buffers_i``, ``MACs_i`` and
        ``output bytes_i``; default :func:`cost_meaning` of the graph.

        Returns the number of checks; raises ``RoundTripError`` on a mismatch.
        """
        meaning = self.meaning() if meaning is None else meaning
        count = super().verify(meaning)
        for step in self.steps:
            if step.rule == "table" and not isinstance(step.math, str):
                count += sum(_check_table(t, meaning) for t in step.math if isinstance(t, Table))
        return count


def _printed(cell: Any) -> int:
    """The value a count cell prints: its last side (``"0"`` when nothing is counted)."""
    text = cell if isinstance(cell, str) else cell.sides[-1].text
    return int(text.replace(",", ""))


def _check_table(table: Table, meaning: dict[str, Any]) -> int:
    """Read every counted cell and shape of ``table`` back and compare it with ``meaning``."""
    count = 0
    columns = list(table.header)
    for i, cells in enumerate(table.rows):
        checks: list[tuple[str, Any]] = [
            (key, _printed(cells[columns.index(key)])) for key in _COUNTED if key in columns
        ]
        if "output shape" in columns:
            shape = tuple(int(v) for v in cells[columns.index("output shape")].split(" x "))
            checks.append(("shape", shape))
        for key, printed in checks:
            want = meaning.get(f"{key}_{i}")
            if want is None:
                continue
            if printed != want:
                raise RoundTripError(
                    f"table row {i} ({cells[0]}) prints {key} = {printed}, but it is {want}"
                )
            count += 1
    return count


def _cell(parts: list[Expr], count: int) -> Equation | str:
    """``parts`` added up ``= count`` (the count alone when nothing is multiplied or added)."""
    if not count:
        return "0"
    shown_parts = len(parts) > 1 or "*" in parts[0].text
    sides = (total(parts), number(count)) if shown_parts else (number(count),)
    return Equation(sides, defines=False)


def _row_buffers(graph: Any, row: LayerRow) -> tuple[Equation | str, int]:
    """A row's buffers: ``2 · C + 1`` of a batch normalisation, the bare count otherwise."""
    parts, count = [], 0
    for node in row.nodes:
        buffers = graph.info(node).buffers
        if not buffers:
            continue
        count += buffers
        c = graph.shape(node)[0]
        if graph.layer(node).kind == "batch_norm" and buffers == 2 * c + 1:
            two_c = product([2, c])
            parts.append(Expr(f"{two_c.tex} + 1", f"{two_c.text} + 1", 2 * c + 1))
        else:
            parts.append(number(buffers))
    return _cell(parts, count), count


def _row_activations(graph: Any, row: LayerRow, dtype_bytes: int) -> tuple[Equation | str, int]:
    """Bytes of the outputs a row's nodes keep: nodes times output elements times bytes."""
    kept = [graph.info(n).activations for n in row.nodes]
    count = sum(kept) * dtype_bytes
    nodes = sum(1 for k in kept if k)
    shape = graph.shape(row.last)
    if nodes and sum(kept) == nodes * math.prod(shape):
        return _cell([product([nodes, *shape, dtype_bytes], count)], count), count
    return _cell([number(count)], count), count


def _sum_equation(name: str, tex: str, parts: list[Expr], value: int) -> Equation:
    return Equation((Expr(tex, name), total(parts), number(value)))


def _totals(graph: Any, sums: dict[str, list[int]], dtype_bytes: int) -> tuple[Equation, ...]:
    summary = graph.summary(dtype_bytes=dtype_bytes)
    parts = {k: [number(v) for v in values if v] for k, values in sums.items()}
    params, buffers, macs = summary["params"], summary["buffers"], summary["macs"]
    return (
        _sum_equation("parameters", r"\text{parameters}", parts["params"], params),
        _sum_equation("buffers", r"\text{buffers}", parts["buffers"], buffers),
        _sum_equation("MACs", r"\text{MACs}", parts["macs"], macs),
        Equation(
            (
                Expr(r"\text{FLOPs}", "FLOPs"),
                Expr(rf"2 \cdot {number(macs).tex}", f"2*{macs}", 2 * macs),
                number(summary["flops"]),
            )
        ),
        Equation(
            (
                Expr(r"\text{parameter bytes}", "parameter bytes"),
                Expr(
                    rf"({number(params).tex} + {number(buffers).tex}) \cdot {dtype_bytes}",
                    f"({params} + {buffers})*{dtype_bytes}",
                    (params + buffers) * dtype_bytes,
                ),
                number(summary["param_bytes"]),
            )
        ),
        _sum_equation(
            "activation bytes",
            r"\text{activation bytes}",
            parts["act"],
            summary["activation_bytes"],
        ),
    )


def cost_meaning(graph: Any, dtype_bytes: int = 4) -> dict[str, Any]:
    """What the derivation's names stand for, computed by the graph (for ``verify``): the
    totals of its summary, and per row ``i`` of :func:`layer_rows` the output shape and the
    sums of its nodes' parameters (shared ones at first use), buffers, MACs and output bytes.

    Examples
    --------
    >>> from convalgebra.network import zoo
    >>> m = cost_meaning(zoo.get("resnet18"))
    >>> m["parameters_1"], m["buffers_1"], m["MACs"], m["shape_1"]
    (9536, 129, 1814073344, (64, 112, 112))
    """
    s = graph.summary(dtype_bytes=dtype_bytes)
    meaning: dict[str, Any] = {
        "parameters": s["params"],
        "buffers": s["buffers"],
        "MACs": s["macs"],
        "FLOPs": s["flops"],
        "parameter bytes": s["param_bytes"],
        "activation bytes": s["activation_bytes"],
    }
    seen: set = set()
    for i, row in enumerate(layer_rows(graph)):
        infos = [graph.info(n, _seen=seen) for n in row.nodes]
        meaning[f"shape_{i}"] = tuple(graph.shape(row.last))
        meaning[f"parameters_{i}"] = sum(x.params for x in infos)
        meaning[f"buffers_{i}"] = sum(x.buffers for x in infos)
        meaning[f"MACs_{i}"] = sum(x.macs for x in infos)
        meaning[f"output bytes_{i}"] = sum(x.activations for x in infos) * dtype_bytes
    return meaning


def derive_network_cost(graph: Any, *, dtype_bytes: int = 4) -> Derivation:
    """Parameters, buffers, MACs and memory of a ``LayerGraph``, layer by layer, with totals.

    Parameters
    ----------
    graph : LayerGraph
    dtype_bytes : int, default 4
        Bytes per element for the memory (4: float32).

    Returns
    -------
    Derivation
        ``result`` holds the totals of :meth:`LayerGraph.summary`: ``params``, ``buffers``,
        ``macs``, ``flops``, ``param_bytes`` and ``activation_bytes``; ``verify()`` reads
        every printed number back and the totals against the graph's summary.

    Examples
    --------
    >>> from convalgebra.network import zoo
    >>> d = derive_network_cost(zoo.get("resnet18"))
    >>> d.result["params"], d.result["macs"]
    (11689512, 1814073344)
    >>> [l.strip().split("  ")[0] for l in d.to_text().splitlines() if "conv1 + BN" in l][0]
    'conv1 + BN + ReLU'
    >>> d.verify() > 0
    True
    """
    if isinstance(dtype_bytes, bool) or not isinstance(dtype_bytes, int) or dtype_bytes < 1:
        raise ConvAlgebraError(f"dtype_bytes must be a positive integer, got {shown(dtype_bytes)}")
    seen: set = set()
    held: list[tuple[Any, ...]] = []
    work: list[tuple[Any, ...]] = []
    sums: dict[str, list[int]] = {"params": [], "buffers": [], "macs": [], "act": []}
    for row in layer_rows(graph):
        params, n_params = row_params(graph, row, seen)
        macs, n_macs = row_macs(graph, row)
        buffers, n_buffers = _row_buffers(graph, row)
        act, n_act = _row_activations(graph, row, dtype_bytes)
        label = folded_name(graph, row)
        shape = " x ".join(map(str, graph.shape(row.last)))
        held.append((label, shape, "0" if params is None else params, buffers))
        work.append((label, "0" if macs is None else macs, act))
        for key, value in zip(sums, (n_params, n_buffers, n_macs, n_act), strict=True):
            sums[key].append(value)
    steps = (
        Step(
            "What each layer holds (shapes channels first; a batch normalisation or an "
            "elementwise activation is folded into the layer it follows, its parameters and "
            "buffers counted in that row; parameters shared between nodes are counted once):",
            (Table(("layer", "output shape", "parameters", "buffers"), tuple(held)),),
            "A convolution has $C_{out} \\cdot C_{in}/g \\cdot \\prod k$ weights and $C_{out}$ "
            "biases; a linear layer $n_{in} \\cdot n_{out}$ weights and $n_{out}$ biases; a batch "
            "normalisation $2 C$ parameters (a scale and a shift per channel) and $2 C + 1$ "
            "buffers (running mean and variance, the batch counter).",
            "table",
        ),
        Step(
            f"What each layer does and keeps ({dtype_bytes} bytes per element; every node of a "
            "row keeps its output for the pass):",
            (Table(("layer", "MACs", "output bytes"), tuple(work)),),
            "A convolution does $C_{in}/g \\cdot \\prod k$ MACs per output element, a linear "
            "layer one per weight; a row of $n$ nodes of output $C \\times H \\times W$ keeps "
            "$n \\cdot C H W$ elements.",
            "table",
        ),
        Step(
            "Adding up (FLOPs are one multiply and one add per MAC; the parameter memory holds "
            "the parameters and the buffers):",
            _totals(graph, sums, dtype_bytes),
            rule="total",
        ),
    )
    summary = graph.summary(dtype_bytes=dtype_bytes)
    result = {
        k: summary[k]
        for k in ("params", "buffers", "macs", "flops", "param_bytes", "activation_bytes")
    }
    name = graph.nx.graph.get("name", "graph")
    return NetworkCost(
        f"Cost of {name}",
        steps,
        result=result,
        meaning=lambda: cost_meaning(graph, dtype_bytes),
    )
