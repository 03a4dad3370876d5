"""Tracing: ``torch.fx`` (recording every module call and the value it returns), else
``torch.export`` at the input shape; the node name of each module call."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ...budget import require_array
from ...errors import ConvAlgebraError
from .values import short

__all__ = [
    "input_shapes",
    "example_inputs",
    "recording_tracer",
    "recorder_class",
    "stack_calls",
    "trace",
    "call_names",
]


def input_shapes(input_shape: Any) -> list[tuple[int, ...]]:
    if (
        isinstance(input_shape, (tuple, list))
        and input_shape
        and all(isinstance(v, (tuple, list)) for v in input_shape)
    ):
        return [tuple(s) for s in input_shape]
    return [tuple(input_shape)]


def example_inputs(torch: Any, module: Any, shapes: list) -> tuple:
    tensors = [*module.parameters(), *module.buffers()]
    device = tensors[0].device if tensors else "cpu"
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    for s in shapes:
        require_array(f"the example input of shape {(1, *s)}", (1, *s), dtype.itemsize)
    return tuple(torch.zeros((1, *s), device=device, dtype=dtype) for s in shapes)


def recording_tracer(torch: Any) -> Any:
    """An fx tracer that records every module call (leaf or not) and the value it returns
    (a new one per trace: a tracer holds the graph it builds; see :func:`recorder_class`)."""
    return recorder_class(torch)()


@lru_cache(maxsize=1)
def recorder_class(torch: Any) -> Any:
    """The class of :func:`recording_tracer`'s tracers (made once per torch module).

    Its tracers build the graph torch's own ``Tracer`` builds (same nodes, names and
    metadata), with shorter paths for what every node goes through: plain arguments
    (proxies, numbers, strings, tuples, lists and string-keyed dicts of them) are lowered
    without the checks for parameters, modules and constants they cannot be; a node's
    arguments are set after it is made (skipping the search for symbolic sizes, which
    symbolic tracing never makes); the module stack is copied with its own ``copy()``; the
    scope is saved and restored without copying the scope object; a submodule read as an
    attribute is returned without looking for it among the parameters and buffers.
    Anything else (a preserved node meta, stack traces, mutation checks, other argument
    types) takes torch's path. ``tests/test_from_torch_forms.py`` holds the graphs equal.
    """
    from torch.fx import Proxy
    from torch.fx import traceback as fx_traceback

    plain = frozenset({int, float, bool, str, type(None)})

    class Recorder(torch.fx.Tracer):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[str, Any]] = []

        def create_arg(self, a: Any) -> Any:
            kind = type(a)
            if kind is Proxy:
                return a.node
            if kind in plain:
                return a
            if kind is tuple:
                return tuple([self.create_arg(v) for v in a])
            if kind is list:
                return [self.create_arg(v) for v in a]
            if kind is dict and all(type(k) is str for k in a):
                return {k: self.create_arg(v) for k, v in a.items()}
            return super().create_arg(a)

        def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
            if isinstance(attr_val, torch.nn.Module):  # a submodule: no proxy to make
                return attr_val
            return super().getattr(attr, attr_val, parameter_proxy_cache)

        def create_node(
            self,
            kind: str,
            target: Any,
            args: Any,
            kwargs: Any,
            name: str | None = None,
            type_expr: Any = None,
        ) -> Any:
            if (
                (kind == "call_function" and self.check_mutable_operations)
                or self.record_stack_traces
                or fx_traceback.has_preserved_node_meta()
            ):
                return super().create_node(kind, target, args, kwargs, name, type_expr)
            # the arguments are set after creation: Graph.create_node would walk them
            # looking for symbolic sizes, which symbolic tracing never produces (only proxies)
            node = self.graph.create_node(kind, target, (), None, name, type_expr)
            if args:
                node.args = args
            if kwargs:
                node.kwargs = kwargs
            self.node_name_to_scope[node.name] = (self.scope.module_path, self.scope.module_type)
            if self.module_stack:
                node.meta["nn_module_stack"] = self.module_stack.copy()
            return node

        def call_module(self, m: Any, forward: Any, args: Any, kwargs: Any) -> Any:
            path = self.path_of_module(m)
            scope = self.scope
            saved = scope.module_path, scope.module_type
            scope.module_path, scope.module_type = path, type(m)
            try:  # as torch's Tracer.call_module, which restores the scope on the way out
                calls = self.num_calls.get(path, 0)
                key = f"{path}@{calls}" if calls > 0 else path
                self.module_stack[key] = (path, type(m))
                self.num_calls[path] = calls + 1
                if self.is_leaf_module(m, path):
                    out = self.create_proxy("call_module", path, args, kwargs)
                else:
                    out = forward(*args, **kwargs)
                popped, _ = self.module_stack.popitem(last=True)
                if popped != key:
                    raise AssertionError(f"unexpected module stack key {popped}, not {key}")
            finally:
                scope.module_path, scope.module_type = saved
            nodes = (
                out.node
                if type(out) is Proxy
                else torch.fx.node.map_aggregate(
                    out, lambda v: v.node if isinstance(v, torch.fx.Proxy) else v
                )
            )
            self.calls.append((path, nodes))
            return out

    return Recorder


def stack_calls(fx_graph: Any) -> list[tuple[str, Any]]:
    """Module calls read from the ``nn_module_stack`` of the nodes (the export route): the
    output of a call is its last node read outside the call."""
    members: dict[str, list] = {}
    paths: dict[str, str] = {}
    for node in fx_graph.nodes:
        for key, entry in (node.meta.get("nn_module_stack") or {}).items():
            members.setdefault(key, []).append(node)
            paths[key] = entry[0] if isinstance(entry[0], str) else str(entry[0])
    calls = []
    for key, nodes in members.items():
        inside = set(nodes)
        out = [n for n in nodes if any(u not in inside for u in n.users)]
        if out:
            calls.append((out[-1], paths[key]))
    order = {n: k for k, n in enumerate(fx_graph.nodes)}
    return [(path, node) for node, path in sorted(calls, key=lambda c: order[c[0]])]


def trace(torch: Any, module: Any, shapes: list) -> tuple[Any, str, dict, list]:
    """``(fx graph, route, placeholder -> parameter name, module calls)`` by fx, else by
    torch.export; each module call is ``(module path, the fx node(s) it returns)``."""
    try:
        tracer = recording_tracer(torch)
        return tracer.trace(module), "torch.fx", {}, tracer.calls
    except Exception as fx_exc:  # fx raises many kinds; the export route decides
        try:
            program = torch.export.export(
                module, example_inputs(torch, module, shapes), strict=False
            )
        except Exception as exc:
            raise ConvAlgebraError(
                f"could not trace {type(module).__name__}: torch.fx: {short(fx_exc)}; "
                f"torch.export at input {shapes}: {short(exc)} (data-dependent control flow "
                f"cannot be analysed at one input shape)"
            ) from exc
        sig = program.graph_signature
        keys = {
            **sig.inputs_to_parameters,
            **sig.inputs_to_buffers,
            **getattr(sig, "inputs_to_lifted_tensor_constants", {}),
        }
        graph = program.graph_module.graph
        return graph, "torch.export", keys, stack_calls(graph)


def call_names(fx_graph: Any) -> dict[str, str]:
    """``nn_module_stack`` key of each module call -> its node name: the module path for
    the last call, ``path#k`` for the k-th of the earlier ones."""
    keys: dict[str, list[str]] = {}
    seen: set[str] = set()  # a key names one call of one module path
    for node in fx_graph.nodes:
        for key, entry in (node.meta.get("nn_module_stack") or {}).items():
            if key in seen:
                continue
            seen.add(key)
            keys.setdefault(entry[0] if isinstance(entry[0], str) else "", []).append(key)
    return {
        key: path if k == len(calls) else f"{path}#{k}"
        for path, calls in keys.items()
        for k, key in enumerate(calls, start=1)
    }
