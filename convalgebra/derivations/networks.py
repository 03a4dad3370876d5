"""Derivations over layers and networks: parameter counts, MACs, receptive-field growth.

Every number comes from the library (:class:`~convalgebra.spec.ConvSpec` arithmetic and
:class:`~convalgebra.network.graph.LayerGraph`'s per-node facts and receptive fields); this module
writes the arithmetic that produces it (``5 \\cdot 5 \\cdot 3 + 1 = 76``), the table, the
totals, and the receptive-field recurrence ``r_l = r_{l-1} + (k_l - 1) d_l j_{l-1}``,
``j_l = j_{l-1} s_l`` with the numbers of each layer -- checked against the library's values
when the derivation is verified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ConvAlgebraError
from ..errors import shown as shown_value
from ..network.tabulate import folded_name as folded
from ..network.tabulate import layer_rows
from ..spec import ConvSpec, normalize_tuple, pool_stride
from .model import Derivation, Equation, Expr, Step, Table
from .printing import number
from .words import sizes, spec_words

__all__ = [
    "derive_params",
    "derive_receptive_field",
    "product",
    "total",
    "row_params",
    "row_macs",
    "sliding_window",
    "layer_words",
]


def product(factors: Sequence[int], value: int | None = None) -> Expr:
    """``f1 · f2 · …`` (unit factors dropped) whose value is the product (or ``value``)."""
    shown = [f for f in factors if f != 1] or [1]
    tex = r" \cdot ".join(number(f).tex for f in shown)
    return Expr(tex, "*".join(map(str, shown)), math.prod(factors) if value is None else value)


def total(parts: Sequence[Expr]) -> Expr:
    """``p1 + p2 + …`` of already-rendered parts (each parenthesised when it is a sum)."""
    import sympy

    tex = " + ".join(p.tex for p in parts) or "0"
    text = " + ".join(p.text for p in parts) or "0"
    return Expr(tex, text, sympy.Add(*[p.value for p in parts]))


# ---------------------------------------------------------------------- parameters
def _spec_params(spec: ConvSpec) -> list[Equation]:
    per = spec.in_channels // spec.groups
    k = list(spec.kernel_size)
    filt = product(k + [per])
    eqs = []
    if spec.channel_table is not None:
        links = sum(map(sum, spec.channel_table))
        eqs.append(
            Equation(
                (Expr(r"\text{weights}", "weights"), product([links] + k), number(spec.n_weights)),
                label="connected channel pairs times taps",
            )
        )
    elif spec.tile is not None:
        eqs.append(
            Equation(
                (
                    Expr(r"\text{weights}", "weights"),
                    product(list(spec.weight_shape)),
                    number(spec.n_weights),
                ),
                label=f"{math.prod(spec.tile)} kernels in rotation (tile {spec.tile})",
            )
        )
    elif spec.bias and not spec.transposed:
        one = Expr(f"{filt.tex} + 1", f"{filt.text} + 1", filt.value + 1)
        eqs.append(
            Equation(
                (Expr(r"\text{per filter}", "per filter"), one, number(filt.value + 1)),
                label="taps times input channels, plus a bias",
            )
        )
        eqs.append(
            Equation(
                (
                    Expr(r"\text{layer}", "layer"),
                    Expr(
                        rf"{spec.out_channels} \cdot {filt.value + 1}",
                        f"{spec.out_channels}*{filt.value + 1}",
                        spec.out_channels * (filt.value + 1),
                    ),
                    number(spec.n_params),
                )
            )
        )
        return eqs
    else:
        weights = product(list(spec.weight_shape))
        sides = (weights,) if "*" in weights.text else ()
        eqs.append(
            Equation(
                (Expr(r"\text{weights}", "weights"), *sides, number(spec.n_weights)),
                label="the weight shape " + str(spec.weight_shape),
            )
        )
    if spec.bias:
        eqs.append(
            Equation(
                (
                    Expr(r"\text{layer}", "layer"),
                    Expr(
                        f"{number(spec.n_weights).tex} + {spec.out_channels}",
                        f"{spec.n_weights} + {spec.out_channels}",
                        spec.n_weights + spec.out_channels,
                    ),
                    number(spec.n_params),
                ),
                label="weights plus one bias per output channel",
            )
        )
    return eqs


def _spec_macs(spec: ConvSpec) -> Equation:
    taps = math.prod(spec.kernel_size)
    if spec.transposed:
        factors = [math.prod(spec.input_shape), spec.out_channels // spec.groups, taps]
        label = "input elements times taps scattered"
    elif spec.channel_table is not None:
        factors = [math.prod(spec.output_shape[1:]), spec.n_weights]
        label = "output positions times connected weights"
    else:
        factors = [*spec.output_shape, spec.in_channels // spec.groups, *spec.kernel_size]
        label = "outputs times taps per output"
    return Equation(
        (Expr(r"\text{MACs}", "MACs"), product(factors), number(spec.macs)), label=label
    )


def _spec_step(spec: ConvSpec) -> Step:
    shape = r" \times ".join(map(str, spec.output_shape))
    return Step(
        f"{spec_words(spec)}: output ${shape}$, weight shape {spec.weight_shape}.",
        tuple(_spec_params(spec)) + (_spec_macs(spec),),
        "A filter sees every input channel of its group through every kernel tap; the kernel is shared by all "
        "output positions, so positions do not multiply the parameters but do multiply the work.",
        "count",
    )


def _specs_params(specs: list[ConvSpec]) -> Derivation:
    steps = [_spec_step(s) for s in specs]
    if len(specs) > 1:
        params = total([number(s.n_params) for s in specs])
        macs = total([number(s.macs) for s in specs])
        steps.append(
            Step(
                "Totals over the layers:",
                (
                    Equation(
                        (
                            Expr(r"\text{parameters}", "parameters"),
                            params,
                            number(sum(s.n_params for s in specs)),
                        )
                    ),
                    Equation(
                        (Expr(r"\text{MACs}", "MACs"), macs, number(sum(s.macs for s in specs)))
                    ),
                ),
                rule="total",
            )
        )
    title = "Parameters and cost of " + (
        spec_words(specs[0]) if len(specs) == 1 else f"{len(specs)} layers"
    )
    return Derivation(
        title, tuple(steps), result=(sum(s.n_params for s in specs), sum(s.macs for s in specs))
    )


def _node_param_parts(graph, node: str, params: int) -> list[Expr]:
    """The arithmetic of one node's parameters: ``C_out · C_in/g · ∏k + C_out`` for a
    convolution, ``n_in · n_out + n_out`` for a linear layer, ``2 · C`` for a batch norm's
    scale and shift; the bare count otherwise (or when parameters are shared)."""
    facts, layer = graph.facts(node), graph.layer(node)
    if params == 0:
        return []
    parts: list[Expr] = []
    if facts.spec is not None and params == facts.spec.n_params:
        spec = facts.spec
        parts = [product(list(spec.weight_shape))] + (
            [number(spec.out_channels)] if spec.bias else []
        )
    elif layer.kind == "linear" and params == sum(facts.params.values()):
        out = layer.out_features
        parts = [product([facts.params["weight"] // out, out])]
        parts += [number(out)] if layer.bias else []
    elif layer.kind == "batch_norm" and params == 2 * facts.shape[0]:
        parts = [product([2, facts.shape[0]])]
    if sum(int(p.value) for p in parts) != params:
        return [number(params)]
    return parts


def row_params(graph, row, seen: set) -> tuple[Equation | None, int]:
    """The parameters of a table row (a layer with what is folded into it): the displayed
    sum of its nodes' parameters, and the graph's count (shared ones counted at first use)."""
    parts: list[Expr] = []
    count = 0
    for node in row.nodes:
        params = graph.info(node, _seen=seen).params
        count += params
        parts += _node_param_parts(graph, node, params)
    if not count:
        return None, 0
    shown = total(parts) if len(parts) > 1 or "*" in parts[0].text else None
    sides = (shown, number(count)) if shown is not None else (number(count),)
    return Equation(sides, defines=False), count


def row_macs(graph, row) -> tuple[Equation | None, int]:
    """The multiply-accumulates of a row (its lead's: what is folded does none), displayed
    as the product that gives them, and the graph's count."""
    node = row.lead
    facts, layer = graph.facts(node), graph.layer(node)
    count = sum(graph.facts(n).macs for n in row.nodes)
    if not count:
        return None, 0
    shown = None
    if facts.spec is not None and count == facts.macs:
        shown = _spec_macs(facts.spec).sides[1]
    elif layer.kind == "linear" and count == facts.macs:
        (src,) = graph.nx.nodes[node]["inputs"]
        shown = product([math.prod(graph.shape(src)), layer.out_features])
    sides = (shown, number(count)) if shown is not None else (number(count),)
    return Equation(sides, defines=False), count


def _graph_params(graph) -> Derivation:
    from ..network.tabulate import folded_name, layer_rows

    seen: set = set()
    rows: list[tuple[Any, ...]] = []
    param_parts, mac_parts = [], []
    for row in layer_rows(graph):
        params, n_params = row_params(graph, row, seen)
        macs, n_macs = row_macs(graph, row)
        rows.append(
            (
                folded_name(graph, row),
                graph.info(row.lead).kind,
                " x ".join(map(str, graph.shape(row.last))),
                "0" if params is None else params,
                "0" if macs is None else macs,
            )
        )
        if n_params:
            param_parts.append(number(n_params))
        if n_macs:
            mac_parts.append(number(n_macs))
    table = Table(("layer", "kind", "output shape", "parameters", "MACs"), tuple(rows))
    totals = (
        Equation(
            (
                Expr(r"\text{parameters}", "parameters"),
                total(param_parts),
                number(graph.param_count()),
            )
        ),
        Equation((Expr(r"\text{MACs}", "MACs"), total(mac_parts), number(graph.macs()))),
    )
    steps = (
        Step(
            "Layer by layer (shapes channels first; a batch normalisation or an elementwise "
            "activation is folded into the layer it follows, its parameters counted in that "
            "row; parameters shared between nodes are counted once):",
            (table,),
            "A convolution has $C_{out} \\cdot C_{in}/g \\cdot \\prod k$ weights and $C_{out}$ biases; a "
            "linear layer $n_{in} \\cdot n_{out}$ weights and $n_{out}$ biases; a batch normalisation "
            "$2 C$ (a scale and a shift per channel); pooling, activations and reshapes have none.",
            "table",
        ),
        Step(
            "Adding up:",
            totals,
            "FLOPs are about twice the MACs (one multiply and one add each).",
            "total",
        ),
    )
    name = graph.nx.graph.get("name", "graph")
    return Derivation(
        f"Parameters and cost of {name}", steps, result=(graph.param_count(), graph.macs())
    )


def derive_params(obj: Any) -> Derivation:
    """Parameter count and MACs of a layer, of several layers, or of a whole ``LayerGraph``.

    Examples
    --------
    >>> d = derive_params(ConvSpec((3, 32, 32), 10, 5, padding=2))
    >>> [l.strip() for l in d.to_text().splitlines() if "per filter" in l]
    ['per filter = 5*5*3 + 1 = 76    (taps times input channels, plus a bias)']
    >>> d.result
    (760, 768000)
    """
    from ..network.graph import LayerGraph

    if isinstance(obj, ConvSpec):
        return _specs_params([obj])
    if isinstance(obj, LayerGraph):
        return _graph_params(obj)
    if isinstance(obj, ConvSpec):
        obj = [obj]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(s, ConvSpec) for s in obj):
        return _specs_params(list(obj))
    raise ConvAlgebraError(
        f"params derivations need a ConvSpec, a list of them or a LayerGraph, got {shown_value(obj)}"
    )


