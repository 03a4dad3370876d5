"""Import a ``torch.nn.Module`` into a :class:`~convalgebra.network.graph.LayerGraph`.

The module is traced once (``torch.fx``, or ``torch.export`` at the given input shape when fx
cannot trace it), in eval mode, and every op is read with convalgebra's own shape rules: no
tensor arithmetic is run. Module calls, their functional forms (``F.conv2d``, ``F.linear``,
``F.batch_norm``...), arithmetic, reshapes, permutes, slices and splits all become layers
with the same facts (shape, receptive field, parameters, MACs). Parameters, buffers and
constants are never data: a layer reading one counts it (once, by its name in the module)
and takes its receptive field from its data inputs only. The spatial axes are followed
through reshapes and permutes (``LayerGraph.axes``), so channels-last blocks and channel
shuffles keep their fields.

An op outside that set is *unmodelled*: its shape (and MACs, from torch's flop counter) come
from running that op alone on meta or fake tensors, its receptive field is reported as
global, the node is flagged ``opaque`` and a warning names it; ``strict=True`` makes it an
error. torch is imported only when :func:`from_torch` is called.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from ..budget import require_array
from ..errors import ConvAlgebraError, require
from ..network.graph import LayerGraph
from ..network.layers import (
    ACTIVATIONS,
    Activation,
    AdaptivePool,
    Add,
    Attention,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dropout,
    Einsum,
    Flatten,
    GroupNorm,
    Identity,
    Layer,
    LayerNorm,
    Linear,
    MaxPool,
    Mean,
    Mul,
    Opaque,
    Pad,
    Parameter,
    Permute,
    Reshape,
    Select,
    Slice,
    Take,
    Upsample,
)

__all__ = ["from_torch", "UnmodelledOpWarning"]


class UnmodelledOpWarning(UserWarning):
    """An op of an imported module that convalgebra does not model (global field)."""


_ACTS = {
    "ReLU": "relu",
    "ReLU6": "relu6",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "GELU": "gelu",
    "SiLU": "silu",
    "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "Softplus": "softplus",
    "Mish": "mish",
    "Hardtanh": "relu6",
}
# the elementwise functions a layer kind models by name (softmax needs its dim, scale its factor)
_ACT_FNS = frozenset(ACTIVATIONS) - {"softmax", "log_softmax", "scale", "pointwise"}
_POINTWISE = {
    "hardtanh",
    "neg",
    "exp",
    "log",
    "abs",
    "sqrt",
    "rsqrt",
    "square",
    "erf",
    "clamp",
    "clamp_min",
    "clamp_max",
    "clip",
    "reciprocal",
    "sin",
    "cos",
    "sign",
    "logsigmoid",
    "selu",
    "celu",
    "prelu_scalar",
    "softsign",
    "tanhshrink",
    "threshold",
    "glu_",
    "pow",
    "exp2",
    "log1p",
    "expm1",
    "floor",
    "ceil",
    "round",
    "nan_to_num",
    "gelu_",
}
_ALIAS = {
    "contiguous",
    "clone",
    "detach",
    "float",
    "double",
    "half",
    "to",
    "type_as",
    "cpu",
    "requires_grad_",
    "alias",
    "_assert_tensor_metadata",
    "lift_fresh_copy",
}
_ARITH = {
    "add": "add",
    "iadd": "add",
    "sub": "add",
    "isub": "add",
    "rsub": "add",
    "mul": "mul",
    "imul": "mul",
    "truediv": "mul",
    "div": "mul",
    "itruediv": "mul",
    "floordiv": "mul",
    "maximum": "add",
    "minimum": "add",
    "pow": "mul",
}
_SIG = {  # positional parameter names after the input, as in torch.nn.functional
    "conv": ("weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv_transpose": (
        "weight",
        "bias",
        "stride",
        "padding",
        "output_padding",
        "groups",
        "dilation",
    ),
    "convolution": (
        "weight",
        "bias",
        "stride",
        "padding",
        "dilation",
        "transposed",
        "output_padding",
        "groups",
    ),
    "linear": ("weight", "bias"),
    "batch_norm": ("running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
    "aten.batch_norm": ("weight", "bias", "running_mean", "running_var", "training"),
    "layer_norm": ("normalized_shape", "weight", "bias", "eps"),
    "group_norm": ("num_groups", "weight", "bias", "eps"),
    "instance_norm": ("running_mean", "running_var", "weight", "bias", "use_input_stats"),
    "aten.instance_norm": ("weight", "bias", "running_mean", "running_var", "use_input_stats"),
    "max_pool": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool": (
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    ),
    "adaptive": ("output_size",),
    "interpolate": ("size", "scale_factor", "mode", "align_corners"),
    "pad": ("pad", "mode", "value"),
    "softmax": ("dim",),
    "mean": ("dim", "keepdim"),
    "flatten": ("start_dim", "end_dim"),
    "split": ("split_size_or_sections", "dim"),
    "chunk": ("chunks", "dim"),
    "narrow": ("dim", "start", "length"),
    "index_select": ("dim", "index"),
    "unbind": ("dim",),
    "transpose": ("dim0", "dim1"),
    "cat": ("dim",),
}


def from_torch(
    module: Any,
    input_shape: Sequence[int] | Sequence[Sequence[int]],
    *,
    name: str | None = None,
    strict: bool = False,
) -> LayerGraph:
    """Import ``module`` for inputs of ``input_shape`` (``(C, *spatial)``, no batch axis).

    Parameters
    ----------
    module : torch.nn.Module
        Traced in eval mode with ``torch.fx``; when fx cannot trace it (e.g. ``forward``
        branches on a shape), with ``torch.export`` at ``input_shape``. The route is kept in
        ``graph.nx.graph["route"]``.
    input_shape : tuple of int, or a list of them (one per ``forward`` argument)
    name : str, optional
        The graph's name (default: the module's class name).
    strict : bool
        Raise on an unmodelled op instead of flagging it (``opaque``) with a warning.

    Returns
    -------
    LayerGraph
        Node names follow the module path (``layer4.2.relu``; ``#2`` when a module is called
        again, ``layer1.0.add`` for an op inside ``layer1.0``). ``param_count(graph) ==
        sum(p.numel() for p in module.parameters())`` when every parameter is used; unused
        ones are listed by ``graph.unused_parameters()``.

    Raises
    ------
    ConvAlgebraError
        Neither tracer can trace the module (data-dependent control flow), an input shape
        does not fit, or ``strict`` and an op is not modelled.

    Notes
    -----
    MACs count the multiply-accumulates of convolutions, linear maps, ``matmul``/``einsum``
    and attention (projections and both attention products); an unmodelled op adds what
    torch's flop counter reports for it.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(8, 10))
    >>> g = from_torch(net, (3, 32, 32))
    >>> g.param_count() == sum(p.numel() for p in net.parameters())
    True
    >>> g.receptive_field("2")[0].is_global, g.nx.graph["route"]
    (True, 'torch.fx')
    """
    torch = require("torch", "torch")
    shapes = _input_shapes(input_shape)
    modes = {m: m.training for m in module.modules()}
    if any(modes.values()):
        module.eval()
    try:
        graph, route, keys = _trace(torch, module, shapes)
        result = _Importer(torch, module, graph, keys, shapes, name, strict).run()
    finally:
        for m, flag in modes.items():
            if flag:
                m.training = flag
    result.nx.graph["route"] = route
    return result


def _input_shapes(input_shape: Any) -> list[tuple[int, ...]]:
    if (
        isinstance(input_shape, (tuple, list))
        and input_shape
        and all(isinstance(v, (tuple, list)) for v in input_shape)
    ):
        return [tuple(s) for s in input_shape]
    return [tuple(input_shape)]


def _example(torch: Any, module: Any, shapes: list) -> tuple:
    tensors = [*module.parameters(), *module.buffers()]
    device = tensors[0].device if tensors else "cpu"
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    for s in shapes:
        require_array(f"the example input of shape {(1, *s)}", (1, *s), dtype.itemsize)
    return tuple(torch.zeros((1, *s), device=device, dtype=dtype) for s in shapes)


def _trace(torch: Any, module: Any, shapes: list) -> tuple[Any, str, dict]:
    """``(fx graph, route, placeholder -> parameter name)`` by fx, else by torch.export."""
    try:
        return torch.fx.Tracer().trace(module), "torch.fx", {}
    except Exception as fx_exc:  # fx raises many kinds; the export route decides
        try:
            program = torch.export.export(module, _example(torch, module, shapes), strict=False)
        except Exception as exc:
            raise ConvAlgebraError(
                f"could not trace {type(module).__name__}: torch.fx: {_short(fx_exc)}; "
                f"torch.export at input {shapes}: {_short(exc)} (data-dependent control flow "
                f"cannot be analysed at one input shape)"
            ) from exc
        sig = program.graph_signature
        keys = {
            **sig.inputs_to_parameters,
            **sig.inputs_to_buffers,
            **getattr(sig, "inputs_to_lifted_tensor_constants", {}),
        }
        return program.graph_module.graph, "torch.export", keys


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


class _Data:
    """A data tensor: the graph node holding it and its shape (batch axis of size ``batch``)."""

    __slots__ = ("node", "shape", "batch")

    def __init__(self, node: str, shape: tuple, batch: int = 1) -> None:
        self.node, self.shape, self.batch = node, shape, batch


class _Const:
    """A parameter, buffer or constant (a meta tensor), with the parameter names it reads."""

    __slots__ = ("meta", "keys", "node", "macs")

    def __init__(self, meta: Any, keys: dict[str, int], macs: int = 0) -> None:
        self.meta, self.keys, self.macs = meta, keys, macs
        self.node: str | None = None


class _Pieces:
    """The result of ``split``/``chunk``/``unbind``: one slice per piece, made when read."""

    __slots__ = ("src", "dim", "bounds", "select", "name")

    def __init__(self, src: _Data, dim: int, bounds: list, select: bool, name: str) -> None:
        self.src, self.dim, self.bounds, self.select, self.name = src, dim, bounds, select, name


class _Unknown(Exception):
    """An op outside the modelled set (its shape comes from torch)."""


class _Importer:
    def __init__(
        self,
        torch: Any,
        module: Any,
        fx_graph: Any,
        keys: dict,
        shapes: list,
        name: str | None,
        strict: bool,
    ) -> None:
        self.torch, self.module, self.fx, self.shapes = torch, module, fx_graph, shapes
        self.export_keys, self.strict = keys, strict
        self.graph = LayerGraph(name or type(module).__name__)
        self.env: dict[Any, Any] = {}
        self.taken: dict[str, int] = {}
        self.used: set[str] = set()
        self.unmodelled: list[tuple[str, str]] = []
        self.modules = dict(module.named_modules(remove_duplicate=False))
        self.named: dict[str, Any] = {}
        self.named_buffers: dict[str, Any] = {}
        for prefix, sub in self.modules.items():  # one walk (named_parameters walks again)
            dot = prefix + "." if prefix else ""
            self.named.update((dot + n, p) for n, p in sub._parameters.items() if p is not None)
            self.named_buffers.update(
                (dot + n, b) for n, b in sub._buffers.items() if b is not None
            )
        self.key_of: dict[int, str] = {}
        for n, t in (*self.named.items(), *self.named_buffers.items()):
            self.key_of.setdefault(id(t), n)  # a tied tensor is known by its first name
        self.dtype = next(
            (t.dtype for t in self.named.values() if t.is_floating_point()), torch.float32
        )

    # ------------------------------------------------------------------ driver
    def run(self) -> LayerGraph:
        inputs = iter(self.shapes)
        for node in self.fx.nodes:
            if node.op == "placeholder":
                if node.name in self.export_keys:
                    self.env[node] = self._const_named(self.export_keys[node.name])
                    continue
                shape = next(inputs, None)
                if shape is None:
                    raise ConvAlgebraError(
                        f"forward takes more inputs than the {len(self.shapes)} shape(s) given"
                    )
                self.env[node] = _Data(
                    self.graph.add_input(self._unique(node.name), shape), tuple(shape)
                )
            elif node.op == "get_attr":
                self.env[node] = self._const_named(str(node.target))
            elif node.op in ("call_module", "call_function", "call_method"):
                self.env[node] = self._call(node)
        unused = {
            n: p.numel()
            for n, p in self.named.items()
            if self.key_of[id(p)] == n and n not in self.used
        }
        self.graph.nx.graph["unused_parameters"] = sorted(unused)
        self.graph.nx.graph["unused_parameter_sizes"] = dict(sorted(unused.items()))
        self.graph.nx.graph["unmodelled"] = list(self.unmodelled)
        if self.unmodelled:
            ops = ", ".join(f"{n} ({op})" for n, op in self.unmodelled[:8])
            more = f" and {len(self.unmodelled) - 8} more" if len(self.unmodelled) > 8 else ""
            warnings.warn(
                f"from_torch: unmodelled op(s), receptive field reported as global: {ops}{more}",
                UnmodelledOpWarning,
                stacklevel=3,
            )
        return self.graph

    def _const_named(self, key: str) -> _Const:
        tensor = self.named.get(key)
        if tensor is None:
            tensor = self.named_buffers.get(key)
        if tensor is None:
            tensor = _attr(self.module, key)
        if not isinstance(tensor, self.torch.Tensor):
            return tensor
        key = self.key_of.get(id(tensor), key)
        stored = key in self.named or key in self.named_buffers
        return _Const(tensor.to("meta"), {key: tensor.numel()} if stored else {})

    def _call(self, node: Any) -> Any:
        args, kwargs = self.torch.fx.node.map_arg((node.args, dict(node.kwargs)), self.env.get)
        fname = self._fname(node)
        flat = _flatten((args, kwargs))
        if not any(isinstance(v, (_Data, _Pieces)) for v in flat):
            return self._fold(node, args, kwargs, flat)
        try:
            return self._interpret(node, fname, args, kwargs)
        except _Unknown as exc:
            return self._opaque(node, str(exc) or fname, args, kwargs)

    def _fname(self, node: Any) -> str:
        target = node.target
        if node.op == "call_module":
            return type(self.modules[target]).__name__
        if isinstance(target, str):
            return target
        packet = getattr(target, "overloadpacket", None)
        if packet is not None:  # an aten op of the export route
            return "aten." + packet.__name__
        return getattr(target, "__name__", str(target))

    def _fold(self, node: Any, args: Any, kwargs: Any, flat: list) -> Any:
        """An op on constants and Python values only: evaluate it (on meta tensors)."""
        if node.op == "call_module":  # e.g. an MLP over a table of coordinates (a buffer)
            value, flops = self._run_fake(node, args, kwargs)
            sub = self.modules[node.target]
            read = {self.key_of.get(id(p), n): p.numel() for n, p in sub.named_parameters()}
            for v in flat:
                if isinstance(v, _Const):
                    read.update(v.keys)
            return _Const(_meta_like(self.torch, value), read, flops // 2 + _const_macs(flat))
        metas = self.torch.fx.node.map_aggregate((args, kwargs), _meta_of)
        fn = getattr(metas[0][0], node.target) if node.op == "call_method" else node.target
        try:
            value = (
                fn(*metas[0][1:], **metas[1])
                if node.op == "call_method"
                else fn(*metas[0], **metas[1])
            )
        except Exception as exc:
            raise ConvAlgebraError(
                f"{node.op} {node.target} on constants failed: {_short(exc)}"
            ) from exc
        if isinstance(value, self.torch.Tensor):
            keys: dict[str, int] = {}
            for v in flat:
                if isinstance(v, _Const):
                    keys.update(v.keys)
            return _Const(
                value if value.device.type == "meta" else value.to("meta"), keys, _const_macs(flat)
            )
        return value

    # ------------------------------------------------------------------ naming
    def _unique(self, base: str, sep: str = "#") -> str:
        count = self.taken.get(base, 0)
        while True:
            count += 1
            name = base if count == 1 else f"{base}{sep}{count}"
            if name not in self.graph:
                self.taken[base] = count
                return name

    def _name(self, node: Any, fname: str) -> str:
        if node.op == "call_module":
            return self._unique(str(node.target))
        stack = node.meta.get("nn_module_stack") or {}
        scope, cls = next(reversed(stack.values()))[:2] if stack else ("", "")
        scope = scope if isinstance(scope, str) else ""
        cls = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
        op = fname.removeprefix("aten.").rstrip("_") or node.name
        if scope and cls.startswith(("torch.nn.", "torchvision.ops.")) and scope not in self.graph:
            return self._unique(scope)  # the first op of a library module is the module
        return self._unique(f"{scope}.{op}" if scope else op, "_")

    # ------------------------------------------------------------------ adding nodes
    def _add(
        self,
        name: str,
        layer: Layer,
        data: list,
        keys: dict | None = None,
        share: str | None = None,
    ) -> _Data:
        srcs = [d.node for d in data]
        self.graph.add(name, layer, srcs, share=share, param_keys=keys)
        batch = max((d.batch for d in data if isinstance(d, _Data)), default=1)
        return _Data(name, self.graph.shape(name), batch)

    def _materialise(self, const: _Const, rank: int) -> _Data:
        """A constant read by a data op: a parameter node (no receptive field)."""
        shape = tuple(const.meta.shape)
        if len(shape) == rank + 1:
            shape = shape[1:]  # the constant's batch axis (size 1)
        if const.node is None or self.graph.shape(const.node) != shape:
            keys = sorted(const.keys)
            local = {f"value{k}" if len(keys) > 1 else "value": key for k, key in enumerate(keys)}
            params = tuple((n, const.keys[k]) for n, k in local.items() if k in self.named)
            buffers = tuple((n, const.keys[k]) for n, k in local.items() if k not in self.named)
            self.used.update(keys)
            name = self._unique(keys[0] if len(keys) == 1 else "constant")
            self.graph.add(
                name, Parameter(shape, params, buffers, const.macs), [], param_keys=local or None
            )
            const.node = name
        return _Data(name if const.node is None else const.node, shape)

    def _param_keys(self, values: dict[str, Any]) -> dict[str, str]:
        out = {}
        for pname, v in values.items():
            if isinstance(v, _Const) and v.keys:
                key = "+".join(sorted(v.keys))
                out[pname] = key
                self.used.update(v.keys)
        return out

    # ------------------------------------------------------------------ interpretation
    def _interpret(self, node: Any, fname: str, args: tuple, kwargs: dict) -> Any:
        if any(isinstance(v, _Data) and v.batch != 1 for v in _flatten((args, kwargs))):
            raise _Unknown(f"{fname} on a batch axis of size > 1")
        if node.op == "call_module":
            return self._module(node, fname, args, kwargs)
        base = fname.removeprefix("aten.")
        if base == "getitem":
            return self._getitem(node, args[0], args[1])
        x, rest = args[0], args[1:]
        if base in _ALIAS or base in ("dropout", "feature_dropout") and node.op == "call_method":
            return x
        handler = _HANDLERS.get(base)
        if handler is None:
            for prefix, h in _PREFIX_HANDLERS:
                if base.startswith(prefix):
                    handler = h
                    break
        if handler is None:
            raise _Unknown(f"function {fname}")
        return handler(self, node, fname, x, rest, kwargs)

    def _module(self, node: Any, kind: str, args: tuple, kwargs: dict) -> Any:
        sub = self.modules[node.target]
        x = args[0] if args else next(iter(kwargs.values()))
        if kind == "MultiheadAttention":
            layer = _attention(sub, node, args, kwargs)
        else:
            layer = _module_layer(sub)
        if layer is None or not isinstance(x, _Data):
            raise _Unknown(f"module {kind}")
        _check_fan_in(str(node.target), kind, x.shape, _module_fan_in(sub, kind, x.shape))
        keys = self._module_keys(sub)
        share = str(node.target) if str(node.target) in self.taken else None
        out = self._add(self._name(node, kind), layer, [x], keys, share)
        return (out, None) if kind == "MultiheadAttention" else out

    def _module_keys(self, sub: Any) -> dict[str, str]:
        tensors = (
            (*sub.named_parameters(), *sub.named_buffers())
            if sub._modules
            else (*sub._parameters.items(), *sub._buffers.items())
        )
        keys = {}
        for pname, p in tensors:
            if p is not None:
                keys[pname] = self.key_of.get(id(p), pname)
        self.used.update(keys.values())
        return keys

    def _opaque(self, node: Any, op: str, args: tuple, kwargs: dict) -> Any:
        name = self._name(node, self._fname(node))
        if self.strict:
            raise ConvAlgebraError(f"node {name!r}: {op} is not modelled (strict=True)")
        value, flops = self._run_fake(node, args, kwargs)
        data = [v for v in _flatten((args, kwargs)) if isinstance(v, _Data)]
        params: tuple = ()
        keys: dict[str, str] | None = None
        if node.op == "call_module":
            sub = self.modules[node.target]
            keys = self._module_keys(sub)
            params = tuple((n, p.numel()) for n, p in sub.named_parameters())
        consts = [v for v in _flatten((args, kwargs)) if isinstance(v, _Const)]
        for c in consts:
            for key, size in c.keys.items():
                if key in self.named and key not in self.used:
                    params += ((key.replace(".", "_"), size),)
                    keys = {**(keys or {}), key.replace(".", "_"): key}
                    self.used.add(key)
        self.unmodelled.append((name, op))
        tensors = _tensors(self.torch, value)
        if not tensors:
            raise ConvAlgebraError(f"node {name!r}: {op} returns no tensor")
        outs = []
        for k, t in enumerate(tensors):
            label = name if k == 0 else self._unique(f"{name}.{k}")
            layer = Opaque(
                op=op,
                shape=tuple(t.shape[1:]),
                params=params if k == 0 else (),
                macs=flops // 2 + _const_macs(consts) if k == 0 else 0,
            )
            self.graph.add(
                label, layer, [d.node for d in data], param_keys=keys if k == 0 and params else None
            )
            outs.append(_Data(label, tuple(t.shape[1:]), t.shape[0] if t.dim() else 1))
        return (
            outs[0]
            if isinstance(value, self.torch.Tensor)
            else _rebuild(self.torch, value, iter(outs))
        )

    def _run_fake(self, node: Any, args: tuple, kwargs: dict) -> tuple[Any, int]:
        """Run the op alone on meta (or fake) tensors: its outputs and its flop count."""
        from torch.utils.flop_counter import FlopCounterMode

        torch = self.torch

        def meta(v: Any) -> Any:
            if isinstance(v, _Data):
                return torch.empty((v.batch, *v.shape), device="meta", dtype=self.dtype)
            if isinstance(v, _Pieces):
                return [meta(self._piece(v, i)) for i in range(len(v.bounds))]
            return _meta_of(v)

        margs, mkw = torch.fx.node.map_aggregate((args, kwargs), meta)
        counter = FlopCounterMode(display=False)
        try:
            if node.op == "call_module":
                from torch._subclasses.fake_tensor import FakeTensorMode

                sub = self.modules[node.target]
                device = next((t.device for t in (*sub.parameters(), *sub.buffers())), "cpu")
                with FakeTensorMode(allow_non_fake_inputs=True) as mode:
                    fargs, fkw = torch.fx.node.map_aggregate(
                        (margs, mkw),
                        lambda t: (
                            mode.from_tensor(torch.empty(t.shape, dtype=t.dtype, device=device))
                            if isinstance(t, torch.Tensor)
                            else t
                        ),
                    )
                    with counter:
                        value = self.modules[node.target](*fargs, **fkw)
            elif node.op == "call_method":
                with counter:
                    value = getattr(margs[0], node.target)(*margs[1:], **mkw)
            else:
                with counter:
                    value = node.target(*margs, **mkw)
        except Exception as exc:
            raise ConvAlgebraError(
                f"{node.op} {node.target}: torch could not run it on inputs "
                f"of the given shapes: {_short(exc)}"
            ) from exc
        return value, int(counter.get_total_flops())

    # ------------------------------------------------------------------ indexing
    def _getitem(self, node: Any, x: Any, index: Any) -> Any:
        if isinstance(x, _Pieces):
            return self._piece(x, index)
        if isinstance(x, (tuple, list)):
            return x[index]
        if not isinstance(x, _Data):
            raise _Unknown("getitem")
        return self._index(node, x, index if isinstance(index, tuple) else (index,))

    def _piece(self, p: _Pieces, i: int) -> _Data:
        i = i % len(p.bounds)
        name = f"{p.name}.{i}"
        if name in self.graph:
            return _Data(name, self.graph.shape(name))
        start, stop = p.bounds[i]
        layer = Select(p.dim, start) if p.select else Slice(p.dim, start, stop)
        return self._add(name, layer, [p.src])

    def _index(self, node: Any, x: _Data, index: tuple) -> _Data:
        rank = len(x.shape) + 1
        if any(i is Ellipsis for i in index):
            at = index.index(Ellipsis)
            fill = rank - (len(index) - 1 - sum(i is None for i in index))
            index = index[:at] + (slice(None),) * fill + index[at + 1 :]
        axis, ops, news = 0, [], []  # type: tuple[int, list[tuple[str, int, Any]], list[int]]
        for item in index:
            if item is None:
                news.append(axis + len(news))
                continue
            if axis == 0 and item != slice(None):
                raise _Unknown("indexing the batch axis")
            if isinstance(item, int):
                ops.append(("select", axis - 1, item))
            elif isinstance(item, slice):
                if item != slice(None):
                    ops.append(("slice", axis - 1, item))
            else:
                raise _Unknown(f"indexing with {type(item).__name__}")
            axis += 1
        base = self._name(node, "getitem")
        out, steps = x, []  # type: tuple[_Data, list[Layer]]
        for kind, dim, item in sorted(ops, key=lambda o: (o[0] == "select", -o[1])):
            if kind == "slice":
                steps.append(Slice(dim, item.start or 0, item.stop, item.step or 1))
            else:
                steps.append(Select(dim, item))
        if news:
            shape = list(_apply_shapes(out.shape, steps))
            for k in news:
                shape.insert(k - 1, 1)
            steps.append(Reshape(tuple(shape)))
        if not steps:
            return x
        for k, layer in enumerate(steps):
            out = self._add(
                base if k == len(steps) - 1 else self._unique(f"{base}.{k}"), layer, [out]
            )
        return out


def _const_macs(values: list) -> int:
    """MACs spent computing constants from parameters (e.g. an MLP over a coordinate table)."""
    return sum(v.macs for v in {id(v): v for v in values if isinstance(v, _Const)}.values())


def _meta_like(torch: Any, value: Any) -> Any:
    """A meta tensor of ``value``'s shape and dtype (``value`` may be a fake tensor)."""
    return torch.empty(tuple(value.shape), dtype=value.dtype, device="meta")


