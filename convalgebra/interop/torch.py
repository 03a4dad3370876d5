"""Import a ``torch.nn.Module`` into a :class:`~convalgebra.graph.LayerGraph` via ``torch.fx``.

The module is traced symbolically (``torch.fx.symbolic_trace``); each call of a module or of a
common functional becomes a node of the graph, named after the module's qualified name (a
module called twice shares its parameters, counted once) or after the fx node. Shapes are
computed by convalgebra and cross-checked against torch's own shape propagation on fake
tensors (no arithmetic is run). Parameters are keyed by their name in the module, so tied
parameters are counted once. An operation that cannot be interpreted becomes an *opaque*
node (its torch shape and parameters kept, its receptive field treated as global, flagged
in the table) when shapes are known, and an error naming the op and the node otherwise.

torch is imported only when :func:`from_torch` is called.
"""

from __future__ import annotations

from collections import Counter

from typing import Any, Sequence

from ..errors import ConvAlgebraError, require, shown
from ..graph import LayerGraph
from ..layers import (Activation, AdaptivePool, Add, AvgPool, BatchNorm, Concat, Conv, Dropout,
                      Flatten, GroupNorm, Identity, Layer, LayerNorm, Linear, MaxPool, Mean, Mul,
                      Opaque, Pad, Upsample)

__all__ = ["from_torch"]

_ACTS = {"ReLU": "relu", "ReLU6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "GELU": "gelu",
         "SiLU": "silu", "Hardswish": "hardswish", "Hardsigmoid": "hardsigmoid",
         "LeakyReLU": "leaky_relu", "ELU": "elu", "Softplus": "softplus", "Mish": "mish"}
_IDENTITY_METHODS = {"contiguous", "clone", "detach", "float", "double", "to", "type_as"}
_FN_ARGS = {  # positional parameter names of the functionals interpreted (after the input)
    "max_pool": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                 "divisor_override"),
    "adaptive": ("output_size",),
    "flatten": ("start_dim", "end_dim"),
    "interpolate": ("size", "scale_factor", "mode", "align_corners"),
    "pad": ("pad", "mode", "value"),
    "softmax": ("dim",),
    "mean": ("dim", "keepdim"),
}


def from_torch(module: Any, input_shape: Sequence[int] | Sequence[Sequence[int]], *,
               name: str | None = None) -> LayerGraph:
    """Import ``module`` for inputs of ``input_shape`` (``(C, *spatial)``, no batch axis).

    Parameters
    ----------
    module : torch.nn.Module
        Traced with ``torch.fx.symbolic_trace`` (data-dependent control flow is not traceable).
    input_shape : tuple of int, or a list of them (one per ``forward`` argument)

    Returns
    -------
    LayerGraph
        ``param_count(graph) == sum(p.numel() for p in module.parameters())`` when every
        parameter is used in the forward pass; unused ones are listed by
        ``graph.unused_parameters()`` and under the totals of ``graph.table()``.

    Raises
    ------
    ConvAlgebraError
        The module cannot be traced, or an op cannot be interpreted and has no tensor shape.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(8, 10))
    >>> g = from_torch(net, (3, 32, 32))
    >>> g.param_count() == sum(p.numel() for p in net.parameters())
    True
    >>> g.receptive_field("2")[0].is_global
    True
    """
    torch = require("torch", "torch")
    shapes = _input_shapes(input_shape)
    gm = _trace(torch, module)
    _propagate(torch, gm, module, shapes)
    return _Importer(torch, module, gm, shapes, name).run()


def _input_shapes(input_shape: Any) -> list[tuple[int, ...]]:
    if isinstance(input_shape, (tuple, list)) and input_shape and all(
            isinstance(v, (tuple, list)) for v in input_shape):
        return [tuple(s) for s in input_shape]
    return [tuple(input_shape)]


def _trace(torch: Any, module: Any) -> Any:
    try:
        return torch.fx.symbolic_trace(module)
    except Exception as exc:  # fx raises many kinds; report them as one
        raise ConvAlgebraError(f"torch.fx could not trace {type(module).__name__}: {exc}") from exc


