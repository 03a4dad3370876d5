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

from collections.abc import Sequence
from typing import Any

from ...errors import require
from ...network.graph import LayerGraph
from .importer import Importer
from .tracing import input_shapes, trace
from .values import UnmodelledOpWarning

__all__ = ["from_torch", "UnmodelledOpWarning"]


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
        ``(C, *spatial)`` of each input, no batch axis.
    name : str, optional
        The graph's name (default: the module's class name).
    strict : bool
        Raise on an unmodelled op instead of flagging it (``opaque``) with a warning.

    Returns
    -------
    LayerGraph
        A module path names the module's output (of its last call): a module called ``n``
        times gives nodes ``path#1`` ... ``path#(n-1)`` and ``path``; an op inside a module is
        ``<path>.<op>`` (``layer1.0.add``); any module path, a container's too (``layer3``,
        ``features.7``), resolves to its output node (``graph.resolve``, and every query
        taking a node), and ``graph.nodes_of(path)`` lists what it produced. Every node
        counts the stored tensors it reads (parameters and buffers, each once, computed
        weights included), so ``param_count(graph) == sum(p.numel() for p in
        module.parameters())`` when every parameter is used; unused ones are listed by
        ``graph.unused_parameters()``.

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
    shapes = input_shapes(input_shape)
    modes = {m: m.training for m in module.modules()}
    if any(modes.values()):
        module.eval()
    try:
        graph, route, keys, calls = trace(torch, module, shapes)
        result = Importer(torch, module, graph, keys, shapes, name, strict).run(calls)
    finally:
        for m, flag in modes.items():
            if flag:
                m.training = flag
    result.nx.graph["route"] = route
    return result