def _apply_shapes(shape: tuple, layers: list) -> tuple:
    for layer in layers:
        shape = layer.facts([shape]).shape
    return shape


def _attr(module: Any, path: str) -> Any:
    for part in path.split("."):
        module = getattr(module, part)
    return module


def _flatten(value: Any) -> list:
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    if isinstance(value, slice):
        return [value.start, value.stop, value.step]
    return [value]


def _meta_of(v: Any) -> Any:
    return v.meta if isinstance(v, _Const) else v


def _tensors(torch: Any, value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(torch, v)]
    return []


def _rebuild(torch: Any, value: Any, outs: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return next(outs)
    if isinstance(value, (tuple, list)):
        return (
            type(value)(_rebuild(torch, v, outs) for v in value)
            if isinstance(value, tuple)
            else [_rebuild(torch, v, outs) for v in value]
        )
    return value


# ---------------------------------------------------------------------- handlers
def _bind(args: tuple, kwargs: dict, names: tuple[str, ...]) -> dict:
    bound = dict(zip(names, args, strict=False))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    return bound


def _unbatch(dim: Any, rank: int) -> int:
    """A dim of the batched tensor (rank ``rank``) as a dim of the unbatched shape."""
    if not isinstance(dim, int):
        raise _Unknown(f"dim {dim!r}")
    dim = dim % rank
    if dim == 0:
        raise _Unknown("an op over the batch axis")
    return dim - 1


def _need_data(x: Any, what: str) -> _Data:
    if not isinstance(x, _Data):
        raise _Unknown(what)
    return x


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _shape_of(value: Any) -> tuple:
    return tuple(value.meta.shape) if isinstance(value, _Const) else ()


def _h_conv(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    base = fname.removeprefix("aten.")
    if base == "convolution":
        b = _bind(rest, kw, _SIG["convolution"])
        transposed = bool(b.get("transposed", False))
    else:
        transposed = "transpose" in base
        b = _bind(rest, kw, _SIG["conv_transpose" if transposed else "conv"])
    w, bias = b["weight"], b.get("bias")
    wshape = _shape_of(w)
    if not wshape:
        raise _Unknown(f"{fname} with a weight computed from data")
    groups = int(b.get("groups", 1))
    out = wshape[1] * groups if transposed else wshape[0]
    layer = Conv(
        out,
        tuple(wshape[2:]),
        _tuple(b.get("stride", 1)),
        _tuple(b.get("padding", 0)),
        _tuple(b.get("dilation", 1)),
        groups,
        bias is not None,
        "zeros",
        transposed,
        _tuple(b.get("output_padding", 0)) if transposed else 0,
    )
    x = _need_data(x, fname)
    fan_in = wshape[0] if transposed else wshape[1] * groups
    _check_fan_in(str(node.name), fname, x.shape, (0, fan_in))
    keys = imp._param_keys({"weight": w, "bias": bias})
    return imp._add(imp._name(node, fname), layer, [x], keys)


def _check_fan_in(where: str, what: str, shape: tuple, expected: tuple | None) -> None:
    """``expected`` = (axis, size) of the input a layer was built for."""
    if expected is not None and shape and shape[expected[0]] != expected[1]:
        raise ConvAlgebraError(
            f"torch could not run {where!r} ({what}) on input shape {shape}: "
            f"it expects size {expected[1]} on axis {expected[0] % len(shape)}"
            f" (shapes without the batch axis)"
        )


def _module_fan_in(m: Any, kind: str, shape: tuple) -> tuple | None:
    if kind.startswith("Conv"):
        return (0, m.in_channels)
    if kind == "Linear":
        return (-1, m.in_features)
    if kind.startswith("BatchNorm") or kind == "GroupNorm":
        return (0, m.num_features if hasattr(m, "num_features") else m.num_channels)
    return None


def _h_linear(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    b = _bind(rest, kw, _SIG["linear"])
    w, bias = b["weight"], b.get("bias")
    if not isinstance(w, _Const):
        raise _Unknown("linear with a weight computed from data")
    layer = Linear(_shape_of(w)[0], bias is not None)
    x = _need_data(x, fname)
    _check_fan_in(str(node.name), fname, x.shape, (-1, _shape_of(w)[-1]))
    keys = imp._param_keys({"weight": w, "bias": bias})
    return imp._add(imp._name(node, fname), layer, [x], keys)


def _h_norm(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    base = fname.removeprefix("aten.")
    x = _need_data(x, fname)
    if base == "batch_norm":
        b = _bind(rest, kw, _SIG["aten.batch_norm" if fname.startswith("aten.") else base])
        stats = b.get("running_mean") is not None
        counted = _batches_tracked(imp, b.get("running_mean"))
        layer: Layer = BatchNorm(b.get("weight") is not None, stats, count_batches=counted)
        values = {
            "weight": b.get("weight"),
            "bias": b.get("bias"),
            "running_mean": b.get("running_mean"),
            "running_var": b.get("running_var"),
        }
        if counted:
            key = next(iter(b["running_mean"].keys)).rsplit(".", 1)[0] + ".num_batches_tracked"
            values["num_batches_tracked"] = _Const(None, {key: 1})
    elif base == "layer_norm":
        b = _bind(rest, kw, _SIG["layer_norm"])
        layer = LayerNorm(
            tuple(_tuple(b["normalized_shape"])),
            b.get("weight") is not None,
            b.get("bias") is not None,
        )
        values = {"weight": b.get("weight"), "bias": b.get("bias")}
    elif base == "group_norm":
        b = _bind(rest, kw, _SIG["group_norm"])
        layer = GroupNorm(int(b["num_groups"]), b.get("weight") is not None)
        values = {"weight": b.get("weight"), "bias": b.get("bias")}
    else:  # instance norm: statistics over the positions of each channel
        b = _bind(rest, kw, _SIG["aten.instance_norm" if fname.startswith("aten.") else base])
        if b.get("running_mean") is not None:
            raise _Unknown("instance_norm with running statistics")
        layer = GroupNorm(x.shape[0], b.get("weight") is not None)
        values = {"weight": b.get("weight"), "bias": b.get("bias")}
    if (
        isinstance(layer, (LayerNorm, GroupNorm))
        and (b.get("weight") is None) != (b.get("bias") is None)
        and not isinstance(layer, LayerNorm)
    ):
        raise _Unknown(f"{base} with a weight but no bias")
    return imp._add(imp._name(node, fname), layer, [x], imp._param_keys(values))


def _batches_tracked(imp: _Importer, mean: Any) -> bool:
    if not isinstance(mean, _Const) or len(mean.keys) != 1:
        return False
    key = next(iter(mean.keys)).rsplit(".", 1)[0] + ".num_batches_tracked"
    return key in imp.named_buffers and imp.named_buffers[key].numel() == 1 and key not in imp.used


def _h_act(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    base = fname.removeprefix("aten.").rstrip("_")
    fn = base if base in _ACT_FNS else "pointwise"
    if base == "hardtanh":
        fn = "relu6"
    if base in ("softmax", "log_softmax"):
        dim = _bind(rest, kw, _SIG["softmax"]).get("dim")
        return imp._add(
            imp._name(node, fname), Activation(base, _unbatch(dim, len(x.shape) + 1)), [x]
        )
    if any(isinstance(v, _Data) for v in _flatten((rest, kw))):
        return _h_arith(imp, node, fname, x, rest, kw)
    return imp._add(imp._name(node, fname), Activation(fn), [_need_data(x, fname)])


def _h_arith(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    base = fname.removeprefix("aten.").rstrip("_")
    operands = [v for v in (x, *rest[:1], kw.get("other")) if isinstance(v, (_Data, _Const))]
    data = [v for v in operands if isinstance(v, _Data)]
    rank = max(len(d.shape) for d in data)
    if len(operands) < 2:
        return imp._add(imp._name(node, fname), Activation("scale"), data)
    values = [v if isinstance(v, _Data) else imp._materialise(v, rank) for v in operands]
    layer = Add() if _ARITH.get(base, "mul") == "add" else Mul()
    return imp._add(imp._name(node, fname), layer, values)


def _h_cat(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    items = [imp._piece(x, i) for i in range(len(x.bounds))] if isinstance(x, _Pieces) else list(x)
    dim = _bind(rest, kw, _SIG["cat"]).get("dim", 0)
    data = [v for v in items if isinstance(v, _Data)]
    rank = len(data[0].shape) + 1
    values = [v if isinstance(v, _Data) else imp._materialise(v, rank - 1) for v in items]
    if not all(isinstance(v, _Data) for v in values):
        raise _Unknown("cat of values that are not tensors")
    return imp._add(imp._name(node, fname), Concat(_unbatch(dim, rank)), values)


def _h_pool(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    base = fname.removeprefix("aten.").lstrip("_")
    x = _need_data(x, fname)
    if base.startswith("adaptive"):
        b = _bind(rest, kw, _SIG["adaptive"])
        layer: Layer = AdaptivePool(_tuple(b["output_size"]), "max" if "max" in base else "avg")
    else:
        b = _bind(rest, kw, _SIG[base[:8]])
        if b.get("return_indices") or base.endswith("with_indices"):
            raise _Unknown(f"{fname} returning indices")
        common = dict(
            kernel_size=_tuple(b["kernel_size"]),
            stride=_tuple(b.get("stride")) or None,
            padding=_tuple(b.get("padding", 0)),
            ceil_mode=bool(b.get("ceil_mode", False)),
        )
        if base.startswith("max"):
            layer = MaxPool(dilation=_tuple(b.get("dilation", 1)), **common)
        else:
            if b.get("divisor_override"):
                raise _Unknown(f"{fname} with divisor_override")
            layer = AvgPool(count_include_pad=bool(b.get("count_include_pad", True)), **common)
    return imp._add(imp._name(node, fname), layer, [x])


def _h_interp(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    base = fname.removeprefix("aten.")
    if base.startswith("upsample"):  # aten.upsample_<mode>.vec of the export route
        nearest = "nearest" in base
        b = _bind(
            rest,
            kw,
            ("output_size", "scale_factors")
            if nearest
            else ("output_size", "align_corners", "scale_factors"),
        )
        mode = "nearest" if nearest else base.removeprefix("upsample_").rstrip("0123456789d")
        size, scale = _tuple(b.get("output_size")), _tuple(b.get("scale_factors"))
        layer = Upsample(
            None if size else scale, size or None, mode, bool(b.get("align_corners") or False)
        )
    else:
        b = _bind(rest, kw, _SIG["interpolate"])
        if (
            b.get("recompute_scale_factor")
            or kw.get("recompute_scale_factor")
            or kw.get("antialias")
        ):
            raise _Unknown("interpolate with recompute_scale_factor or antialias")
        mode = b.get("mode", "nearest")
        if mode not in ("nearest", "linear", "bilinear", "trilinear"):
            raise _Unknown(f"interpolate mode {mode!r}")
        layer = Upsample(
            _tuple(b.get("scale_factor")),
            _tuple(b.get("size")),
            mode,
            bool(b.get("align_corners") or False),
        )
    return imp._add(imp._name(node, fname), layer, [_need_data(x, fname)])


def _h_pad(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    b = _bind(rest, kw, _SIG["pad"])
    pad = list(b["pad"])
    x = _need_data(x, fname)
    if len(pad) // 2 > len(x.shape) - 1:
        raise _Unknown("padding the channel axis")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    pairs += [(0, 0)] * (len(x.shape) - 1 - len(pairs))
    value = b.get("value")
    layer = Pad(
        tuple(reversed(pairs)), b.get("mode", "constant") or "constant", float(value or 0.0)
    )
    return imp._add(imp._name(node, fname), layer, [x])


def _h_mean(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    b = _bind(rest, kw, _SIG["mean"])
    dims = b.get("dim")
    if dims is None:
        raise _Unknown("mean over every axis")
    rank = len(x.shape) + 1
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    layer = Mean(tuple(_unbatch(d, rank) for d in dims), bool(b.get("keepdim", False)))
    return imp._add(imp._name(node, fname), layer, [_need_data(x, fname)])


def _h_dropout(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    return imp._add(imp._name(node, fname), Dropout(), [_need_data(x, fname)])


def _sizes(rest: tuple) -> tuple:
    if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
        return tuple(rest[0])
    return tuple(rest)


def _h_view(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    x = _need_data(x, fname)
    base = fname.removeprefix("aten.")
    shape = _sizes(rest if rest else (kw.get("shape") or kw.get("size"),))
    full = (1, *x.shape)
    numel = _prod(full)
    if shape.count(-1) == 1:
        known = _prod(tuple(v for v in shape if v != -1))
        shape = tuple(numel // max(known, 1) if v == -1 else v for v in shape)
    if not shape or shape[0] != 1 or _prod(shape) != numel:
        raise _Unknown(f"{base} to {shape} (moves the batch axis)")
    return imp._add(imp._name(node, fname), Reshape(tuple(int(v) for v in shape[1:])), [x])


def _prod(values: tuple) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _h_flatten(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    x = _need_data(x, fname)
    b = _bind(rest, kw, _SIG["flatten"])
    rank = len(x.shape) + 1
    start, end = b.get("start_dim", 0) % rank, b.get("end_dim", -1) % rank
    if start == 0:
        raise _Unknown("flatten over the batch axis")
    return imp._add(imp._name(node, fname), Flatten(start - 1, end - 1), [x])


def _h_unsqueeze(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    x = _need_data(x, fname)
    base = fname.removeprefix("aten.")
    dims: Any = rest[0] if rest else kw.get("dim")
    shape = [1, *x.shape]
    if base == "unsqueeze":
        shape.insert(dims % (len(shape) + 1), 1)
    else:
        todo = (
            range(len(shape)) if dims is None else ([dims] if isinstance(dims, int) else list(dims))
        )
        drop = {d % len(shape) for d in todo if shape[d % len(shape)] == 1}
        if 0 in drop:
            drop.discard(0)
        shape = [s for k, s in enumerate(shape) if k not in drop]
    if shape[0] != 1:
        raise _Unknown(f"{base} of the batch axis")
    return imp._add(imp._name(node, fname), Reshape(tuple(shape[1:])), [x])


def _h_permute(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    x = _need_data(x, fname)
    base = fname.removeprefix("aten.")
    rank = len(x.shape) + 1
    if base in ("transpose", "swapaxes", "swapdims"):
        b = _bind(rest, kw, _SIG["transpose"])
        d0, d1 = b["dim0"] % rank, b["dim1"] % rank
        dims = list(range(rank))
        dims[d0], dims[d1] = dims[d1], dims[d0]
    else:
        dims = [d % rank for d in _sizes(rest if rest else (kw.get("dims"),))]
    if dims[0] != 0:
        raise _Unknown(f"{base} moving the batch axis")
    return imp._add(imp._name(node, fname), Permute(tuple(d - 1 for d in dims[1:])), [x])


def _h_split(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    x = _need_data(x, fname)
    base = fname.removeprefix("aten.")
    rank = len(x.shape) + 1
    name = imp._name(node, fname)
    if base in ("split", "split_with_sizes"):
        b = _bind(rest, kw, ("split_size_or_sections", "dim"))
        size: Any = b.get("split_size_or_sections", kw.get("split_size", kw.get("split_sizes")))
        dim = _unbatch(b.get("dim", 0), rank)
        n = x.shape[dim]
        sizes = (
            list(size)
            if isinstance(size, (list, tuple))
            else [min(size, n - k) for k in range(0, n, size)]
        )
    elif base == "chunk":
        b = _bind(rest, kw, _SIG["chunk"])
        dim = _unbatch(b.get("dim", 0), rank)
        n = x.shape[dim]
        step = -(-n // b["chunks"])
        sizes = [min(step, n - k) for k in range(0, n, step)]
    elif base == "unbind":
        dim = _unbatch(_bind(rest, kw, _SIG["unbind"]).get("dim", 0), rank)
        return _Pieces(x, dim, [(k, k + 1) for k in range(x.shape[dim])], True, name)
    elif base == "narrow":
        b = _bind(rest, kw, _SIG["narrow"])
        dim = _unbatch(b["dim"], rank)
        start = b["start"] % x.shape[dim]
        return imp._add(name, Slice(dim, start, start + b["length"]), [x])
    else:  # index_select
        b = _bind(rest, kw, _SIG["index_select"])
        index = b["index"]
        count = index.meta.numel() if isinstance(index, _Const) else None
        if count is None:
            raise _Unknown("index_select with an index computed from data")
        return imp._add(name, Take(_unbatch(b["dim"], rank), count), [x])
    bounds, start = [], 0
    for s in sizes:
        bounds.append((start, start + s))
        start += s
    return _Pieces(x, dim, bounds, False, name)


def _h_matmul(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    fname.removeprefix("aten.")
    other = rest[0] if rest else kw.get("other", kw.get("mat2"))
    operands = [x, other]
    shapes = [tuple(v.meta.shape) if isinstance(v, _Const) else (1, *v.shape) for v in operands]
    eq = _matmul_equation(shapes, isinstance(x, _Const), isinstance(other, _Const))
    return _einsum_node(imp, node, fname, eq, operands)


def _matmul_equation(shapes: list, const_a: bool, const_b: bool) -> str:
    """The einsum equation of ``a @ b`` on unbatched data (constants keep every axis)."""
    ra, rb = len(shapes[0]), len(shapes[1])
    if ra < 2 or rb < 2:
        raise _Unknown("matmul of a vector")
    letters = "abcdefghijklmnop"
    batch = max(ra, rb) - 2
    lead = letters[:batch]
    a = lead[batch - (ra - 2) :] + "xy"
    b = lead[batch - (rb - 2) :] + "yz"
    out = lead + "xz"
    a, b, out = (
        a if const_a else a[1:] if ra == batch + 2 else a,
        b if const_b else b[1:] if rb == batch + 2 else b,
        out[1:],
    )
    return f"{a},{b}->{out}"


def _einsum_node(imp: _Importer, node: Any, fname: str, eq: str, operands: list) -> _Data:
    terms = eq.split("->")[0].split(",")
    weights, data, values = [], [], {}
    for k, (term, v) in enumerate(zip(terms, operands, strict=False)):
        if isinstance(v, _Const):
            shape = tuple(v.meta.shape)[len(v.meta.shape) - len(term) :]
            if _prod(tuple(v.meta.shape)) != _prod(shape):
                raise _Unknown("einsum with a batched constant")
            weights.append((k, shape))
            values[f"weight{k}"] = v
        elif isinstance(v, _Data):
            data.append(v)
        else:
            raise _Unknown("einsum operand")
    if len(weights) == 1:
        values = {"weight": next(iter(values.values()))}
    layer = Einsum(eq, tuple(weights))
    return imp._add(imp._name(node, fname), layer, data, imp._param_keys(values))


def _h_einsum(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    if not isinstance(x, str):
        raise _Unknown("einsum without an equation first")
    operands = (
        list(rest[0]) if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else list(rest)
    )
    text = x.replace(" ", "")
    if "->" not in text or "." in text or len(operands) != 2:
        raise _Unknown("einsum without an explicit output, with an ellipsis or not of two operands")
    lhs, out = text.split("->")
    terms = lhs.split(",")
    new = []
    for term, v in zip(terms, operands, strict=False):
        new.append(term if isinstance(v, _Const) else term[1:])
        if isinstance(v, _Data) and len(term) != len(v.shape) + 1:
            raise _Unknown("einsum term and operand rank differ")
    batch = [t[0] for t, v in zip(terms, operands, strict=False) if isinstance(v, _Data)]
    if len(set(batch)) != 1 or not out.startswith(batch[0]):
        raise _Unknown("einsum mixing the batch axis")
    return _einsum_node(imp, node, fname, ",".join(new) + "->" + out[1:], operands)


def _h_slice(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    """``aten.slice`` / ``aten.select`` (indexing on the export route)."""
    x = _need_data(x, fname)
    rank = len(x.shape) + 1
    if fname.endswith("select"):
        b = _bind(rest, kw, ("dim", "index"))
        return imp._add(imp._name(node, fname), Select(_unbatch(b["dim"], rank), b["index"]), [x])
    b = _bind(rest, kw, ("dim", "start", "end", "step"))
    dim = b.get("dim", 0) % rank
    size = 1 if dim == 0 else x.shape[dim - 1]
    start, stop, step = slice(b.get("start"), b.get("end"), b.get("step", 1)).indices(size)
    if (start, stop, step) == (0, size, 1):
        return x
    if dim == 0:
        raise _Unknown("slicing the batch axis")
    return imp._add(imp._name(node, fname), Slice(dim - 1, start, stop, step), [x])


def _h_stochastic_depth(
    imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict
) -> Any:
    """torchvision's stochastic depth: the identity at inference."""
    b = _bind(rest, kw, ("p", "mode", "training"))
    if b.get("training", True) and b.get("p", 0.0):
        raise _Unknown("stochastic_depth in training mode")
    return x


def _h_getattr(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> Any:
    torch = imp.torch
    shape = torch.Size((x.batch, *x.shape))
    values = {
        "shape": shape,
        "ndim": len(shape),
        "dtype": imp.dtype,
        "device": torch.device("meta"),
        "is_cuda": False,
        "requires_grad": False,
    }
    if node.op == "call_method":
        attr = fname
    else:
        attr = rest[0]
    if attr in ("size", "shape"):
        dim = (rest[0] if rest else kw.get("dim")) if node.op == "call_method" else None
        return shape if dim is None else shape[dim]
    if attr in ("dim", "ndimension"):
        return len(shape)
    if attr == "numel":
        return _prod(tuple(shape))
    if attr not in values:
        raise _Unknown(f"attribute {attr}")
    return values[attr]


def _h_expand(imp: _Importer, node: Any, fname: str, x: Any, rest: tuple, kw: dict) -> _Data:
    raise _Unknown(f"{fname} of data")


_HANDLERS = {
    **{
        n: _h_conv
        for n in (
            "conv1d",
            "conv2d",
            "conv3d",
            "conv_transpose1d",
            "conv_transpose2d",
            "conv_transpose3d",
            "convolution",
        )
    },
    "linear": _h_linear,
    **{n: _h_norm for n in ("batch_norm", "layer_norm", "group_norm", "instance_norm")},
    **{
        n: _h_act
        for n in (*_ACT_FNS, *(f + "_" for f in _ACT_FNS), *_POINTWISE, "softmax", "log_softmax")
    },
    **{n: _h_arith for n in _ARITH},
    **{n: _h_arith for n in ("add_", "mul_", "sub_", "div_")},
    "cat": _h_cat,
    "concat": _h_cat,
    "concatenate": _h_cat,
    "interpolate": _h_interp,
    "upsample_nearest2d": _h_interp,
    "upsample_bilinear2d": _h_interp,
    "pad": _h_pad,
    "constant_pad_nd": _h_pad,
    "mean": _h_mean,
    **{
        n: _h_dropout
        for n in (
            "dropout",
            "dropout1d",
            "dropout2d",
            "dropout3d",
            "alpha_dropout",
            "feature_dropout",
        )
    },
    "view": _h_view,
    "reshape": _h_view,
    "_unsafe_view": _h_view,
    "flatten": _h_flatten,
    "unsqueeze": _h_unsqueeze,
    "squeeze": _h_unsqueeze,
    **{n: _h_permute for n in ("permute", "transpose", "swapaxes", "swapdims")},
    **{
        n: _h_split
        for n in ("split", "split_with_sizes", "chunk", "unbind", "narrow", "index_select")
    },
    "matmul": _h_matmul,
    "bmm": _h_matmul,
    "mm": _h_matmul,
    "einsum": _h_einsum,
    "expand": _h_expand,
    "stochastic_depth": _h_stochastic_depth,
    "slice": _h_slice,
    "select": _h_slice,
    "upsample_nearest1d": _h_interp,
    "upsample_nearest3d": _h_interp,
    "upsample_linear1d": _h_interp,
    "upsample_trilinear3d": _h_interp,
    **{n: _h_getattr for n in ("getattr", "size", "dim", "ndimension", "numel")},
}
_PREFIX_HANDLERS = [
    ("max_pool", _h_pool),
    ("avg_pool", _h_pool),
    ("adaptive_", _h_pool),
    ("_adaptive", _h_pool),
    ("_max_pool", _h_pool),
]


# ---------------------------------------------------------------------- modules
def _attention(m: Any, node: Any, args: tuple, kwargs: dict) -> Layer | None:
    q = args[0] if args else kwargs.get("query")
    k = args[1] if len(args) > 1 else kwargs.get("key")
    v = args[2] if len(args) > 2 else kwargs.get("value")
    extra = {n: kwargs.get(n) for n in ("key_padding_mask", "attn_mask")}
    if (
        not (q is k is v)
        or not m.batch_first
        or any(x is not None for x in extra.values())
        or m.bias_k is not None
        or not m._qkv_same_embed_dim
    ):
        return None
    return Attention(m.num_heads, m.in_proj_bias is not None)


def _module_layer(m: Any) -> Layer | None:
    """The layer kind of a torch module, or None when it is not interpreted."""
    kind = type(m).__name__
    if (
        kind.startswith("ConvTranspose")
        or kind.startswith("Conv")
        and kind[4:] in ("1d", "2d", "3d")
    ):
        transposed = kind.startswith("ConvTranspose")
        padding = m.padding if not isinstance(m.padding, str) else m.padding
        return Conv(
            m.out_channels,
            m.kernel_size,
            m.stride,
            padding,
            m.dilation,
            m.groups,
            m.bias is not None,
            m.padding_mode,
            transposed,
            m.output_padding if transposed else 0,
        )
    if kind == "Linear":
        return Linear(m.out_features, m.bias is not None)
    if kind.startswith("BatchNorm"):
        return BatchNorm(m.affine, m.track_running_stats, m.eps)
    if kind == "LayerNorm":
        return LayerNorm(
            tuple(m.normalized_shape), m.elementwise_affine, getattr(m, "bias", None) is not None
        )
    if kind == "GroupNorm":
        return GroupNorm(m.num_groups, m.affine)
    if kind in _ACTS:
        return Activation(_ACTS[kind])
    if kind in ("Softmax", "LogSoftmax"):
        return (
            None
            if m.dim in (None, 0)
            else Activation(
                "softmax" if kind == "Softmax" else "log_softmax", m.dim - 1 if m.dim > 0 else m.dim
            )
        )
    if kind.startswith(("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool")):
        return _pool_module(kind, m)
    if kind.startswith("Dropout") or kind == "AlphaDropout":
        return Dropout(m.p)
    if kind == "Identity":
        return Identity()
    if kind == "Flatten":
        return (
            Flatten(m.start_dim - 1, m.end_dim - 1 if m.end_dim > 0 else m.end_dim)
            if m.start_dim
            else None
        )
    if kind.startswith("Upsampl"):
        mode = "bilinear" if kind == "UpsamplingBilinear2d" else m.mode
        align = True if kind == "UpsamplingBilinear2d" else bool(m.align_corners)
        return Upsample(_tuple(m.scale_factor), _tuple(m.size), mode, align)
    if kind.endswith(("Pad1d", "Pad2d", "Pad3d")):
        mode = {"Reflection": "reflect", "Replication": "replicate", "Circular": "circular"}
        word = next((v for k, v in mode.items() if kind.startswith(k)), "constant")
        pad = m.padding
        pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
        return Pad(tuple(reversed(pairs)), word, float(getattr(m, "value", 0.0)))
    return None


def _pool_module(kind: str, m: Any) -> Layer:
    if kind.startswith("Adaptive"):
        return AdaptivePool(_tuple(m.output_size), "max" if "Max" in kind else "avg")
    common = dict(
        kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode
    )
    if kind.startswith("Max"):
        return MaxPool(dilation=m.dilation, **common)
    return AvgPool(count_include_pad=m.count_include_pad, **common)
