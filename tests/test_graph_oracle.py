"""A torch executor for LayerGraphs: the independent oracle of the graph tests.

``TorchGraph(graph)`` runs a LayerGraph with PyTorch's own modules and functionals, so that

- every node's output shape can be compared with the graph's shape arithmetic;
- ``sum(p.numel())`` of its modules can be compared with ``param_count``;
- ``torch.utils.flop_counter`` can be compared with ``macs`` (FLOPs = 2 MACs);
- in *oracle* mode (float64, weights 1/fan-in, max pooling replaced by average pooling over
  the same window, nonlinearities removed) the support of the input gradient of one output
  position is its receptive field, to compare with ``unit_receptive_field``.

Other graph test modules import it (``from test_graph_oracle import TorchGraph``).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the [torch] extra is not installed: pip install '.[test]'"
)
F = torch.nn.functional
nn = torch.nn

from convalgebra.network import layers as L  # noqa: E402
from convalgebra.network.graph import LayerGraph  # noqa: E402

__all__ = ["TorchGraph", "gradient_box", "gradient_boxes", "check_shapes", "flop_count"]

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _pads(pairs) -> list[int]:
    out: list[int] = []
    for before, after in reversed(pairs):
        out += [before, after]
    return out


def _conv_module(facts) -> nn.Module:
    spec = facts.spec
    nd = spec.ndim
    if spec.transposed:
        cls = getattr(nn, f"ConvTranspose{nd}d")
        return cls(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            0,
            spec.output_padding,
            spec.groups,
            spec.bias,
            spec.dilation,
        )
    cls = getattr(nn, f"Conv{nd}d")
    return cls(
        spec.in_channels,
        spec.out_channels,
        spec.kernel_size,
        spec.stride,
        0,
        spec.dilation,
        spec.groups,
        spec.bias,
    )


class TorchGraph(nn.Module):
    """Execute a LayerGraph with torch (see the module docstring)."""

    def __init__(self, graph: LayerGraph, oracle: bool = False) -> None:
        super().__init__()
        self.graph, self.oracle = graph, oracle
        if oracle:  # skip torch's random initialisation: the weights are overwritten
            with torch.device("meta"):
                self._build(graph)
            self.to_empty(device="cpu")
            self.double()
            self._oracle_weights()
            self.requires_grad_(False)  # only the input gradient is needed
        else:
            self._build(graph)

    def _build(self, graph: LayerGraph) -> None:
        self.mods = nn.ModuleDict()
        shared: dict[str, nn.Module] = {}
        for node in graph.nodes:
            layer, facts = graph.layer(node), graph.facts(node)
            share = graph.nx.nodes[node]["share"]
            module = shared.get(share) if share else None
            if module is None:
                module = self._module(
                    layer,
                    facts,
                    graph.shape(graph.nx.nodes[node]["inputs"][0])
                    if graph.nx.nodes[node]["inputs"]
                    else None,
                )
            if share:
                shared[share] = module
            if module is not None:
                self.mods[node.replace(".", "_")] = module

    def _module(self, layer, facts, in_shape):
        if isinstance(layer, L.Conv):
            return _conv_module(facts)
        if isinstance(layer, L.Linear):
            return nn.Linear(in_shape[-1], layer.out_features, layer.bias)
        if isinstance(layer, L.BatchNorm):
            nd = max(len(in_shape) - 1, 1)
            return getattr(nn, f"BatchNorm{nd}d")(
                in_shape[0], affine=layer.affine, track_running_stats=layer.track_running_stats
            )
        if isinstance(layer, L.LayerNorm):
            norm = layer.normalized_shape or in_shape[-1:]
            return nn.LayerNorm(norm, elementwise_affine=layer.elementwise_affine, bias=layer.bias)
        if isinstance(layer, L.GroupNorm):
            return nn.GroupNorm(layer.num_groups, in_shape[0], affine=layer.affine)
        if isinstance(layer, L.SqueezeExcite):
            nd = len(in_shape) - 1
            conv = getattr(nn, f"Conv{nd}d")
            return nn.ModuleDict(
                {
                    "fc1": conv(in_shape[0], layer.squeeze_channels, 1),
                    "fc2": conv(layer.squeeze_channels, in_shape[0], 1),
                }
            )
        return None

    def _oracle_weights(self) -> None:
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
                    w = module.weight
                    fan_in = (
                        w[0].numel()
                        if not isinstance(module, nn.modules.conv._ConvTransposeNd)
                        else w.shape[0] // module.groups * int(np.prod(w.shape[2:]))
                    )
                    w.fill_(1.0 / fan_in)
                    if module.bias is not None:
                        module.bias.zero_()
                elif hasattr(module, "reset_parameters") and module is not self:
                    module.reset_parameters()  # normalisation layers: weight 1, bias 0
                if hasattr(module, "reset_running_stats"):
                    module.reset_running_stats()

    # ------------------------------------------------------------------ running
    def forward(self, *xs):
        values = dict(zip(self.graph.inputs, xs))
        for node in self.graph.nodes:
            srcs = self.graph.nx.nodes[node]["inputs"]
            if srcs:
                values[node] = self._run(node, [values[s] for s in srcs])
                if self.oracle:  # keep every value positive: a product's factors never vanish
                    values[node] = values[node] + 1.0
        return values

    def _run(self, node, xs):
        layer, facts = self.graph.layer(node), self.graph.facts(node)
        module = self.mods[node.replace(".", "_")] if node.replace(".", "_") in self.mods else None
        x = xs[0]
        nd = x.dim() - 2
        if isinstance(layer, L.Conv):
            spec = facts.spec
            if spec.transposed:
                y = module(x)
                sl = [slice(None), slice(None)] + [
                    slice(b, y.shape[2 + a] - e) for a, (b, e) in enumerate(spec.padding)
                ]
                return y[tuple(sl)]
            mode = "constant" if spec.padding_mode == "zeros" else spec.padding_mode
            return module(F.pad(x, _pads(spec.padding), mode=mode))
        if isinstance(layer, (L.MaxPool, L.AvgPool)):
            return self._pool(layer, x, nd)
        if isinstance(layer, L.AdaptivePool):
            op = "avg" if self.oracle else layer.op
            return getattr(F, f"adaptive_{op}_pool{nd}d")(x, layer.output_size)
        if isinstance(layer, (L.Linear, L.BatchNorm, L.LayerNorm, L.GroupNorm)):
            if isinstance(layer, L.BatchNorm):
                module.eval()
            return module(x)
        if isinstance(layer, L.Flatten):
            end = layer.end_dim if layer.end_dim < 0 else layer.end_dim + 1
            return torch.flatten(x, layer.start_dim % (x.dim() - 1) + 1, end)
        if isinstance(layer, L.Activation):
            if self.oracle:
                return x
            fn = {"scale": lambda t: 0.5 * t}.get(layer.fn) or getattr(F, layer.fn)
            return fn(x, dim=layer.dim % (x.dim() - 1) + 1) if layer.dim is not None else fn(x)
        if isinstance(layer, (L.Dropout, L.Identity)):
            return x
        if isinstance(layer, L.Upsample):
            mode = _LINEAR_MODES[nd] if layer.mode != "nearest" else "nearest"
            kw = {"align_corners": layer.align_corners} if mode != "nearest" else {}
            return F.interpolate(
                x, size=layer.size, scale_factor=layer.scale_factor, mode=mode, **kw
            )
        if isinstance(layer, L.Pad):
            pairs = L._pairs(layer.padding, nd, "padding")
            mode = "constant" if layer.mode in ("constant", "zeros") else layer.mode
            return F.pad(x, _pads(pairs), mode=mode)
        if isinstance(layer, L.Crop):
            return x[
                (slice(None), slice(None))
                + tuple(
                    slice(m.taps[0], m.taps[0] + s) for m, s in zip(facts.maps[0], facts.shape[1:])
                )
            ]
        if isinstance(layer, L.Add):
            return sum(xs[1:], xs[0])
        if isinstance(layer, L.Mul):
            out = xs[0]
            for other in xs[1:]:
                out = out * other
            return out
        if isinstance(layer, L.Concat):
            return torch.cat(xs, dim=layer.dim % (x.dim() - 1) + 1)
        if isinstance(layer, L.SqueezeExcite):
            s = getattr(F, f"adaptive_avg_pool{nd}d")(x, 1)
            s = module["fc2"](F.relu(module["fc1"](s)))
            return x * torch.sigmoid(s)
        if isinstance(layer, L.Mean):
            dims = (layer.dims,) if isinstance(layer.dims, int) else layer.dims
            return x.mean([d % (x.dim() - 1) + 1 for d in dims], keepdim=layer.keepdim)
        raise AssertionError(f"no torch execution for {layer.kind}")

    def _pool(self, layer, x, nd):
        stride = layer.stride if layer.stride is not None else layer.kernel_size
        if isinstance(layer, L.MaxPool) and not self.oracle:
            return getattr(F, f"max_pool{nd}d")(
                x, layer.kernel_size, stride, layer.padding, layer.dilation, layer.ceil_mode
            )
        if isinstance(layer, L.MaxPool) and layer.dilation != 1:
            # average over the dilated window: a depthwise convolution with a positive kernel
            k = (
                (layer.kernel_size,) * nd
                if isinstance(layer.kernel_size, int)
                else layer.kernel_size
            )
            w = torch.ones((x.shape[1], 1, *k), dtype=x.dtype) / int(np.prod(k))
            conv = getattr(F, f"conv{nd}d")
            return conv(x, w, None, stride, layer.padding, layer.dilation, x.shape[1])
        count = getattr(layer, "count_include_pad", False)
        return getattr(F, f"avg_pool{nd}d")(
            x, layer.kernel_size, stride, layer.padding, layer.ceil_mode, count
        )

    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def buffer_count(self) -> int:
        return sum(b.numel() for b in self.buffers())


def _inputs(graph: LayerGraph, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    return [
        torch.rand((1, *graph.shape(i)), generator=gen, dtype=dtype) + 0.5 for i in graph.inputs
    ]


class _one_thread:
    """Run torch single-threaded inside (small tensors; avoids spin-waiting on a busy machine)."""

    def __enter__(self):
        self.saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


def gradient_boxes(graph: LayerGraph, queries) -> list:
    with _one_thread():
        return _gradient_boxes(graph, queries)


def _gradient_boxes(graph: LayerGraph, queries) -> list:
    """Bounding boxes of the input-gradient support of each ``(node, position)`` query.

    The support is taken over all channels of the node at that spatial position and over
    all graph inputs; ``None`` when the gradient vanishes everywhere.
    """
    model = TorchGraph(graph, oracle=True)
    xs = [x.requires_grad_() for x in _inputs(graph)]
    values = model(*xs)
    boxes = []
    for node, position in queries:
        for x in xs:
            x.grad = None
        index = (0, slice(None)) + tuple(position)
        values[node][index].sum().backward(retain_graph=True)
        grads = [x.grad[0].abs().sum(0).numpy() for x in xs if x.grad is not None]
        where = np.nonzero(sum(grads) > 0) if grads else ()
        boxes.append(
            tuple((int(w.min()), int(w.max())) for w in where) if grads and where[0].size else None
        )
    return boxes


def gradient_box(graph: LayerGraph, node: str, position) -> tuple | None:
    """Bounding box of the input-gradient support of ``node`` at ``position`` (all channels)."""
    return gradient_boxes(graph, [(node, position)])[0]


def check_shapes(graph: LayerGraph) -> None:
    """Every node's torch output shape equals the graph's."""
    model = TorchGraph(graph)
    with torch.no_grad(), _one_thread():
        values = model(*_inputs(graph, torch.float32))
    for node in graph.nodes:
        assert tuple(values[node].shape[1:]) == graph.shape(node), node


def flop_count(graph: LayerGraph) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model = TorchGraph(graph)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter, _one_thread():
        model(*_inputs(graph, torch.float32))
    return counter.get_total_flops()


# ---------------------------------------------------------------------- own tests
def _small_graph() -> LayerGraph:
    g = LayerGraph("small")
    g.add_input("x", (2, 9, 11))
    g.add("a", L.Conv(4, (3, 2), stride=2, padding=((1, 1), (1, 0))), "x")
    g.add("b", L.MaxPool(3, 2, padding=1, ceil_mode=True), "x")
    g.add("c", L.Conv(4, 1), "b")
    g.add("sum", L.Add(), ["a", "c"])
    return g


def test_executor_agrees_with_graph_shapes():
    check_shapes(_small_graph())


def test_executor_counts_parameters_like_torch():
    g = _small_graph()
    assert TorchGraph(g).param_count() == g.param_count() == 2 * 4 * 6 + 4 + 2 * 4 + 4


def test_gradient_box_of_a_corner_unit_is_clipped():
    g = _small_graph()
    assert gradient_box(g, "sum", (0, 0)) == ((0, 1), (0, 1))
    assert g.unit_receptive_field("sum", (0, 0)).box == ((0, 1), (0, 1))