# ------------------------------------------------------------------ receptive field
def _graph_of(specs: Sequence[ConvSpec]):
    from ..network.graph import LayerGraph
    from ..network.layers import Conv

    graph = LayerGraph("stack")
    graph.add_input("input", specs[0].input_shape)
    for i, s in enumerate(specs, 1):
        if s.tile is not None or s.channel_table is not None or s.flip:
            raise ConvAlgebraError(
                f"layer {i}: receptive fields need plain convolutions, got {s.describe()}"
            )
        graph.add(
            f"conv{i}",
            Conv(
                s.out_channels,
                _compact(s.kernel_size),
                _compact(s.stride),
                _compact(s.padding),
                _compact(s.dilation),
                s.groups,
                s.bias,
                s.padding_mode,
                s.transposed,
                _compact(s.output_padding),
            ),
        )
    return graph


def _compact(values: tuple) -> Any:
    """One value when every axis (and both sides of a padding pair) agree, else the tuple."""
    flat = [v for item in values for v in (item if isinstance(item, tuple) else (item,))]
    return flat[0] if len(set(flat)) == 1 else values


def sliding_window(graph, node: str) -> tuple | None:
    """(kernel, stride, dilation) per axis of a sliding-window node, else None."""
    facts, layer = graph.facts(node), graph.layer(node)
    if facts.spec is not None:
        spec = facts.spec
        return None if spec.transposed else (spec.kernel_size, spec.stride, spec.dilation)
    if layer.kind in ("max_pool", "avg_pool"):
        n = len(facts.shape) - 1
        k = normalize_tuple(layer.kernel_size, n, "kernel_size")
        s = pool_stride(k, layer.stride)
        return k, s, normalize_tuple(layer.dilation, n, "dilation")
    return None


