"""The per-node report of a layer graph and the rows of its table.

:func:`node_info` gathers one node's parameters, cost, memory, receptive field and flags
(a :class:`NodeInfo`); :func:`table_rows` lays the reports of every node out as the rows of
:meth:`~convalgebra.network.graph.LayerGraph.table` (before the totals row);
:func:`unused_note` is the note under it naming the parameters no node reads.

Examples
--------
>>> from convalgebra.network.graph import LayerGraph
>>> from convalgebra.network.layers import Conv
>>> g = LayerGraph.sequential((3, 8, 8), [Conv(4, 3)])
>>> i = g.info("conv1")
>>> i.kind, i.shape, i.params, i.macs, i.activations
('conv', (4, 6, 6), 112, 3888, 144)
>>> unused_note({"head.weight": 40, "head.bias": 4})
'not used in forward: head.weight, head.bias (44 parameters, not counted)'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .counts import node_keys, param_keys
from .layers import Opaque, Parameter
from .names import layer_label
from .receptive import AxisRF

__all__ = ["NodeInfo", "node_info", "table_rows", "unused_note"]


@dataclass(frozen=True)
class NodeInfo:
    """Everything the graph reports about one node (see :meth:`LayerGraph.info`)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    shared_params: int
    buffers: int
    macs: int
    ops: int
    activations: int
    rf: tuple[AxisRF, ...]
    flags: tuple[str, ...]


def node_info(
    node: str,
    data: Mapping[str, Any],
    rf: tuple[AxisRF, ...],
    users: Mapping[str, int],
    seen: set | None = None,
) -> NodeInfo:
    """The report of node ``node`` (record ``data``, receptive field ``rf``).

    ``users`` counts the nodes reading each explicit key (:func:`~.counts.key_users`);
    with ``seen`` (the keys of the nodes reported before, updated here), parameters already
    seen count as ``shared_params``, not ``params``.
    """
    facts, layer = data["facts"], data["layer"]
    keys = param_keys(node, data)
    shared = sum(v for k, v in keys.items() if seen is not None and k in seen)
    if seen is not None:
        seen.update(keys)
    flags = tuple(
        f
        for f, on in (
            ("opaque", isinstance(layer, Opaque)),
            ("shared", any(users[k] > 1 for k in node_keys(data))),
            ("unaligned", any(not f.aligned for f in rf)),
        )
        if on
    )
    return NodeInfo(
        node,
        layer_label(layer),
        facts.shape,
        sum(keys.values()) - shared,
        shared,
        sum(param_keys(node, data, True).values()),
        facts.macs,
        facts.ops,
        0 if isinstance(layer, Parameter) else math.prod(facts.shape),
        rf,
        flags,
    )


def table_rows(
    order: Iterable[str],
    info: Callable[[str, set], NodeInfo],
    ignored: Callable[[str], tuple[AxisRF, ...]] | None,
    spatial_ndim: int,
    *,
    dtype_bytes: int,
    batch: int,
    numeric: bool = False,
) -> list[dict[str, Any]]:
    """One table row per node of ``order``, from ``info(node, seen)`` (shared parameters
    counted at their first use).

    ``ignored`` gives a node's field with the gates held constant, for an ``RF w/o gates``
    column (None: no such column); ``numeric`` adds the field's numbers per axis
    (``rf<axis>_size``, ``_jump``, ``_start``, ``_global``); MACs and ``act_bytes`` are
    for ``batch`` samples at ``dtype_bytes`` per element.
    """
    seen: set = set()
    rows = []
    for node in order:
        i = info(node, seen)
        row = {
            "node": node,
            "kind": i.kind,
            "output": i.shape,
            "params": i.params,
            "buffers": i.buffers,
            "MACs": i.macs * batch,
            "RF": " x ".join(f.describe() for f in i.rf) or None,
        }
        if ignored is not None:
            row["RF w/o gates"] = " x ".join(f.describe() for f in ignored(node)) or None
        if numeric:  # one number per column: size, jump, start and global per axis
            for a in range(spatial_ndim):
                record = i.rf[a].to_dict() if a < len(i.rf) else {}
                for key in ("size", "jump", "start", "global"):
                    row[f"rf{a}_{key}"] = record.get(key)
        rows.append(
            {
                **row,
                "act_bytes": i.activations * dtype_bytes * batch,
                "flags": ",".join(i.flags) or None,
            }
        )
    return rows


def unused_note(unused: Mapping[str, int], shown: int = 6) -> str | None:
    """``"not used in forward: a.weight, a.bias (12 parameters, not counted)"`` or None."""
    if not unused:
        return None
    names = ", ".join(list(unused)[:shown]) + (
        f", ... ({len(unused) - shown} more)" if len(unused) > shown else ""
    )
    return f"not used in forward: {names} ({sum(unused.values()):,} parameters, not counted)"
