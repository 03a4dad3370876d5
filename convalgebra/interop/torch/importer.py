"""The importer: walks the traced graph once, adding a node per modelled op."""

from __future__ import annotations

import warnings
from typing import Any

from ...errors import ConvAlgebraError, shown
from ...network.graph import LayerGraph
from ...network.layers import (
    Layer,
    Opaque,
    Parameter,
    Reshape,
    Select,
    Slice,
)
from .modules import attention_layer, kind_of, module_fan_in, module_layer
from .shapes import pixel_shuffle_op
from .table import ALIAS, handler_for
from .tracing import call_names
from .values import (
    Const,
    Data,
    Pieces,
    Unknown,
    UnmodelledOpWarning,
    apply_shapes,
    attr_path,
    check_fan_in,
    const_macs,
    flatten,
    meta_like,
    meta_of,
    rebuild,
    short,
    tensors_of,
)

__all__ = ["Importer"]


def _distinct(tensors: dict) -> list[tuple[str, Any]]:
    """``(name, tensor)`` of a module's own parameters or buffers, each tensor once (as
    ``named_parameters(recurse=False)`` yields them, without walking the module tree)."""
    seen: set[int] = set()
    out = []
    for name, t in tensors.items():
        if t is not None and id(t) not in seen:
            seen.add(id(t))
            out.append((name, t))
    return out


