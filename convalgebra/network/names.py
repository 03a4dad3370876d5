"""Names in a layer graph: printable node names, the short kind of a layer, module scopes.

Examples
--------
>>> from convalgebra.network.layers import AdaptivePool, Conv
>>> layer_label(Conv(4, 3, transposed=True)), layer_label(AdaptivePool(1))
('conv_transpose', 'global_avg_pool')
>>> sorted(scopes(["layer1.0.conv1", "layer1.1.relu#2"]))
['layer1', 'layer1.0', 'layer1.1']
"""

from __future__ import annotations

from typing import Any

from ..errors import ConvAlgebraError, shown
from .layers import AdaptivePool, Layer

__all__ = ["printable_name", "layer_label", "in_scope", "scopes"]


def printable_name(what: str, name: Any) -> Any:
    """A name is printed as it is, in tables, derivations and messages: printable text only,
    so that a newline cannot forge an output line nor an escape drive the terminal."""
    if isinstance(name, str) and not name.isprintable():
        raise ConvAlgebraError(
            f"{what} must be printable text (no newline, tab, escape or other control or "
            f"format character), got {shown(name)}"
        )
    return name


def layer_label(layer: Layer) -> str:
    """Short kind for tables: ``relu``, ``conv_transpose``, ``global_avg_pool``..."""
    if getattr(layer, "transposed", False):
        return "conv_transpose"
    if isinstance(layer, AdaptivePool):
        size = layer.output_size
        scope = (
            "global" if size == 1 or (isinstance(size, tuple) and set(size) == {1}) else "adaptive"
        )
        return f"{scope}_{layer.op}_pool"
    return getattr(layer, "fn", None) or layer.kind


def in_scope(node: str, path: str) -> bool:
    """Whether ``node`` is ``path``'s own node, an earlier call (``path#k``) or inside it."""
    return node == path or node.startswith((path + "#", path + "."))


def scopes(nodes: list[str]) -> set[str]:
    """Every dotted prefix of the node names (the module paths of the scopes)."""
    out: set[str] = set()
    for n in nodes:
        parts = n.split("#")[0].split(".")
        out.update(".".join(parts[:k]) for k in range(1, len(parts)))
    return out
