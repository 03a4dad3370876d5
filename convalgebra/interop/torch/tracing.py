"""Tracing: ``torch.fx`` (recording every module call and the value it returns), else
``torch.export`` at the input shape; the node name of each module call."""

from __future__ import annotations

from typing import Any

from ...budget import require_array
from ...errors import ConvAlgebraError
from .values import short

__all__ = [
    "input_shapes",
    "example_inputs",
    "recording_tracer",
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
    """An fx tracer that records every module call (leaf or not) and the value it returns."""

    class Recorder(torch.fx.Tracer):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[str, Any]] = []

        def call_module(self, m: Any, forward: Any, args: Any, kwargs: Any) -> Any:
            out = super().call_module(m, forward, args, kwargs)
            try:
                path = self.path_of_module(m)
            except NameError:  # a module outside the hierarchy
                return out
            nodes = torch.fx.node.map_aggregate(
                out, lambda v: v.node if isinstance(v, torch.fx.Proxy) else v
            )
            self.calls.append((path, nodes))
            return out

    return Recorder()


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
    for node in fx_graph.nodes:
        for key, entry in (node.meta.get("nn_module_stack") or {}).items():
            path = entry[0] if isinstance(entry[0], str) else ""
            if key not in keys.setdefault(path, []):
                keys[path].append(key)
    return {
        key: path if k == len(calls) else f"{path}#{k}"
        for path, calls in keys.items()
        for k, key in enumerate(calls, start=1)
    }
