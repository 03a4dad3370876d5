"""Display rules shared by every document: which rows and columns of a large array are shown.

Past ``max_rows``/``max_cols`` an array is cut as textbooks do: the first ``max - 1`` rows
(columns), an ellipsis, and the last one; :func:`truncation_rule` states the cut in words.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..errors import ConvAlgebraError, shown
from ..symbolic.exprs import as_expr
from .model import Expr, Grid
from .printing import number, sympy_expr

__all__ = ["pick", "display_limit", "truncation_rule", "array_grid"]


def pick(n: int, limit: int) -> list[int | None]:
    """Indices to display out of ``n``: all when ``n <= limit``, else first ``limit - 1``, ``None``, last.

    Examples
    --------
    >>> pick(4, 6), pick(10, 4)
    ([0, 1, 2, 3], [0, 1, 2, None, 9])
    """
    limit = display_limit("display limit", limit)
    if n <= limit:
        return list(range(n))
    return list(range(limit - 1)) + [None, n - 1]


def display_limit(name: str, value: Any) -> int:
    """``value`` as a display limit (``max_rows``, ``max_cols``): an integer of at least 2.

    Examples
    --------
    >>> display_limit("max_rows", 5)
    5
    >>> display_limit("max_rows", "3")
    Traceback (most recent call last):
    ...
    TypeError: max_rows must be an integer of at least 2, got '3'
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer of at least 2, got {shown(value)}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer of at least 2, got {shown(value)}") from None
    if number < 2:
        raise ConvAlgebraError(f"{name} must be at least 2, got {shown(value)}")
    return number


def truncation_rule(n_rows: int, n_cols: int, max_rows: int, max_cols: int) -> str:
    """The sentence that states how a display was truncated ("" when nothing was elided)."""
    parts = []
    if n_rows > max_rows:
        parts.append(f"the first {max_rows - 1} and the last of its {n_rows:,} rows")
    if n_cols > max_cols:
        parts.append(f"the first {max_cols - 1} and the last of its {n_cols:,} columns")
    if not parts:
        return ""
    return (
        "Truncated (displays are limited to max_rows={} by max_cols={}): shown are {}; "
        "every elided entry follows the same index formula."
    ).format(max_rows, max_cols, " and ".join(parts))


def array_grid(value: Any, max_rows: int = 12, max_cols: int = 12) -> tuple[Grid, str]:
    """A numeric or symbolic array as a :class:`Grid` (2-D view ``(-1, last axis)``) and its truncation rule."""
    import sympy

    array = np.asarray(value, dtype=object)
    matrix = array.reshape(1, -1) if array.ndim <= 1 else array.reshape(-1, array.shape[-1])
    rows, cols = pick(matrix.shape[0], max_rows), pick(matrix.shape[1], max_cols)

    def cell(v: Any) -> Expr:
        v = sympy.nsimplify(v) if isinstance(v, (float, np.floating)) else as_expr(v, "value")
        return number(v) if v.is_number else sympy_expr(v)

    cells = tuple(
        tuple(
            ("d" if j is None else "v") if i is None else ("h" if j is None else cell(matrix[i, j]))
            for j in cols
        )
        for i in rows
    )
    full = None not in rows and None not in cols
    grid_value = (
        sympy.Matrix([[getattr(c, "value", None) for c in row] for row in cells]) if full else None
    )
    grid = Grid(cells, grid_value, rows=tuple(rows), cols=tuple(cols))
    return grid, truncation_rule(*matrix.shape, max_rows, max_cols)
