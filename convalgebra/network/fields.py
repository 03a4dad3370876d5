"""The receptive field of every node of a layer graph, in one pass in topological order.

Each node gets a *plan* (where each spatial axis of the graph input sits in its output, and
through which axis map each input port carries it) and a field (one
:class:`~convalgebra.network.receptive.AxisRF` per spatial axis) from the plans and fields of
its inputs alone, so one walk over the nodes in order computes them all. The plan of a node
depends only on its facts and on its inputs' shapes and axes: repeated blocks (whose layers
share their facts) compute it once per process.

Examples
--------
>>> from convalgebra.network.graph import LayerGraph
>>> from convalgebra.network.layers import Conv, MaxPool
>>> g = LayerGraph.sequential((3, 32, 32), [Conv(8, 3), MaxPool(2), Conv(8, 3)])
>>> plans, rf = field_pass(g.nodes, g.nx.nodes, 2, (32, 32))
>>> plans["conv3"][0], [(f.size, f.jump) for f in rf["conv3"]]
((1, 2), [(8, 2), (8, 2)])

Notes
-----
Along one axis, a node reading one input through axis map ``m`` has the field
``apply_map(field(input), m)`` (the recurrences of :func:`~.receptive.apply_map`); a node
reading several has the union of those (:func:`~.receptive.merge`); an axis the output does
not carry (merged away by a reshape) is global.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .layers import Facts, Opaque, Parameter
from .receptive import IDENTITY, AxisRF, Global, apply_map, global_rf, input_rf, merge

__all__ = [
    "ALL",
    "NO_FIELD",
    "field_pass",
    "port_maps",
    "spatial_sizes",
    "input_box",
    "gate_inputs",
    "exact_fields",
]

#: A request for every position of a node (a node whose spatial axes are merged away).
ALL = "all"

#: The field of a parameter along one axis: it reads no input.
NO_FIELD = AxisRF(0, 1, 0, jumps=(1,))
_GLOBAL = Global()
Plan = tuple[tuple[int | None, ...] | None, Any]
# (id(facts), input axes, input shapes) -> (facts, plan, steps, live ports), shared by the
# graphs of a process as the facts are (a record holds its facts: the id stays theirs)
_PLANS: dict[tuple, tuple] = {}
_PLANS_MAX = 20_000


def _aligned(rank_in: int, rank_out: int) -> tuple[int | None, ...]:
    """Output axis -> input axis, trailing axes aligned (broadcasting)."""
    shift = rank_out - rank_in
    return tuple(t - shift if t >= shift else None for t in range(rank_out))


def port_maps(facts: Facts, port: int, in_shape: tuple, in_axes: tuple, n: int) -> tuple:
    """Per spatial axis: ``(output axis, axis map)`` through input ``port``, or ``None``
    when the output does not carry the axis from that input.

    Examples
    --------
    >>> from convalgebra.network.layers import Conv
    >>> facts = Conv(4, 3, stride=2).facts([(3, 9, 9)])
    >>> port_maps(facts, 0, (3, 9, 9), (1, 2), 2)[0]
    (1, Local(stride=2, taps=(0, 1, 2), mode='zeros'))
    """
    out_rank = len(facts.shape)
    moves = facts.moves[port] if facts.moves else _aligned(len(in_shape), out_rank)
    maps = facts.maps[port] if facts.maps is not None and port < len(facts.maps) else None
    lead = facts.lead[port] if facts.lead and port < len(facts.lead) else None
    out: list[tuple[int, Any] | None] = []
    for a in range(n):
        t_in = in_axes[a]
        if t_in is None or t_in not in moves:
            out.append(None)
            continue
        t = moves.index(t_in)
        if maps is None or (t > 0 and len(maps) != out_rank - 1):
            amap: Any = _GLOBAL
        else:
            amap = (lead or _GLOBAL) if t == 0 else maps[t - 1]
        out.append((t, amap))
    return tuple(out)


def _carried(axes: set) -> int | None:
    return axes.pop() if len(axes) == 1 else None


def _plan(facts: Facts, shapes: tuple, in_axes: tuple, n: int) -> tuple[tuple, tuple]:
    """``(axes, ports)`` of a node with at least one live input (see :func:`field_pass`)."""
    ports: tuple[Any, ...] = tuple(
        port_maps(facts, p, shape, axes, n) if axes is not None else None
        for p, (shape, axes) in enumerate(zip(shapes, in_axes))
    )
    live = [p for p, axes in enumerate(in_axes) if axes is not None]
    axes = tuple(_carried({ports[p][a][0] for p in live if ports[p][a]}) for a in range(n))
    return axes, ports


def _identity(carried: Any) -> Any:
    """``(axis, map)`` with a map equal to the identity replaced by the identity itself (the
    same recurrence: its field is its input's, see :func:`_fields`)."""
    if carried is not None and carried[1] is not IDENTITY and carried[1] == IDENTITY:
        return carried[0], IDENTITY
    return carried


def _steps(axes: tuple, ports: tuple[Any, ...], live: list[int]) -> tuple:
    """How the node's field is formed from its inputs' fields (see :func:`_fields`).

    ``("same", port)`` when every axis passes through ``port`` unchanged, ``("map", port,
    maps)`` when each axis goes through one axis map of ``port``, else ``("any", steps)``
    with per axis ``(None, live)`` for a global axis (the output does not carry it) or
    ``((port, (axis, map) or None), ...)`` over the live ports.
    """
    steps = tuple(
        (None, tuple(live)) if axis is None else tuple((p, _identity(ports[p][a])) for p in live)
        for a, axis in enumerate(axes)
    )
    if len(live) == 1:
        carried = [step[0][1] for step in steps if step[0] is not None]
        if len(carried) == len(axes) and all(c is not None for c in carried):
            maps = tuple(c[1] for c in carried)
            if all(m is IDENTITY for m in maps):
                return ("same", live[0])
            return ("map", live[0], maps)
    return ("any", steps)


def _fields(how: tuple, inputs: list, extent: tuple) -> tuple[AxisRF, ...]:
    """The node's field on every axis from its inputs' fields (``inputs[port]``)."""
    if how[0] == "same":
        rf = inputs[how[1]]
        if not any(f.is_global for f in rf):  # else apply_map renews the global records
            return rf
        return tuple(apply_map(f, IDENTITY, e) for f, e in zip(rf, extent))
    if how[0] == "map":
        return tuple(apply_map(f, m, e) for f, m, e in zip(inputs[how[1]], how[2], extent))
    out = []
    for a, step in enumerate(how[1]):
        size = extent[a]
        if step[0] is None:
            out.append(global_rf(size, max(inputs[p][a].jump for p in step[1])))
            continue
        reads = []
        for p, carried in step:
            rf = inputs[p][a]
            if carried is None:  # the axis comes from another input
                reads.append(global_rf(size, rf.jump))
            elif carried[1] is IDENTITY and not rf.is_global:  # apply_map's own shortcut
                reads.append(rf)
            else:
                reads.append(apply_map(rf, carried[1], size))
        out.append(reads[0] if len(reads) == 1 else merge(reads, size))
    return tuple(out)


def _planned(key: tuple, facts: Facts, in_axes: tuple, n: int) -> tuple:
    axes, ports = _plan(facts, key[2:], in_axes, n)
    live = [p for p, axes_in in enumerate(in_axes) if axes_in is not None]
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    found = _PLANS[key] = (facts, (axes, ports), _steps(axes, ports, live), live)
    return found


def field_pass(
    order: Iterable[str],
    attrs: Mapping[str, Mapping[str, Any]],
    n: int,
    extent: tuple[int, ...],
    gates: Callable[[str], tuple[int, ...]] | None = None,
) -> tuple[dict[str, Plan], dict[str, tuple[AxisRF, ...]]]:
    """The plan and the receptive field of every node, in one pass over ``order``.

    Parameters
    ----------
    order : iterable of str
        The node names in topological order.
    attrs : mapping
        Node name -> its attributes ``layer``, ``facts`` and ``inputs`` (the names it reads,
        in port order), as in ``LayerGraph.nx.nodes``.
    n : int
        Number of spatial axes of the graph input.
    extent : tuple of int
        Spatial size of the graph input along each axis.
    gates : callable, optional
        Node -> the input ports that are gates to hold constant (``LayerGraph.gate_ports``);
        given, a ``squeeze_excite`` node whose output keeps its input's axes is the identity.

    Returns
    -------
    plans : dict
        Node -> ``(axes, ports)``: where each spatial axis sits in the node's output
        (``None`` for a parameter or a value computed from parameters alone) and, per input
        port, :func:`port_maps` (``()`` for inputs and parameters).
    fields : dict
        Node -> one :class:`~.receptive.AxisRF` per spatial axis.
    """
    no_field, glob = (NO_FIELD,) * n, tuple(global_rf(e, 1) for e in extent)
    spatial_axes = tuple(range(1, n + 1))
    plans: dict[str, Plan] = {}
    fields: dict[str, tuple[AxisRF, ...]] = {}
    for node in order:
        data = attrs[node]
        facts, srcs = data["facts"], data["inputs"]
        in_axes = (plans[srcs[0]][0],) if len(srcs) == 1 else tuple([plans[s][0] for s in srcs])
        if in_axes.count(None) == len(in_axes):  # no live input
            layer = data["layer"]
            if srcs or isinstance(layer, Parameter):
                plans[node], fields[node] = (None, ()), no_field
                continue
            spatial = len(facts.shape) == n + 1 and not isinstance(layer, Opaque)
            plans[node] = (spatial_axes if spatial else (None,) * n, ())
            fields[node] = (input_rf(),) * n if spatial else glob
            continue
        key = (id(facts), in_axes, *[attrs[s]["facts"].shape for s in srcs])
        found = _PLANS.get(key)
        if found is None or found[0] is not facts:
            found = _planned(key, facts, in_axes, n)
        _, plan, how, live = found
        plans[node] = plan
        if how[0] == "same" and gates is None:  # most layers: elementwise on one input
            rf = fields[srcs[how[1]]]
            if not any([f.is_global for f in rf]):
                fields[node] = rf
                continue
        inputs = [fields[s] for s in srcs]
        if gates is not None:
            kind = data["layer"].kind
            if kind == "squeeze_excite" and plan[0] == in_axes[0]:
                fields[node] = inputs[0]  # the gate held constant: the identity
                continue
            if kind == "mul":
                held = gates(node)
                how = _steps(plan[0], plan[1], [p for p in live if p not in held] or live)
        fields[node] = _fields(how, inputs, extent)
    return plans, fields


# ------------------------------------------------------------- the box of one unit
def spatial_sizes(axes: tuple | None, shape: tuple) -> tuple[int, ...] | None:
    """A node's size along each spatial axis of the graph input, from where its plan puts
    them (``axes``) in its output ``shape``; None when an axis is merged away or absent.

    Examples
    --------
    >>> spatial_sizes((0, 1), (7, 9, 16)), spatial_sizes((0, None), (63, 16))
    ((7, 9), None)
    """
    if not axes or any(t is None for t in axes):
        return None
    return tuple(shape[t] for t in axes if t is not None)


def _union(requests: list) -> Any:
    requests = [r for r in requests if r is not None]
    if not requests:
        return None
    if any(r is ALL for r in requests):
        return ALL
    if len(requests) == 1:
        return requests[0]
    return tuple(
        np.unique(np.concatenate([r[a] for r in requests])) for a in range(len(requests[0]))
    )


def input_box(
    order: list[str],
    attrs: Mapping[str, Mapping[str, Any]],
    plans: Mapping[str, Plan],
    node: str,
    request: Any,
    clip: bool,
    gates: Callable[[str], tuple[int, ...]] | None = None,
    zeros: Mapping[str, Any] | None = None,
) -> tuple | None:
    """Bounding box of the graph-input positions read by ``request`` at ``node``.

    ``request`` holds per spatial axis the positions asked for (an integer array), or is
    :data:`ALL`; the positions are pushed back node by node, in reverse topological order,
    through each input port's axis maps (``map.back``), their union kept per node.
    ``plans`` are :func:`field_pass`'s; ``gates``, given, lists the ports to hold constant
    (a ``squeeze_excite`` node keeping its input's sizes reads its input as the identity).
    ``zeros``, given, maps the nodes whose output is a product (``mul``, ``squeeze_excite``)
    to their per-axis masks of positions that may be non-zero
    (:func:`~convalgebra.network.support.nonzero_masks`, None: all): a product reads
    nothing where it is structurally zero.
    Returns one inclusive ``(first, last)`` pair per axis, or None when nothing is read.
    """
    requests: dict[str, Any] = {node: request}
    found: list = []
    for v in reversed(order):
        if v in requests:
            req = requests[v]
            if zeros is not None and zeros.get(v) is not None:
                req = _nonzero(req, zeros[v])
                if req is None:
                    continue
            found += _push(v, req, requests, attrs, plans, clip, gates)
    merged = _union(found)
    return tuple((int(a.min()), int(a.max())) for a in merged) if merged else None


def _nonzero(request: Any, mask: tuple) -> Any:
    """The positions of ``request`` (per axis, or :data:`ALL`) marked in ``mask`` (per
    axis); None when none is."""
    if request is ALL:
        kept = tuple(np.flatnonzero(m) for m in mask)
    else:
        kept = tuple(r[m[r]] for r, m in zip(request, mask))
    return None if any(k.size == 0 for k in kept) else kept


def _push(
    v: str,
    req: Any,
    requests: dict,
    attrs: Mapping[str, Mapping[str, Any]],
    plans: Mapping[str, Plan],
    clip: bool,
    gates: Callable[[str], tuple[int, ...]] | None,
) -> list:
    """Push the positions read at ``v`` (per axis) to its inputs; return input regions."""
    data = attrs[v]

    def sizes_of(name: str) -> tuple[int, ...] | None:
        return spatial_sizes(plans[name][0], attrs[name]["facts"].shape)

    if not data["inputs"]:
        if plans[v][0] is None:
            return []
        sizes = sizes_of(v)
        return [
            req
            if req is not ALL and sizes is not None
            else tuple(np.arange(s) for s in data["facts"].shape[1:])
        ]
    want: Any
    pairs = list(zip(data["inputs"], plans[v][1] or ()))
    if gates is not None and data["layer"].kind == "squeeze_excite":
        src, sizes = data["inputs"][0], sizes_of(v)
        if sizes is not None and sizes_of(src) == sizes:  # a gate held: identity
            want = req if req is not ALL else tuple(np.arange(size) for size in sizes)
            requests[src] = _union([requests.get(src), want])
            return []
    elif gates is not None:
        held = gates(v)
        pairs = [pair for p, pair in enumerate(pairs) if p not in held]
    for src, port in pairs:
        if port is None:  # a parameter: no positions to read
            continue
        sizes = sizes_of(src)
        if sizes is None:
            want = ALL
        elif req is ALL:
            want = tuple(np.arange(size) for size in sizes)
        else:
            want = tuple(
                np.arange(size) if pm is None else pm[1].back(pos, size, clip)
                for pm, pos, size in zip(port, req, sizes)
            )
            if any(w.size == 0 for w in want):
                continue
        requests[src] = _union([requests.get(src), want])
    return []


def gate_inputs(
    shapes: Sequence[tuple[int, ...]], shape: tuple[int, ...], n: int
) -> tuple[int, ...]:
    """Ports of a product of inputs of ``shapes`` (output ``shape``, ``n`` spatial axes)
    that are gates: size 1 along every spatial axis while the product is not; ``()`` when
    every input is."""
    gate = tuple(
        p for p, sh in enumerate(shapes) if len(sh) == n + 1 and n and all(v == 1 for v in sh[1:])
    )
    return gate if len(gate) < len(shapes) and math.prod(shape[1:]) > 1 else ()


def exact_fields(
    fields: tuple[AxisRF, ...],
    ancestors: Iterable[tuple[AxisRF, ...]],
    extents: tuple[int, ...],
    box: Callable[[tuple], tuple | None],
) -> tuple[AxisRF, ...]:
    """``fields`` of a node whose inexact or unaligned axes get the largest unclipped extent
    over one period of units.

    ``ancestors`` holds the fields of the node's ancestors, ``extents`` the node's size
    per spatial axis and ``box(request)`` the unclipped input box of a request (per-axis
    positions, see :func:`input_box`).

    Notes
    -----
    Along an aligned axis the extent repeats with the period ``lcm`` over the ancestors'
    jumps ``j`` of the denominator of ``jump / j``; along an unaligned one every unit is
    tried.
    """
    from dataclasses import replace
    from fractions import Fraction

    period = 1
    for rf in ancestors:
        for f, mine in zip(rf, fields):
            for j in f.jumps:
                period = math.lcm(period, (Fraction(mine.jump) / Fraction(j)).denominator)
    sizes = [0] * len(fields)
    for a, size in enumerate(extents):
        # unaligned paths: the union's extent changes with the index, try every unit
        units = size if not fields[a].aligned else min(period, size)
        for p in range(units):  # one axis at a time: the maps act per axis
            request = tuple(
                np.array([p]) if b == a else np.arange(s) for b, s in enumerate(extents)
            )
            found = box(request)
            if found:
                sizes[a] = max(sizes[a], found[a][1] - found[a][0] + 1)
    return tuple(
        replace(f, size=sz, exact=True) if (not f.exact or not f.aligned) and sz > 0 else f
        for f, sz in zip(fields, sizes)
    )