def _names(layer: int, axis: int, per_axis: bool) -> tuple[Expr, Expr]:
    """``r_l``, ``j_l`` (with the axis as a superscript when several axes are shown)."""
    sup, text = (f"^{{({axis + 1})}}", f"^({axis + 1})") if per_axis else ("", "")
    return (
        Expr(f"r_{{{layer}}}{sup}", f"r_{layer}{text}"),
        Expr(f"j_{{{layer}}}{sup}", f"j_{layer}{text}"),
    )


def _rf_equations(
    graph, node: str, prev, rf, axis: int, names: tuple[Expr, Expr]
) -> tuple[Equation, ...]:
    window = sliding_window(graph, node)
    r, j = rf[axis], prev[axis]
    if window is None or prev[axis].is_global or r.is_global or not r.aligned:
        return (
            Equation(
                (names[0], number(r.size) if not r.is_global else Expr(r"\text{global}", "global"))
            ),
        )
    k, s, d = (w[axis] for w in window)
    dil = "" if d == 1 else rf" \cdot {d}"
    size = Expr(
        rf"{number(j.size).tex} + ({k} - 1){dil} \cdot {number(j.jump).tex}",
        f"{j.size} + ({k} - 1)" + (f"*{d}" if d != 1 else "") + f"*{j.jump}",
        j.size + (k - 1) * d * j.jump,
    )
    jump = Expr(rf"{number(j.jump).tex} \cdot {s}", f"{j.jump}*{s}", j.jump * s)
    return (Equation((names[0], size, number(r.size))), Equation((names[1], jump, number(r.jump))))