def _propagate(torch: Any, gm: Any, module: Any, shapes: list) -> None:
    """Attach torch's output shapes (``node.meta['val']``) using fake tensors, in eval mode."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    training = {m: m.training for m in gm.modules()}
    tensors = [*module.parameters(), *module.buffers()]
    # match the module's device (meta-device modules work) and floating dtype
    device = tensors[0].device if tensors else "cpu"
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    gm.eval()
    try:
        FakeTensorProp(gm, FakeTensorMode(allow_non_fake_inputs=True)).propagate(
            *(torch.empty((1, *s), device=device, dtype=dtype) for s in shapes))
    except Exception as exc:
        raise ConvAlgebraError(f"torch could not run {type(module).__name__} on inputs "
                               f"{shapes}: {exc}") from exc
    finally:
        for m, flag in training.items():
            m.training = flag


class _Importer:
    def __init__(self, torch: Any, module: Any, gm: Any, shapes: list, name: str | None):
        self.torch, self.module, self.gm, self.shapes = torch, module, gm, shapes
        self.graph = LayerGraph(name or type(module).__name__)
        self.names: dict[Any, str] = {}
        self.calls: dict[str, int] = {}
        self.keys = {id(p): n for n, p in module.named_parameters()}
        self.keys.update({id(b): n for n, b in module.named_buffers()})
        self.used: set[str] = set()
        self.pending: dict[Any, list[str]] = {}
        calls = Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_module")
        # a module called more than once shares its parameters under its own name
        self.reused = {t for t, count in calls.items() if count > 1}

    def run(self) -> LayerGraph:
        inputs = iter(self.shapes)
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                shape = next(inputs, None)
                if shape is None:
                    raise ConvAlgebraError(f"forward takes more inputs than the "
                                           f"{len(self.shapes)} shape(s) given")
                self.names[node] = self.graph.add_input(node.name, shape)
            elif node.op in ("call_module", "call_function", "call_method", "get_attr"):
                self._convert(node)
        unused = {n: p.numel() for n, p in self.module.named_parameters() if n not in self.used}
        self.graph.nx.graph["unused_parameters"] = sorted(unused)
        self.graph.nx.graph["unused_parameter_sizes"] = dict(sorted(unused.items()))
        return self.graph

    # ------------------------------------------------------------------ nodes
    def _convert(self, node: Any) -> None:
        val = node.meta.get("val")
        srcs = []
        for a in node.all_input_nodes:  # ops returning several tensors pass their inputs on
            srcs += self.pending.get(a, [self.names[a]] if a in self.names else [])
        if not isinstance(val, self.torch.Tensor):
            if isinstance(val, (tuple, list)) and any(isinstance(v, self.torch.Tensor) for v in val):
                self.pending[node] = srcs
            return  # sizes, shape tuples, indices: not data flow
        try:
            layer, keys, share = self._interpret(node, srcs)
        except _Unknown as exc:
            layer, keys, share = self._opaque(node, str(exc))
        name = self._name(node)
        self.graph.add(name, layer, srcs, share=share, param_keys=keys)
        self.names[node] = name
        theirs = tuple(val.shape[1:])
        ours = self.graph.shape(name)
        if ours != theirs:
            raise ConvAlgebraError(f"node {shown(name)} ({node.op} {node.target}): convalgebra "
                                   f"computes shape {ours}, torch {theirs}")

    def _name(self, node: Any) -> str:
        base = str(node.target) if node.op == "call_module" else node.name
        count = self.calls.get(base, 0)
        self.calls[base] = count + 1
        return base if count == 0 else f"{base}#{count + 1}"

    def _interpret(self, node: Any, srcs: list[str]) -> tuple[Layer, dict | None, str | None]:
        if node.op == "call_module":
            sub = self.gm.get_submodule(node.target)
            layer = _module_layer(sub)
            if layer is None:
                raise _Unknown(f"module {type(sub).__name__}")
            keys = self._keys(sub, recurse=False)
            return layer, keys, self._share(node)
        if node.op == "get_attr":
            raise _Unknown(f"get_attr {node.target}")
        return self._function(node, srcs), None, None

    def _share(self, node: Any) -> str | None:
        return str(node.target) if str(node.target) in self.reused else None

    def _keys(self, sub: Any, recurse: bool) -> dict[str, str]:
        keys = {}
        for pname, p in (*sub.named_parameters(recurse=recurse), *sub.named_buffers(recurse=recurse)):
            keys[pname] = self.keys.get(id(p), pname)
            self.used.add(keys[pname])
        return keys

    def _opaque(self, node: Any, op: str) -> tuple[Layer, dict | None, str | None]:
        params, buffers, keys, share = (), (), None, None
        owner = None
        if node.op == "call_module":
            owner, share = self.gm.get_submodule(node.target), self._share(node)
        elif node.op == "get_attr":
            tensor = self.gm.get_parameter(node.target) if node.target in dict(
                self.gm.named_parameters()) else None
            if tensor is not None:
                key = self.keys.get(id(tensor), node.target)
                self.used.add(key)
                params, keys = (("value", tensor.numel()),), {"value": key}
        if owner is not None:
            keys = self._keys(owner, recurse=True)
            params = tuple((n, p.numel()) for n, p in owner.named_parameters())
            buffers = tuple((n, b.numel()) for n, b in owner.named_buffers())
        shape = tuple(node.meta["val"].shape[1:])
        return Opaque(op=op, shape=shape, params=params, buffers=buffers), keys, share

    def _function(self, node: Any, srcs: list[str]) -> Layer:
        # values computed from shapes (x.size(2), y.shape[2:]) replaced by what torch found
        args, kwargs = self.torch.fx.node.map_arg((node.args[1:], dict(node.kwargs)), _concrete)
        target = node.target
        fname = target if isinstance(target, str) else getattr(target, "__name__", str(target))
        if fname in _ACTS.values() or fname in ("relu_", "sigmoid_", "hardtanh"):
            return Activation("relu6" if fname == "hardtanh" else fname.rstrip("_"))
        if fname in ("softmax", "log_softmax"):
            dim = _bind(args, kwargs, _FN_ARGS["softmax"])["dim"]
            return Activation(fname, _unbatch(dim))
        if fname in ("add", "iadd", "mul", "imul", "sub", "truediv"):
            return _arithmetic(node, fname)
        if fname == "cat":
            dim = (node.args[1] if len(node.args) > 1 else kwargs.get("dim", 0))
            return Concat(_unbatch(dim))
        if fname.startswith(("max_pool", "avg_pool", "adaptive_")):
            return _pool_function(fname, _bind(args, kwargs, _FN_ARGS[
                "adaptive" if fname.startswith("adaptive") else fname[:8]]))
        if fname in ("flatten", "view", "reshape"):
            return self._reshape(node, fname, args, kwargs)
        if fname == "mean":
            b = _bind(args, kwargs, _FN_ARGS["mean"])
            dims = b.get("dim")
            if dims is None:
                raise _Unknown("mean over every axis")
            dims = (dims,) if isinstance(dims, int) else tuple(dims)
            return Mean(tuple(_unbatch(d) for d in dims), bool(b.get("keepdim", False)))
        if fname == "interpolate":
            b = _bind(args, kwargs, _FN_ARGS["interpolate"])
            return Upsample(b.get("scale_factor"), b.get("size"), b.get("mode", "nearest"),
                            bool(b.get("align_corners") or False))
        if fname == "pad":
            b = _bind(args, kwargs, _FN_ARGS["pad"])
            return Pad(_pad_pairs(b["pad"]), b.get("mode", "constant"), b.get("value") or 0.0)
        if fname in ("dropout", "dropout2d", "dropout1d", "dropout3d", "alpha_dropout"):
            return Dropout()
        if fname in _IDENTITY_METHODS:
            return Identity()
        raise _Unknown(f"function {fname}")

    def _reshape(self, node: Any, fname: str, args: tuple, kwargs: dict) -> Layer:
        if fname == "flatten":
            b = _bind(args, kwargs, _FN_ARGS["flatten"])
            start = b.get("start_dim", 0)
            if start == 0:
                raise _Unknown("flatten over the batch axis")
            return Flatten(_unbatch(start), _unbatch(b.get("end_dim", -1)))
        out = tuple(node.meta["val"].shape)
        src = tuple(node.args[0].meta["val"].shape)
        if len(out) == 2 and out[0] == src[0]:
            return Flatten()
        raise _Unknown(f"{fname} to {out[1:]}")


def _concrete(arg: Any) -> Any:
    val = arg.meta.get("val")
    return arg if val is None or hasattr(val, "dtype") else val


def _arithmetic(node: Any, fname: str) -> Layer:
    tensors = [a for a in node.args if hasattr(a, "op") and hasattr(a.meta.get("val"), "dtype")]
    if len(tensors) < 2:
        return Activation("scale")  # a tensor and a number: elementwise, local
    if fname in ("add", "iadd"):
        return Add()
    if fname in ("mul", "imul"):
        return Mul()
    raise _Unknown(fname)


class _Unknown(Exception):
    """An op outside the interpreted set (becomes an opaque node)."""


def _unbatch(dim: int) -> int:
    """A dim of the batched tensor as a dim of the unbatched shape."""
    if not isinstance(dim, int):
        raise _Unknown(f"dim {shown(dim)}")
    if dim == 0:
        raise _Unknown("an op over the batch axis")
    return dim - 1 if dim > 0 else dim


def _bind(args: tuple, kwargs: dict, names: tuple[str, ...]) -> dict:
    bound = dict(zip(names, args))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    return bound


def _pad_pairs(pad: Sequence[int]) -> tuple[tuple[int, int], ...]:
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    return tuple(reversed(pairs))


def _pool_function(fname: str, b: dict) -> Layer:
    if fname.startswith("adaptive"):
        return AdaptivePool(_tuple(b["output_size"]), "max" if "max" in fname else "avg")
    common = dict(kernel_size=_tuple(b["kernel_size"]),
                  stride=_tuple(b.get("stride")) or None,
                  padding=_tuple(b.get("padding", 0)), ceil_mode=bool(b.get("ceil_mode", False)))
    if fname.startswith("max"):
        return MaxPool(dilation=_tuple(b.get("dilation", 1)), **common)
    return AvgPool(count_include_pad=bool(b.get("count_include_pad", True)), **common)


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _module_layer(m: Any) -> Layer | None:
    """The layer kind of a torch module, or None when it is not interpreted."""
    kind = type(m).__name__
    if kind.startswith("ConvTranspose") or kind.startswith("Conv") and kind[4:] in ("1d", "2d", "3d"):
        transposed = kind.startswith("ConvTranspose")
        return Conv(m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                    m.bias is not None, m.padding_mode, transposed,
                    m.output_padding if transposed else 0)
    if kind == "Linear":
        return Linear(m.out_features, m.bias is not None)
    if kind.startswith("BatchNorm"):
        return BatchNorm(m.affine, m.track_running_stats, m.eps)
    if kind == "LayerNorm":
        return LayerNorm(tuple(m.normalized_shape), m.elementwise_affine,
                         getattr(m, "bias", None) is not None)
    if kind == "GroupNorm":
        return GroupNorm(m.num_groups, m.affine)
    if kind in _ACTS:
        return Activation(_ACTS[kind])
    if kind in ("Softmax", "LogSoftmax"):
        return Activation("softmax" if kind == "Softmax" else "log_softmax", _unbatch(m.dim))
    if kind.startswith(("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool")):
        return _pool_module(kind, m)
    if kind.startswith("Dropout") or kind == "AlphaDropout":
        return Dropout(m.p)
    if kind == "Identity":
        return Identity()
    if kind == "Flatten":
        return Flatten(_unbatch(m.start_dim), _unbatch(m.end_dim)) if m.start_dim else None
    if kind.startswith("Upsampl"):
        mode = "bilinear" if kind == "UpsamplingBilinear2d" else m.mode
        align = True if kind == "UpsamplingBilinear2d" else bool(m.align_corners)
        return Upsample(_tuple(m.scale_factor), _tuple(m.size), mode, align)
    if kind.endswith(("Pad1d", "Pad2d", "Pad3d")):
        mode = {"Reflection": "reflect", "Replication": "replicate", "Circular": "circular"}
        word = next((v for k, v in mode.items() if kind.startswith(k)), "constant")
        return Pad(_pad_pairs(m.padding), word, float(getattr(m, "value", 0.0)))
    return None


def _pool_module(kind: str, m: Any) -> Layer:
    if kind.startswith("Adaptive"):
        return AdaptivePool(_tuple(m.output_size), "max" if "Max" in kind else "avg")
    common = dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                  ceil_mode=m.ceil_mode)
    if kind.startswith("Max"):
        return MaxPool(dilation=m.dilation, **common)
    return AvgPool(count_include_pad=m.count_include_pad, **common)
