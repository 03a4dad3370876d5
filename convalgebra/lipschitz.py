"""Certified Lipschitz bounds of whole networks, and a lower bound to see the gap.

The upper bound composes the Euclidean Lipschitz constant of every node of a
:class:`~convalgebra.network.graph.LayerGraph`, in topological order: a layer multiplies the bound of
its input by its own constant, a sum adds the bounds of its inputs (a residual block
``x + F(x)`` gets ``(1 + ||F||) L``), a concatenation takes the root of the sum of squares.
Convolutions use :mod:`convalgebra.spectra` with their true padding and stride, batch norm its
running statistics (eval mode), pooling its exact per-axis norms. The lower bound is power
iteration on ``J^T J`` for the Jacobian ``J`` of the torch model at a random point: ``||J v||``
for a unit ``v`` never exceeds the Lipschitz constant.

Examples
--------
>>> import numpy as np
>>> from convalgebra.network.graph import LayerGraph
>>> from convalgebra.network.layers import Activation, Conv
>>> g = LayerGraph.sequential((1, 8), [Conv(1, 3, padding=1, padding_mode="circular",
...                                         bias=False), Activation("relu")])
>>> names = g.nodes
>>> bound = lipschitz_bound(g, weights={names[1]: {"weight": [[[1.0, 2.0, 1.0]]]}})
>>> round(bound.upper, 6), bound.lower is None
(4.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .budget import (
    DEFAULT_MAX_BYTES,
    check_iterations,
    check_limit,
    require_memory,
    require_work,
)
from .connectivity import axis_table
from .display import html_table, short_repr, summary_html
from .errors import ConvAlgebraError, require, shown
from .network.graph import LayerGraph
from .spec import ConvSpec, pool_output_size
from .spectra import fft_applies, padding_norm, upper_bounds
from .variants import avg_pool_matrix

__all__ = [
    "NodeLipschitz",
    "LipschitzBound",
    "lipschitz_bound",
    "ACTIVATION_LIPSCHITZ",
    "LIPSCHITZ_MAX_FLOPS",
]

#: sup |f'| of the elementwise activations (rounded up; gelu covers its tanh approximation).
ACTIVATION_LIPSCHITZ = {
    "relu": 1.0,
    "relu6": 1.0,
    "tanh": 1.0,
    "sigmoid": 0.25,
    "hardsigmoid": 1 / 6,
    "softplus": 1.0,
    "hardswish": 1.5,
    "gelu": 1.13,
    "silu": 1.1,
    "mish": 1.09,
    "softmax": 1.0,
}
#: Default work budget of one computation of :func:`lipschitz_bound` (a conv's circulant
#: bound, the lower bound's power iteration): about ten minutes of one core.
LIPSCHITZ_MAX_FLOPS = 2**40
#: Most power-iteration steps of the lower bound.
MAX_POWER_ITERATIONS = 10_000
_PASS_THROUGH = ("input", "flatten", "identity", "dropout", "crop")


@dataclass(frozen=True)
class NodeLipschitz:
    """One node: its own constant (``layer``), the bound from the input (``bound``), how."""

    node: str
    kind: str
    layer: float | None
    bound: float
    how: str


@dataclass(frozen=True)
class LipschitzBound:
    """Certified upper bound, per node and for the output, and the power-iteration lower bound.

    ``upper`` bounds ``||f(x) - f(y)|| / ||x - y||`` for every ``x, y`` (eval mode); ``lower``
    is ``||J v||`` at one point (a true lower bound on the constant), or ``None`` without a
    torch model. ``gap = upper / lower``.
    """

    upper: float
    lower: float | None
    nodes: tuple[NodeLipschitz, ...]
    outputs: tuple[str, ...]

    @property
    def gap(self) -> float | None:
        return None if not self.lower else self.upper / self.lower

    def node(self, name: str) -> NodeLipschitz:
        for entry in self.nodes:
            if entry.node == name:
                return entry
        raise ConvAlgebraError(f"no node named {name!r} in the bound")

    def __repr__(self) -> str:
        lower = "" if self.lower is None else f", lower {self.lower:.6g} (gap {self.gap:.3g}x)"
        return short_repr(
            "LipschitzBound", f"upper {self.upper:.6g}{lower}, {len(self.nodes)} nodes"
        )

    def _repr_html_(self) -> str:
        rows = [
            {"node": e.node, "kind": e.kind, "layer": e.layer, "bound": e.bound, "how": e.how}
            for e in self.nodes
        ]
        items = {"upper bound": f"{self.upper:.6g}"}
        if self.lower is not None:
            items["lower bound (power iteration)"] = f"{self.lower:.6g}, gap {self.gap:.3g}x"
        table = html_table(
            rows,
            list(rows[0]) if rows else [],
            lambda v: f"{v:.6g}" if isinstance(v, float) else str(v),
        )
        return summary_html("LipschitzBound", items, table)

    def table(self) -> str:
        """One line per node: own constant, bound from the input, and how it was obtained."""
        width = max(len(e.node) for e in self.nodes)
        lines = [f"{'node'.ljust(width)}  {'layer':>10}  {'bound':>12}  how"]
        for e in self.nodes:
            own = "" if e.layer is None else f"{e.layer:.6g}"
            lines.append(f"{e.node.ljust(width)}  {own:>10}  {e.bound:12.6g}  {e.how}")
        lines.append(f"upper bound {self.upper:.6g}")
        if self.lower is not None:
            lines.append(f"lower bound {self.lower:.6g} (power iteration), gap {self.gap:.3g}x")
        return "\n".join(lines)


# ------------------------------------------------------------------------ layer constants
def _conv(spec: ConvSpec, params: Mapping[str, Any], max_flops: int) -> tuple[float, str]:
    """The proven upper end of the layer's norm: exact by the DFT when circular and tiling,
    else the best guaranteed bound; the circulant is skipped above ``max_flops``."""
    weight = params.get("weight")
    if weight is None:
        raise ConvAlgebraError(f"no weight for {spec.describe()}")
    bounds = upper_bounds(spec, weight, max_flops=max_flops, over_budget="skip")
    best = min(bounds, key=lambda b: b.value)
    if best.name == "circulant" and fft_applies(spec):
        return best.value, "conv, exact (DFT)"
    skipped = "" if bounds[0].name == "circulant" else " (the circulant is over max_flops)"
    return best.value, f"conv, {best.name} bound{skipped}"


def _linear(params: Mapping[str, Any]) -> tuple[float, str]:
    weight = np.asarray(params["weight"], dtype=np.float64)
    if not np.isfinite(weight).all():
        raise ConvAlgebraError("linear weight must be finite, got inf or nan entries")
    # the SVD errs by a small multiple of (rows + cols) eps relative: rounded upwards
    margin = 64 * np.finfo(np.float64).eps * (sum(weight.shape) + 8)
    return float(np.linalg.norm(weight, 2)) * (1 + margin), "linear, exact (rounded up)"


def _batch_norm(layer: Any, params: Mapping[str, Any]) -> tuple[float, str]:
    if "running_var" not in params:
        raise ConvAlgebraError(
            "batch norm without running statistics uses batch statistics "
            "even in eval mode: no Lipschitz constant"
        )
    scale = 1 / np.sqrt(np.asarray(params["running_var"], dtype=np.float64) + layer.eps)
    if params.get("weight") is not None:
        scale = scale * np.asarray(params["weight"], dtype=np.float64)
    return float(np.abs(scale).max()), "batch norm (eval), max |gamma| / sqrt(var + eps)"


def _activation(layer: Any, params: Mapping[str, Any]) -> tuple[float, str]:
    fn = layer.fn
    if fn == "leaky_relu":
        return max(1.0, abs(float(params.get("negative_slope", 0.01)))), "leaky_relu"
    if fn == "elu":
        return max(1.0, abs(float(params.get("alpha", 1.0)))), "elu"
    if fn not in ACTIVATION_LIPSCHITZ:
        raise ConvAlgebraError(f"no Lipschitz constant for the activation {fn!r}")
    return ACTIVATION_LIPSCHITZ[fn], f"{fn}, sup |f'|"


def _window_counts(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """Most pooling windows that contain one input position, along one axis."""
    out = pool_output_size(size, k, s, p, d, ceil)
    extra = max(0, (out - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
    one = ConvSpec((1, size), 1, k, stride=s, padding=((p, p + extra),), dilation=d)
    read = axis_table(one, 0)
    return int(np.bincount(read[read >= 0], minlength=size).max())


def _pool_axes(layer: Any, shape: tuple[int, ...]) -> list[tuple[int, int, int, int, int]]:
    n = len(shape) - 1
    k = _per_axis(layer.kernel_size, n)
    s = k if layer.stride is None else _per_axis(layer.stride, n)
    p, d = _per_axis(layer.padding, n), _per_axis(layer.dilation, n)
    return list(zip(shape[1:], k, s, p, d, strict=True))


def _per_axis(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n


def _max_pool(layer: Any, shape: tuple[int, ...]) -> tuple[float, str]:
    counts = [
        _window_counts(size, k, s, p, d, layer.ceil_mode)
        for size, k, s, p, d in _pool_axes(layer, shape)
    ]
    return math.sqrt(math.prod(counts)), "max pool, sqrt(most windows per input)"


def _avg_pool(layer: Any, shape: tuple[int, ...], params: Mapping[str, Any]) -> tuple[float, str]:
    norm = 1.0
    for size, k, s, p, _ in _pool_axes(layer, shape):
        m = avg_pool_matrix(
            (1, size),
            k,
            s,
            p,
            layer.ceil_mode,
            layer.count_include_pad,
            params.get("divisor_override"),
        )
        norm *= float(np.linalg.norm(m.toarray(), 2))
    if params.get("divisor_override") is not None:
        raise ConvAlgebraError("avg pool with divisor_override is not separable per axis")
    return norm, "avg pool, exact (product of per-axis norms)"


def _adaptive(layer: Any, shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[float, str]:
    norm = 1.0
    for n, m in zip(shape[1:], out[1:], strict=True):
        i = np.arange(m)
        start, stop = (i * n) // m, -((-(i + 1) * n) // m)  # PyTorch's adaptive windows
        cover = (np.arange(n)[None, :] >= start[:, None]) & (np.arange(n)[None, :] < stop[:, None])
        if layer.op == "max":
            norm *= math.sqrt(int(cover.sum(axis=0).max()))
        else:
            norm *= float(np.linalg.norm(cover / cover.sum(axis=1, keepdims=True), 2))
    return norm, f"adaptive {layer.op} pool, per-axis"


def _pad(layer: Any, shape: tuple[int, ...]) -> tuple[float, str]:
    if layer.mode in ("constant", "zeros"):
        return 1.0, "constant pad (embedding or crop)"
    pairs = _pairs(layer.padding, len(shape) - 1)
    spec = ConvSpec((1, *shape[1:]), 1, 1, padding=pairs, padding_mode=layer.mode)
    return padding_norm(spec), f"{layer.mode} pad, sqrt(most copies)"


def _pairs(value: Any, n: int) -> tuple[tuple[int, int], ...]:
    if isinstance(value, int):
        return ((value, value),) * n
    return tuple((v, v) if isinstance(v, int) else (int(v[0]), int(v[1])) for v in value)


def _upsample(layer: Any, shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[float, str]:
    if layer.mode != "nearest" or any(o % n for n, o in zip(shape[1:], out[1:], strict=True)):
        raise ConvAlgebraError(
            "only nearest upsampling by integer factors has a bound here, "
            f"got mode={layer.mode!r} from {shape} to {out}"
        )
    return math.sqrt(
        math.prod(o // n for n, o in zip(shape[1:], out[1:], strict=True))
    ), "nearest upsample, sqrt(copies)"


def _mean(shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[float, str]:
    return 1 / math.sqrt(math.prod(shape) // math.prod(out)), "mean, 1/sqrt(count)"


def _layer_constant(
    graph: LayerGraph, node: str, params: Mapping[str, Any], max_flops: int
) -> tuple[float, str]:
    layer = graph.layer(node)
    kind = layer.kind
    facts = graph.facts(node)
    srcs = graph.nx.nodes[node]["inputs"]
    shape = graph.shape(srcs[0]) if srcs else facts.shape
    if kind in _PASS_THROUGH:
        return 1.0, kind
    handlers: dict[str, Callable[[], tuple[float, str]]] = {
        "conv": lambda: _conv(facts.spec, params, max_flops),  # type: ignore[arg-type]
        "linear": lambda: _linear(params),
        "batch_norm": lambda: _batch_norm(layer, params),
        "activation": lambda: _activation(layer, params),
        "max_pool": lambda: _max_pool(layer, shape),
        "avg_pool": lambda: _avg_pool(layer, shape, params),
        "adaptive_pool": lambda: _adaptive(layer, shape, facts.shape),
        "pad": lambda: _pad(layer, shape),
        "upsample": lambda: _upsample(layer, shape, facts.shape),
        "mean": lambda: _mean(shape, facts.shape),
    }
    if kind not in handlers:
        raise ConvAlgebraError(
            f"node {node!r} ({layer.describe()}) has no certified Lipschitz "
            "bound (supported: convolutions, linear, eval batch norm, "
            "pooling, padding, nearest upsampling, mean, sums, "
            "concatenations and the activations of ACTIVATION_LIPSCHITZ)"
        )
    try:
        return handlers[kind]()
    except KeyError as exc:
        raise ConvAlgebraError(f"node {node!r} ({kind}): missing parameter {exc}") from None


# ------------------------------------------------------------------------------ composition
def _compose(
    graph: LayerGraph,
    params_of: Callable[[str], Mapping[str, Any]],
    max_flops: int,
    callback: Callable[[str, int, int], Any] | None,
) -> tuple[NodeLipschitz, ...]:
    bounds: dict[str, float] = {}
    entries = []
    for step, node in enumerate(graph.nodes, 1):
        srcs = graph.nx.nodes[node]["inputs"]
        kind = graph.layer(node).kind
        if kind == "input":
            own, bound, how = None, 1.0, "input"
        elif kind == "add":
            own, bound, how = None, sum(bounds[s] for s in srcs), "sum: bounds add"
        elif kind == "concat":
            own, bound = None, math.sqrt(sum(bounds[s] ** 2 for s in srcs))
            how = "concatenation: root of the sum of squares"
        else:
            own, how = _layer_constant(graph, node, params_of(node), max_flops)
            bound = own * bounds[srcs[0]]
        bounds[node] = bound
        entries.append(NodeLipschitz(node, kind, own, bound, how))
        if callback is not None:
            callback(node, step, len(graph.nodes))
    return tuple(entries)


def _torch_params(module: Any) -> Callable[[str], Mapping[str, Any]]:
    """Parameters, buffers and slopes of the submodule a node was imported from."""

    def params_of(node: str) -> Mapping[str, Any]:
        try:
            sub = module.get_submodule(node.split("#")[0])
        except AttributeError:
            return {}  # a functional node: no parameters
        out: dict[str, Any] = {
            k: v.detach().cpu().double().numpy()
            for k, v in sub.state_dict().items()
            if v.is_floating_point()
        }
        for name in ("negative_slope", "alpha", "divisor_override"):
            if hasattr(sub, name):
                out[name] = getattr(sub, name)
        return out

    return params_of


def _lower_budget(graph: LayerGraph, iterations: int, max_flops: int, max_bytes: int) -> None:
    """Refuse the power iteration over budget, from the graph's counts, before any pass.

    Each step is about three passes (``J v`` by the double-backward trick, then ``J^T``) over
    a graph that keeps every activation and its gradient in float64.
    """
    if iterations == 0:
        return
    way_out = "pass iterations=0 to skip the lower bound (the upper bound does not need it)"
    flops = 2.0 * graph.macs() * (2 + 3 * iterations)
    require_work(f"the lower bound ({iterations} power steps)", flops, max_flops, way_out)
    activations = sum(math.prod(graph.shape(node)) for node in graph.nodes)
    require_memory("the lower bound's power iteration", activations * 8 * 6, max_bytes, way_out)


def _power_iteration(
    module: Any,
    input_shape: tuple[int, ...],
    iterations: int,
    seed: int,
    tol: float,
    callback: Callable[[str, int, int], Any] | None,
) -> float:
    """``||J v||`` after power iteration on ``J^T J`` at a random point (float64, eval).

    Stops early once ``||J v||`` changes by less than ``tol`` (relative) between two steps;
    every value is a lower bound on the Lipschitz constant, the last one the best.
    """
    import copy

    torch = require("torch", "torch")
    model = copy.deepcopy(module).double().eval()
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn((1, *input_shape), generator=gen, dtype=torch.float64)
    v = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x0.requires_grad_(True)
    y = model(x0)
    # J^T u is linear in u: differentiating it once more gives J v (the double-backward trick)
    u = torch.zeros_like(y, requires_grad=True)
    (jt_u,) = torch.autograd.grad(y, x0, u, create_graph=True)
    norm = 0.0
    for step in range(1, iterations + 1):
        v = v / v.norm()
        (jv,) = torch.autograd.grad(jt_u, u, v, retain_graph=True)
        previous, norm = norm, max(norm, float(jv.norm()))
        if callback is not None:
            callback("power iteration", step, iterations)
        (v,) = torch.autograd.grad(y, x0, jv, retain_graph=True)
        if not float(v.norm()) > 0 or norm - previous <= tol * norm:
            break
    return norm


def lipschitz_bound(
    graph_or_module: Any,
    input_shape: Any = None,
    *,
    weights: Mapping[str, Mapping[str, Any]] | None = None,
    iterations: int = 50,
    seed: int = 0,
    tol: float = 1e-3,
    max_flops: int = LIPSCHITZ_MAX_FLOPS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    callback: Callable[[str, int, int], Any] | None = None,
) -> LipschitzBound:
    """A certified upper bound on a network's Lipschitz constant (Euclidean norms, eval mode).

    Parameters
    ----------
    graph_or_module : LayerGraph or torch.nn.Module
        A module is imported with :func:`~convalgebra.interop.torch.from_torch` and its actual
        weights read from the submodule each node came from.
    input_shape : tuple of int
        ``(C, *spatial)``; required for a module.
    weights : mapping, optional
        For a ``LayerGraph``: node name -> ``{"weight": ..., "running_var": ..., ...}``
        (torch's state-dict names).
    iterations, seed : int
        Power iteration for the lower bound (torch modules only): at most ``iterations``
        steps (0 skips it; at most 10,000), from a random point drawn with ``seed``.
    tol : float, default 1e-3
        The power iteration stops once its value changes by less than this (relative).
    max_flops : int, default 2**40
        Per computation: a convolution's circulant bound above this estimated work is left
        out (its taps bound is used, and the table says so); a lower bound above it is
        refused before it starts.
    max_bytes : int, default 8 GiB
        The lower bound's power iteration keeps every activation: refused above this.
    callback : callable, optional
        ``callback(what, done, total)`` after each node and each power step (progress).

    Returns
    -------
    LipschitzBound
        ``upper`` (root of the sum of squares over several outputs), ``lower`` (power
        iteration through the linearised network at a random point, or ``None``), per node.

    Raises
    ------
    ConvAlgebraError
        A node without a certified constant (e.g. layer norm, products), missing weights,
        weights that are not finite, a lower bound over ``max_flops`` or ``max_bytes``.

    Notes
    -----
    ``L(node) = c(node) L(input)`` for a layer with constant ``c``, ``sum L(inputs)`` for a sum,
    ``sqrt(sum L(inputs)^2)`` for a concatenation; ``c`` is the proven upper end of ``||M||_2``
    for linear maps (exact by the DFT for circular layers that tile, else the smallest
    guaranteed bound of :func:`~convalgebra.spectra.upper_bounds`, all in float64 rounded
    upwards), ``sup |f'|`` for activations and ``sqrt(max windows per input)`` for max pooling.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.MaxPool2d(2), torch.nn.Flatten(),
    ...                           torch.nn.Linear(64, 3))
    >>> b = lipschitz_bound(net, (2, 8, 8))
    >>> b.lower <= b.upper
    True
    """
    iterations = check_iterations("iterations", iterations, MAX_POWER_ITERATIONS)
    max_flops, max_bytes = check_limit("max_flops", max_flops), check_limit("max_bytes", max_bytes)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise ConvAlgebraError(f"tol must be a real number in [0, 1), got {shown(tol)}")
    if isinstance(graph_or_module, LayerGraph):
        if input_shape is not None:
            raise ConvAlgebraError("input_shape is given by the LayerGraph itself; pass None")
        table = dict(weights or {})
        nodes = _compose(graph_or_module, lambda node: table.get(node, {}), max_flops, callback)
        return _result(graph_or_module, nodes, None)
    if not hasattr(graph_or_module, "state_dict"):
        raise TypeError(
            "graph_or_module must be a LayerGraph or a torch.nn.Module, got "
            f"{type(graph_or_module).__name__}"
        )
    if input_shape is None:
        raise ConvAlgebraError("input_shape (C, *spatial) is needed to import a torch module")
    from .interop.torch import from_torch

    graph = from_torch(graph_or_module, input_shape)
    single = len(graph.inputs) == 1 and len(graph.outputs) == 1
    if single:
        _lower_budget(graph, iterations, max_flops, max_bytes)
    nodes = _compose(graph, _torch_params(graph_or_module), max_flops, callback)
    lower = None
    if single and iterations > 0:
        shape = tuple(input_shape)
        lower = _power_iteration(graph_or_module, shape, iterations, seed, tol, callback)
    return _result(graph, nodes, lower)


def _result(
    graph: LayerGraph, nodes: tuple[NodeLipschitz, ...], lower: float | None
) -> LipschitzBound:
    by_name = {e.node: e.bound for e in nodes}
    outputs = tuple(graph.outputs)
    upper = math.sqrt(sum(by_name[o] ** 2 for o in outputs))
    return LipschitzBound(upper, lower, nodes, outputs)
