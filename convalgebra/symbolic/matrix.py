"""Symbolic forms of a convolution: sympy symbols for kernel and input, the symbolic matrix.

The same triple table as the numeric path, with a sympy symbol per weight (and per input).
Symbols follow the textbook: ``w1 … w9`` and ``a1 … a25`` (1-based, row-major) for a
single-channel layer, ``w_{o,i,m,n}`` / ``a_{c,m,n}`` (1-based) when channels are involved.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from .. import budget
from ..budget import DEFAULT_MAX_TERMS, require_symbolic
from ..connectivity import layer_rows_cols, triples
from ..errors import ConvAlgebraError, shown
from ..operators import check_spec
from ..spec import ConvSpec
from .exprs import as_expr_array

__all__ = [
    "weight_symbols",
    "input_symbols",
    "matrix_entries",
    "output_symbols",
    "symbol_array",
    "symbolic_matrix",
    "symbolic_output",
]


def symbol_array(name: str, shape: tuple[int, ...], style: str = "flat") -> np.ndarray:
    """An object array of sympy symbols of ``shape``.

    ``style="flat"`` numbers them ``name1, name2, …`` in C order; ``style="index"`` names them
    ``name_{i,j,…}`` with 1-based indices (the book's convention).

    Examples
    --------
    >>> symbol_array("w", (2, 2)).tolist()
    [[w1, w2], [w3, w4]]
    >>> symbol_array("K", (1, 2), style="index").tolist()
    [[K_{1,1}, K_{1,2}]]
    """
    import sympy

    if style not in ("flat", "index"):
        raise ConvAlgebraError(f"style must be 'flat' or 'index', got {shown(style)}")
    n = math.prod(shape)
    if style == "flat":
        names = [f"{name}{k + 1}" for k in range(n)]
    else:
        names = [f"{name}_{{{','.join(str(i + 1) for i in idx)}}}" for idx in np.ndindex(*shape)]
    out = budget.empty(n, dtype=object)
    out[:] = [sympy.Symbol(s) for s in names]
    return out.reshape(shape)


def _default_style(channels: int) -> str:
    return "flat" if channels == 1 else "index"


def weight_symbols(spec: ConvSpec, name: str = "w", style: str | None = None) -> np.ndarray:
    """Symbols for the kernel, in ``spec.weight_shape`` (PyTorch layout).

    Parameters
    ----------
    spec : ConvSpec
        The layer.
    name : str, default "w"
        The symbols' stem.
    style : {"flat", "index"}, optional
        ``"flat"``: ``w1, w2, ...`` in C order; ``"index"``: ``w_{o,i,r,c}`` (1-based).
        Default: flat for one channel pair, indexed otherwise.

    Returns
    -------
    numpy.ndarray of sympy.Symbol
        Shape ``spec.weight_shape``, dtype object.

    Examples
    --------
    >>> weight_symbols(ConvSpec((1, 3, 3), 1, 2)).tolist()
    [[[[w1, w2], [w3, w4]]]]
    >>> weight_symbols(ConvSpec((1, 3, 3), 1, 2), "k", style="index")[0, 0, 1].tolist()
    [k_{1,1,2,1}, k_{1,1,2,2}]
    """
    shape = spec.weight_shape
    channel_pairs = math.prod(shape[: len(shape) - spec.ndim])
    return symbol_array(name, shape, style or _default_style(channel_pairs))


def input_symbols(spec: ConvSpec, name: str = "a", style: str | None = None) -> np.ndarray:
    """Symbols for the input, in ``spec.input_shape``.

    Parameters
    ----------
    spec : ConvSpec
        The layer.
    name : str, default "a"
        The symbols' stem.
    style : {"flat", "index"}, optional
        ``"flat"``: ``a1, a2, ...`` in C order; ``"index"``: ``a_{c,r,col}`` (1-based).
        Default: flat for one input channel, indexed otherwise.

    Returns
    -------
    numpy.ndarray of sympy.Symbol
        Shape ``spec.input_shape``, dtype object.

    Examples
    --------
    >>> input_symbols(ConvSpec((1, 2, 2), 1, 1)).ravel().tolist()
    [a1, a2, a3, a4]
    """
    return symbol_array(name, spec.input_shape, style or _default_style(spec.in_channels))


def output_symbols(spec: ConvSpec, name: str = "z", style: str | None = None) -> np.ndarray:
    """Symbols for the output (e.g. ``z1 … z4``), in ``spec.output_shape``."""
    return symbol_array(name, spec.output_shape, style or _default_style(spec.out_channels))


def _as_object(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Numbers, sympy expressions or names (never parsed as code): see :mod:`convalgebra.symbolic.exprs`."""
    return as_expr_array(value, shape, name)


def matrix_entries(
    spec: ConvSpec,
    weight: Any = None,
    rows: list[int] | None = None,
    cols: list[int] | None = None,
) -> dict[tuple[int, int], Any]:
    """``{(row, col): entry}`` of the layer's matrix, optionally for some rows and columns only.

    Each entry is the sum of the weights of the triples landing on it; only the triple-table
    rows the selection needs are built, so a few displayed rows of a large layer stay cheap.
    Entries that cancel to zero are left out.

    Parameters
    ----------
    spec : ConvSpec
    weight : array_like of sympy expressions or numbers, optional
        Defaults to :func:`weight_symbols` (``w1, w2, …``).
    rows, cols : list of int, optional
        Matrix rows and columns to keep (default: all).

    Examples
    --------
    >>> matrix_entries(ConvSpec((1, 3), 1, 2, bias=False), rows=[1])
    {(1, 1): w1, (1, 2): w2}
    """
    flat = (weight_symbols(spec) if weight is None else np.asarray(weight, dtype=object)).ravel()
    needed = cols if spec.transposed else rows
    chunks = [None] if needed is None else _runs(sorted(set(needed)))
    entries: dict[tuple[int, int], Any] = defaultdict(int)
    for chunk in chunks:
        t = triples(spec) if chunk is None else triples(spec, slice(*chunk))
        r, c = layer_rows_cols(spec, t)
        keep = np.ones(len(r), dtype=bool)
        if rows is not None:
            keep &= np.isin(r, rows)
        if cols is not None:
            keep &= np.isin(c, cols)
        for i, j, k in zip(r[keep].tolist(), c[keep].tolist(), t.weight_index[keep].tolist()):
            entries[i, j] += flat[k]
    return {key: value for key, value in entries.items() if value != 0}


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs ``[start, stop)`` of sorted integers."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1]:
            runs[-1][1] = v + 1
        else:
            runs.append([v, v + 1])
    return [(a, b) for a, b in runs]


def symbolic_matrix(spec: ConvSpec, weight: Any = None, *, max_terms: int = DEFAULT_MAX_TERMS):
    """The layer's matrix with symbolic entries, as an immutable sympy sparse matrix.

    Parameters
    ----------
    spec : ConvSpec
        The layer.
    weight : array_like of sympy expressions, numbers or names, optional
        Defaults to :func:`weight_symbols` (``w1, w2, …``). A string entry is read only as a
        number or an identifier (:func:`convalgebra.symbolic.exprs.as_expr`), never evaluated.
    max_terms : int, default 50,000
        Refuse, before building anything, layers with more products or symbols than this.

    Returns
    -------
    sympy.ImmutableSparseMatrix
        Shape ``(prod(spec.output_shape), prod(spec.input_shape))``, entry ``(o, i)`` the sum
        of the weights through which output ``o`` reads input ``i``.

    Examples
    --------
    >>> symbolic_matrix(ConvSpec((1, 4), 1, 2))
    Matrix([
    [w1, w2,  0,  0],
    [ 0, w1, w2,  0],
    [ 0,  0, w1, w2]])
    """
    import sympy

    require_symbolic(check_spec(spec), "the symbolic matrix", max_terms)
    w = weight_symbols(spec) if weight is None else _as_object(weight, spec.weight_shape, "weight")
    shape = (math.prod(spec.output_shape), math.prod(spec.input_shape))
    return sympy.ImmutableSparseMatrix(*shape, matrix_entries(spec, w))


def symbolic_output(
    spec: ConvSpec, weight: Any = None, x: Any = None, *, max_terms: int = DEFAULT_MAX_TERMS
) -> np.ndarray:
    """Each output as a sum of products, in ``spec.output_shape`` (computed in O(nnz)).

    ``weight`` and ``x`` take numbers, sympy expressions or names (see
    :func:`symbolic_matrix`); layers over ``max_terms`` products or symbols are refused.

    Examples
    --------
    >>> symbolic_output(ConvSpec((1, 3), 1, 2)).tolist()
    [[a1*w1 + a2*w2, a2*w1 + a3*w2]]
    """
    require_symbolic(check_spec(spec), "the symbolic output", max_terms)
    w = weight_symbols(spec) if weight is None else _as_object(weight, spec.weight_shape, "weight")
    a = input_symbols(spec) if x is None else _as_object(x, spec.input_shape, "x")
    flat_a = a.ravel()
    sums: list[Any] = [0] * math.prod(spec.output_shape)
    for (r, c), entry in matrix_entries(spec, w).items():
        sums[r] += entry * flat_a[c]
    out = np.empty(len(sums), dtype=object)
    out[:] = sums
    return out.reshape(spec.output_shape)
