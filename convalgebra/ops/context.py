"""What one lowering needs: the size, the symbols of the kernels, where each signal sits.

A :class:`Context` is made per concrete size: it numbers the kernel symbols of both sides of an
identity (one block of ids per kernel name), places every signal in one source vector (sorted by
name), and caches each node's table so that a shared sub-expression is lowered once.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConvAlgebraError
from .terms import DEFAULT_MAX_TERMS, Monomials

__all__ = ["Context", "SymbolTable"]


class SymbolTable:
    """Kernel names to blocks of symbol ids; the monomial keys sized for them.

    Examples
    --------
    >>> t = SymbolTable({"v": (1, 1, 2), "w": (1, 1, 3)}, max_degree=2)
    >>> t.offsets, t.names()
    ({'v': 0, 'w': 2}, ['v1', 'v2', 'w1', 'w2', 'w3'])
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], max_degree: int) -> None:
        self.shapes = dict(sorted(shapes.items()))
        self.offsets: dict[str, int] = {}
        total = 0
        for name, shape in self.shapes.items():
            self.offsets[name] = total
            total += math.prod(shape)
        self.n_symbols = total
        self.monomials = Monomials(total, max_degree)

    def names(self) -> list[str]:
        """Printed name of every symbol: the kernel's name and the 1-based flat entry."""
        return [f"{name}{i + 1}" for name, s in self.shapes.items() for i in range(math.prod(s))]


class Context:
    """One concrete size: ``n`` per spatial axis of every signal that no adjoint binds.

    ``channels`` maps every signal name to its channel count; ``bindings`` maps a signal bound
    by ``adjoint(expr, y)`` to ``expr``, whose output shape is then the signal's shape. Every
    signal is placed in one source vector, sorted by name (:meth:`source`).
    """

    def __init__(
        self,
        n: tuple[int, ...],
        symbols: SymbolTable,
        channels: dict[str, int],
        bindings: dict[str, Any] | None = None,
        max_terms: int = DEFAULT_MAX_TERMS,
    ) -> None:
        self.n = tuple(n)
        self.symbols = symbols
        self.monomials = symbols.monomials
        self.max_terms = max_terms
        self.bindings = dict(bindings or {})
        self.shapes: dict[Any, Any] = {}
        self.cache: dict[Any, Any] = {}
        self.signal_shapes: dict[str, tuple[int, ...]] = {
            name: (c, *self.n) for name, c in channels.items() if name not in self.bindings
        }
        for name in sorted(set(channels) & set(self.bindings)):  # bound: the expression's shape
            shape = tuple(self.bindings[name].shape(self))
            if shape[0] != channels[name]:
                raise ConvAlgebraError(
                    f"signal {name!r} has {channels[name]} channels, but the expression "
                    f"its adjoint acts on has {shape[0]}"
                )
            self.signal_shapes[name] = shape
        self.signal_shapes = dict(sorted(self.signal_shapes.items()))
        self.offsets: dict[str, int] = {}
        total = 0
        for name, shape in self.signal_shapes.items():
            self.offsets[name] = total
            total += math.prod(shape)
        if total > max_terms:
            raise ConvAlgebraError(
                f"at size {self.n} the signals hold {total:,} entries, over max_terms="
                f"{max_terms:,}; prove at smaller sizes or raise max_terms="
            )
        self.n_src = total

    def source(self, name: str) -> tuple[int, tuple[int, ...]]:
        """``(offset, shape)`` of a signal in the source vector."""
        if name not in self.offsets:
            raise ConvAlgebraError(f"signal {name!r} has no size in this identity")
        return self.offsets[name], self.signal_shapes[name]

    def memo(self, table: dict[Any, Any], node: Any, build: Any, tag: str = "") -> Any:
        """``build()`` once per node (and ``tag``) and size; the node is kept alive with it."""
        key = (id(node), tag)
        if key not in table:
            table[key] = (node, build())
        return table[key][1]
