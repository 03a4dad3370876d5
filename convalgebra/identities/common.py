"""Small helpers shared by the identity checks.

Examples
--------
>>> positions(np.array([1, 5]), (2, 3))
((0, 1), (1, 2))
>>> is_symbolic([1, 2]), is_symbolic([__import__("sympy").Symbol("w"), 2])
(False, True)
>>> import sympy
>>> eq(sympy.Symbol("a"), sympy.Symbol("a"))   # not evaluated to True
Eq(a, a)
"""

from __future__ import annotations

import math

import numpy as np

from .. import budget
from ..spec import ConvSpec, plain_array

__all__ = ["positions", "is_symbolic", "is_plain", "require_spec", "eq", "ne", "one_hot"]


def positions(flat, shape: tuple[int, ...]) -> tuple:
    """Flat indices into ``shape`` as a tuple of multi-indices (plain ints)."""
    coords = [c.tolist() for c in np.unravel_index(np.asarray(flat, dtype=np.int64), shape)]
    return tuple(zip(*coords))


def is_symbolic(weight) -> bool:
    """True when ``weight`` holds entries that are not numbers (sympy expressions, names).

    Strings count as symbolic, so that they are read by the one converter
    (:func:`convalgebra.symbolic.exprs.as_expr`), not by numpy's float parser (which also reads
    ``"１"``).
    """
    if isinstance(weight, (str, np.str_)):
        return True
    weight = plain_array(weight)  # a torch tensor, detached
    try:
        if any(isinstance(v, (str, np.str_)) for v in np.asarray(weight, dtype=object).ravel()):
            return True
        np.asarray(weight, dtype=float)
        return False
    except (TypeError, ValueError):
        return True


def is_plain(spec: ConvSpec) -> bool:
    """True for an ordinary convolution: every channel pair shares one spatial pattern."""
    return spec.tile is None and spec.channel_table is None


def require_spec(spec, law: str) -> ConvSpec:
    """``spec`` itself if it is a :class:`ConvSpec`; else a TypeError naming the law."""
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"{law} needs a ConvSpec, got {type(spec).__name__}")
    return spec


def eq(lhs, rhs):
    """``lhs = rhs`` as an unevaluated ``sympy.Eq``: a proof step never collapses to True/False."""
    import sympy

    return sympy.Eq(lhs, rhs, evaluate=False)


def ne(lhs, rhs):
    """``lhs ≠ rhs`` as an unevaluated ``sympy.Ne``."""
    import sympy

    return sympy.Ne(lhs, rhs, evaluate=False)


def one_hot(shape: tuple[int, ...], flat_index: int) -> np.ndarray:
    """An array of ``shape`` holding a single 1 at C-order position ``flat_index``.

    Examples
    --------
    >>> one_hot((2, 2), 3).tolist()
    [[0.0, 0.0], [0.0, 1.0]]
    """
    out = budget.zeros(math.prod(shape))
    out[flat_index] = 1.0
    return out.reshape(shape)