def layer_words(graph, node: str) -> str:
    """A node's layer in words: ``Conv2d, 3→64 channels, 7×7, stride 2, padding 3, no bias``,
    ``max pooling 3×3, stride 2, padding 1``, ``linear 512→1000``, else its kind.

    Examples
    --------
    >>> from convalgebra.network import zoo
    >>> g = zoo.get("resnet18")
    >>> layer_words(g, "conv1"), layer_words(g, "maxpool"), layer_words(g, "fc")
    ('Conv2d, 3→64 channels, 7×7, stride 2, padding 3, no bias', 'max pooling 3×3, stride 2, padding 1', 'linear 512→1000')
    """
    facts, layer = graph.facts(node), graph.layer(node)
    if facts.spec is not None:
        return spec_words(facts.spec).rsplit(" on ", 1)[0]
    window = sliding_window(graph, node)
    if window is not None:
        k, s, d = window
        words = [f"{layer.kind.split('_')[0]} pooling {sizes(k)}"]
        pad = _pool_padding(layer, graph.shape(graph.nx.nodes[node]["inputs"][0]), window)
        for name, values in (("stride", s), ("padding", pad), ("dilation", d)):
            if max(values) > (0 if name == "padding" else 1):
                words.append(f"{name} {values[0] if len(set(values)) == 1 else sizes(values)}")
        return ", ".join(words)
    if layer.kind == "linear":
        (src,) = graph.nx.nodes[node]["inputs"]
        return f"linear {graph.shape(src)[-1]}→{layer.out_features}"
    return graph.info(node).kind.replace("_", " ")


def _pool_padding(layer, shape: tuple, window: tuple) -> tuple[int, ...]:
    """A pooling layer's padding before each axis (TensorFlow's "same" resolved)."""
    from ..network.layers import tf_same_padding

    if isinstance(layer.padding, str):
        return tuple(b for b, _ in tf_same_padding(shape[1:], *window))
    return normalize_tuple(layer.padding, len(window[0]), "padding", minimum=0)