class Importer:
    def __init__(
        self,
        torch: Any,
        module: Any,
        fx_graph: Any,
        keys: dict,
        shapes: list,
        name: str | None,
        strict: bool,
        modules: dict[str, Any] | None = None,
    ) -> None:
        self.torch, self.module, self.fx, self.shapes = torch, module, fx_graph, shapes
        self.export_keys, self.strict = keys, strict
        self.graph = LayerGraph(name or type(module).__name__)
        self.env: dict[Any, Any] = {}
        self.taken: dict[str, int] = {}
        self.called: set[str] = set()
        self.call_names = call_names(fx_graph)
        self.used: set[str] = set()
        self.unmodelled: list[tuple[str, str]] = []
        self.modules = (  # module path -> module, every path of a shared module
            modules if modules is not None else dict(module.named_modules(remove_duplicate=False))
        )
        self.named: dict[str, Any] = {}
        self.named_buffers: dict[str, Any] = {}
        for prefix, sub in self.modules.items():  # one walk (named_parameters walks again)
            dot = prefix + "." if prefix else ""
            for n, p in sub._parameters.items():
                if p is not None:
                    self.named[dot + n] = p
            for n, b in sub._buffers.items():
                if b is not None:
                    self.named_buffers[dot + n] = b
        self.key_of: dict[int, str] = {}
        for group in (self.named, self.named_buffers):
            for n, t in group.items():
                self.key_of.setdefault(id(t), n)  # a tied tensor is known by its first name
        self.map_arg = torch.fx.node.map_arg
        self.dtype = next(
            (t.dtype for t in self.named.values() if t.is_floating_point()), torch.float32
        )

    # ------------------------------------------------------------------ driver
    def run(self, calls: list) -> LayerGraph:
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
                self.env[node] = Data(
                    self.graph.add_input(self.unique(node.name), shape), tuple(shape)
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
        attrs = self.graph.graph_attrs  # nx.graph, without building the networkx graph
        attrs["unused_parameters"] = sorted(unused)
        attrs["unused_parameter_sizes"] = dict(sorted(unused.items()))
        attrs["unmodelled"] = list(self.unmodelled)
        attrs["modules"] = self._module_outputs(calls)
        if self.unmodelled:
            ops = ", ".join(f"{n} ({op})" for n, op in self.unmodelled[:8])
            more = f" and {len(self.unmodelled) - 8} more" if len(self.unmodelled) > 8 else ""
            warnings.warn(
                f"from_torch: unmodelled op(s), receptive field reported as global: {ops}{more}",
                UnmodelledOpWarning,
                stacklevel=3,
            )
        return self.graph

    def _module_outputs(self, calls: list) -> dict[str, list[str]]:
        """Module path -> the node holding the (first tensor) output of each call."""
        out: dict[str, list[str]] = {}
        fx_node, aggregate = self.torch.fx.Node, self.torch.fx.node.map_aggregate
        for path, value in calls:
            if not path:
                continue
            mapped = (
                self.env.get(value)
                if isinstance(value, fx_node)
                else aggregate(value, self.env.get)
            )
            node = self._first_node(mapped)
            if node is not None:
                out.setdefault(path, []).append(node)
        return out

    def _first_node(self, value: Any) -> str | None:
        if isinstance(value, Data):
            return value.node
        if isinstance(value, Pieces):
            return self.piece(value, 0).node
        items = value.values() if isinstance(value, dict) else value
        if isinstance(items, (tuple, list)) or isinstance(value, dict):
            for v in items:
                found = self._first_node(v)
                if found is not None:
                    return found
        return None

    def _const_named(self, key: str) -> Const:
        tensor = self.named.get(key)
        if tensor is None:
            tensor = self.named_buffers.get(key)
        if tensor is None:
            tensor = attr_path(self.module, key)
        if not isinstance(tensor, self.torch.Tensor):
            return tensor
        key = self.key_of.get(id(tensor), key)
        stored = key in self.named or key in self.named_buffers
        return Const(tensor.to("meta"), {key: tensor.numel()} if stored else {})

    def _call(self, node: Any) -> Any:
        args, kwargs = self.map_arg((node.args, dict(node.kwargs)), self.env.get)
        fname = self._fname(node)
        flat = flatten(args) if not kwargs else flatten((args, kwargs))
        if not any([isinstance(v, (Data, Pieces)) for v in flat]):
            return self._fold(node, args, kwargs, flat)
        try:
            return self._interpret(node, fname, args, kwargs, flat)
        except Unknown as exc:
            return self._opaque(node, str(exc) or fname, args, kwargs)

    def _fname(self, node: Any) -> str:
        target = node.target
        if node.op == "call_module":
            return kind_of(self.modules[target])
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
            read = {
                self.key_of.get(id(p), n): p.numel()
                for n, p in (*sub.named_parameters(), *sub.named_buffers())
            }
            for v in flat:
                if isinstance(v, Const):
                    read.update(v.keys)
            return Const(meta_like(self.torch, value), read, flops // 2 + const_macs(flat))
        metas = self.torch.fx.node.map_aggregate((args, kwargs), meta_of)
        fn = getattr(metas[0][0], node.target) if node.op == "call_method" else node.target
        try:
            value = (
                fn(*metas[0][1:], **metas[1])
                if node.op == "call_method"
                else fn(*metas[0], **metas[1])
            )
        except Exception as exc:
            raise ConvAlgebraError(
                f"{node.op} {node.target} on constants failed: {short(exc)}"
            ) from exc
        if isinstance(value, self.torch.Tensor):
            keys: dict[str, int] = {}
            for v in flat:
                if isinstance(v, Const):
                    keys.update(v.keys)
            return Const(
                value if value.device.type == "meta" else value.to("meta"), keys, const_macs(flat)
            )
        return value

    # ------------------------------------------------------------------ naming
    def unique(self, base: str, sep: str = "#") -> str:
        count = self.taken.get(base, 0)
        while True:
            count += 1
            name = base if count == 1 else f"{base}{sep}{count}"
            if name not in self.graph:
                self.taken[base] = count
                return name

    def name_of(self, node: Any, fname: str) -> str:
        """A module path names the output of the module's last call; its earlier calls are
        ``path#1``, ``path#2``...; an op inside a module is ``<module path>.<op>``."""
        stack = node.meta.get("nn_module_stack") or {}
        key, (scope, cls) = next(reversed(stack.items())) if stack else ("", ("", ""))
        scope = scope if isinstance(scope, str) else ""
        if node.op == "call_module":
            self.called.add(str(node.target))
            return self.unique(self.call_names.get(key, str(node.target)))
        cls = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
        op = fname.removeprefix("aten.").rstrip("_") or node.name
        own = self.call_names.get(key, scope)
        if scope and cls.startswith(("torch.nn.", "torchvision.ops.")) and own not in self.graph:
            return self.unique(own)  # the first op of a library module is the module
        return self.unique(f"{scope}.{op}" if scope else op, "_")

    # ------------------------------------------------------------------ adding nodes
    def add(
        self,
        name: str,
        layer: Layer,
        data: list,
        tensors: dict | None = None,
    ) -> Data:
        """Add a node; it counts the stored tensors it reads (``tensors``), never its layer's
        own parameter count."""
        self.graph.add(name, layer, [d.node for d in data], tensors=tensors or {})
        batches = [d.batch for d in data if isinstance(d, Data)]
        return Data(name, self.graph.shape(name), max(batches) if batches else 1)

    def materialise(self, const: Const, rank: int) -> Data:
        """A constant read by a data op: a parameter node (no receptive field)."""
        shape = tuple(const.meta.shape)
        if len(shape) == rank + 1:
            shape = shape[1:]  # the constant's batch axis (size 1)
        if const.node is None or self.graph.shape(const.node) != shape:
            keys = sorted(const.keys)
            name = self.unique(keys[0] if len(keys) == 1 else "constant")
            self.add(name, Parameter(shape, (), (), const.macs), [], self.reads({"": const}))
            const.node = name
        return Data(name if const.node is None else const.node, shape)

    def reads(self, values: dict[Any, Any]) -> dict[str, tuple[int, bool]]:
        """The stored tensors behind ``values`` (parameters, buffers, or weights computed
        from them): ``{key: (size, learnable)}``."""
        out: dict[str, tuple[int, bool]] = {}
        for v in values.values():
            if isinstance(v, Const):
                out.update((k, (size, k in self.named)) for k, size in v.keys.items())
        self.used.update(out)
        return out

    # ------------------------------------------------------------------ interpretation
    def _interpret(self, node: Any, fname: str, args: tuple, kwargs: dict, flat: list) -> Any:
        if any([isinstance(v, Data) and v.batch != 1 for v in flat]):
            raise Unknown(f"{fname} on a batch axis of size > 1")
        if node.op == "call_module":
            return self._module(node, fname, args, kwargs)
        base = fname.removeprefix("aten.")
        if base == "getitem":
            return self._getitem(node, args[0], args[1])
        x, rest = args[0], args[1:]
        if base in ALIAS or base in ("dropout", "feature_dropout") and node.op == "call_method":
            return x
        handler = handler_for(base)
        if handler is None:
            raise Unknown(f"function {fname}")
        return handler(self, node, fname, x, rest, kwargs)

    def _module(self, node: Any, kind: str, args: tuple, kwargs: dict) -> Any:
        sub = self.modules[node.target]
        x = args[0] if args else next(iter(kwargs.values()))
        if kind in ("PixelShuffle", "PixelUnshuffle") and isinstance(x, Data):
            factor = getattr(sub, "upscale_factor", getattr(sub, "downscale_factor", None))
            return pixel_shuffle_op(self, node, kind, x, (factor,), {})
        if kind == "MultiheadAttention":
            layer = attention_layer(sub, node, args, kwargs)
        else:
            layer = module_layer(sub)
        if layer is None or not isinstance(x, Data):
            raise Unknown(f"module {kind}")
        check_fan_in(str(node.target), kind, x.shape, module_fan_in(sub, kind, x.shape))
        out = self.add(self.name_of(node, kind), layer, [x], self._module_tensors(sub))
        return (out, None) if kind == "MultiheadAttention" else out

    def _module_tensors(self, sub: Any) -> dict[str, tuple[int, bool]]:
        """Every parameter and buffer of a module (parametrisations included), by the key
        the root module knows it by."""
        out = {}
        groups = (
            ((sub.named_parameters(), True), (sub.named_buffers(), False))
            if sub._modules  # a leaf's own tensors are the ones named_parameters yields
            else ((_distinct(sub._parameters), True), (_distinct(sub._buffers), False))
        )
        for group, learnable in groups:
            for pname, p in group:
                key = self.key_of.get(id(p), pname)
                out[key] = (p.numel(), learnable and key in self.named)
        self.used.update(out)
        return out

    def _opaque(self, node: Any, op: str, args: tuple, kwargs: dict) -> Any:
        name = self.name_of(node, self._fname(node))
        if self.strict:
            raise ConvAlgebraError(f"node {shown(name)}: {op} is not modelled (strict=True)")
        value, flops = self._run_fake(node, args, kwargs)
        data = [v for v in flatten((args, kwargs)) if isinstance(v, Data)]
        consts = [v for v in flatten((args, kwargs)) if isinstance(v, Const)]
        read = self.reads(dict(enumerate(consts)))
        if node.op == "call_module":
            read.update(self._module_tensors(self.modules[node.target]))
        self.unmodelled.append((name, op))
        tensors = tensors_of(self.torch, value)
        if not tensors:
            raise ConvAlgebraError(f"node {shown(name)}: {op} returns no tensor")
        outs = []
        for k, t in enumerate(tensors):
            label = name if k == 0 else self.unique(f"{name}.{k}")
            layer = Opaque(
                op=op,
                shape=tuple(t.shape[1:]),
                macs=flops // 2 + const_macs(consts) if k == 0 else 0,
            )
            self.graph.add(label, layer, [d.node for d in data], tensors=read if k == 0 else {})
            outs.append(Data(label, tuple(t.shape[1:]), t.shape[0] if t.dim() else 1))
        return (
            outs[0]
            if isinstance(value, self.torch.Tensor)
            else rebuild(self.torch, value, iter(outs))
        )

    def _run_fake(self, node: Any, args: tuple, kwargs: dict) -> tuple[Any, int]:
        """Run the op alone on meta (or fake) tensors: its outputs and its flop count."""
        from torch.utils.flop_counter import FlopCounterMode

        torch = self.torch

        def meta(v: Any) -> Any:
            if isinstance(v, Data):
                return torch.empty((v.batch, *v.shape), device="meta", dtype=self.dtype)
            if isinstance(v, Pieces):
                return [meta(self.piece(v, i)) for i in range(len(v.bounds))]
            return meta_of(v)

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
                f"of the given shapes: {short(exc)}"
            ) from exc
        return value, int(counter.get_total_flops())

    # ------------------------------------------------------------------ indexing
    def _getitem(self, node: Any, x: Any, index: Any) -> Any:
        if isinstance(x, Pieces):
            return self.piece(x, index)
        if isinstance(x, (tuple, list)):
            return x[index]
        if not isinstance(x, Data):
            raise Unknown("getitem")
        return self._index(node, x, index if isinstance(index, tuple) else (index,))

    def piece(self, p: Pieces, i: int) -> Data:
        i = i % len(p.bounds)
        name = f"{p.name}.{i}"
        if name in self.graph:
            return Data(name, self.graph.shape(name))
        start, stop = p.bounds[i]
        layer = Select(p.dim, start) if p.select else Slice(p.dim, start, stop)
        return self.add(name, layer, [p.src])

    def _index(self, node: Any, x: Data, index: tuple) -> Data:
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
                raise Unknown("indexing the batch axis")
            if isinstance(item, int):
                ops.append(("select", axis - 1, item))
            elif isinstance(item, slice):
                if item != slice(None):
                    ops.append(("slice", axis - 1, item))
            else:
                raise Unknown(f"indexing with {type(item).__name__}")
            axis += 1
        base = self.name_of(node, "getitem")
        out, steps = x, []  # type: tuple[Data, list[Layer]]
        for kind, dim, item in sorted(ops, key=lambda o: (o[0] == "select", -o[1])):
            if kind == "slice":
                steps.append(Slice(dim, item.start or 0, item.stop, item.step or 1))
            else:
                steps.append(Select(dim, item))
        if news:
            shape = list(apply_shapes(out.shape, steps))
            for k in news:
                shape.insert(k - 1, 1)
            steps.append(Reshape(tuple(shape)))
        if not steps:
            return x
        for k, layer in enumerate(steps):
            out = self.add(
                base if k == len(steps) - 1 else self.unique(f"{base}.{k}"), layer, [out]
            )
        return out