def _layer_step(graph, row, layer: int, shown: list[int], label: dict) -> Step:
    """One layer of the recurrence, with the numbers of the row and of the rows it reads."""
    node = row.lead
    srcs = graph.nx.nodes[node]["inputs"]
    rf = graph.receptive_field(row.last)
    names = {a: _names(layer, a, len(shown) > 1) for a in shown}
    eqs: tuple = ()
    if len(srcs) == 1:
        prev = graph.receptive_field(srcs[0])
        eqs = tuple(e for a in shown for e in _rf_equations(graph, node, prev, rf, a, names[a]))
    reads = ", ".join(label.get(s, s) for s in srcs)
    statement = (
        f"Layer {layer}, {folded(graph, row)} ({layer_words(graph, node)}), reading {reads}:"
    )
    why = (
        ""
        if len(srcs) == 1
        else f"The field of a merge is the union of its {len(srcs)} inputs' fields."
    )
    if (
        len(srcs) == 1
        and sliding_window(graph, node) is None
        and not eqs[0].sides[-1].text == "global"
    ):
        why = "No sliding window here: the field is carried over or set by the layer's reach."
    eqs = eqs or tuple(Equation((names[a][0], number(rf[a].size))) for a in shown)
    return Step(statement, eqs, why, "layer")


def derive_receptive_field(obj: Any, *, axes: Sequence[int] | None = None) -> Derivation:
    """Receptive-field growth through a network, layer by layer, with the recurrence's numbers.

    ``obj`` is a ``LayerGraph``, a list of :class:`ConvSpec` applied one after the other, or one spec.

    Examples
    --------
    >>> layers = [ConvSpec((1, 32, 32), 1, 3, padding=1)] * 3
    >>> derive_receptive_field(layers).result
    [3, 5, 7]
    """
    from ..network.graph import LayerGraph

    if isinstance(obj, ConvSpec):
        obj = [obj]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(s, ConvSpec) for s in obj):
        graph = _graph_of(obj)
    elif isinstance(obj, LayerGraph):
        graph = obj
    else:
        raise ConvAlgebraError(
            f"receptive_field derivations need a LayerGraph or a list of ConvSpecs, got {shown_value(obj)}"
        )
    n = graph.spatial_ndim
    shown = list(range(n)) if axes is None else list(axes)
    if not shown or any(not 0 <= a < n for a in shown):
        raise ConvAlgebraError(f"axes must be spatial axes in 0..{n - 1}, got {shown_value(axes)}")
    steps = [
        Step(
            "Recurrence: a unit of layer $l$ sees $r_l = r_{l-1} + (k_l - 1) d_l j_{l-1}$ input positions, and "
            "adjacent units are $j_l = j_{l-1} s_l$ input positions apart (kernel $k_l$, dilation $d_l$, stride $s_l$); "
            "an input unit has $r_0 = 1$, $j_0 = 1$.",
            justification="Each extra tap of layer $l$ reaches one more unit of layer $l-1$, and those are "
            "$j_{l-1}$ input positions apart.",
            rule="recurrence",
        )
    ]
    found, layer = [], 0
    rows: list[tuple[Any, ...]] = []
    label: dict[str, str] = {}
    for row in layer_rows(graph):
        if not graph.nx.nodes[row.lead]["inputs"]:
            label[row.lead] = f"{row.lead} (layer 0)"
            continue
        layer += 1
        steps.append(_layer_step(graph, row, layer, shown, label))
        label[row.last] = f"layer {layer}"
        node = row.last
        rf = graph.receptive_field(node)
        found.append(rf[shown[0]].size)
        held = graph.receptive_field(node, gates="ignore")
        rows.append(
            (
                folded(graph, row),
                graph.info(row.lead).kind,
                " x ".join(f.describe() for f in rf),
                " x ".join(f.describe() for f in held),
            )
        )
    gated = any(row[2] != row[3] for row in rows)
    if gated:
        steps.append(
            Step(
                "Gates: a product with a factor pooled over every position (squeeze-and-excitation) "
                "lets each unit depend on the whole input, so the strict field is global from the "
                "first gate on. Holding every such gate constant leaves the field of the "
                "convolutional path, the last column of the summary.",
                justification="A gate computed from a global pool has size 1 along every spatial "
                "axis and is broadcast over the positions it multiplies.",
                rule="gates",
            )
        )
    header = ("layer", "kind", "size/jump") + (("without gates",) if gated else ())
    rows = [row if gated else row[:3] for row in rows]
    steps.append(
        Step(
            "Summary (receptive field size / jump per axis; a batch normalisation or an "
            "elementwise activation is folded into the layer it follows):",
            (Table(header, tuple(rows)),),
            rule="table",
        )
    )
    name = graph.nx.graph.get("name", "graph")
    return Derivation(f"Receptive field growth through {name}", tuple(steps), result=found)
