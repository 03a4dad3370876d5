"""Structure recognition: Toeplitz, circulant and their (doubly) block versions.

A matrix whose rows and columns are multi-indices ``(r_1, …, r_L)`` and ``(c_1, …, c_L)`` is
*multilevel structured* when each entry depends, level by level, only on

* ``(r_l, c_l)`` -- a free level (e.g. channels),
* ``c_l - r_l`` -- a Toeplitz level,
* ``(c_l - r_l) mod n_l`` -- a circulant level.

A 2-D stride-1 convolution of one channel is two Toeplitz levels (doubly block Toeplitz) with
zero padding, two circulant levels (doubly block circulant) with circular padding. The check
groups the non-zeros by their key and runs in O(nnz log nnz), never densifying.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .budget import triple_count
from .errors import ConvAlgebraError, shown
from .spec import ConvSpec

__all__ = [
    "StructureReport",
    "is_multilevel",
    "is_toeplitz",
    "is_circulant",
    "is_block_toeplitz",
    "is_block_circulant",
    "matrix_structure",
    "structure_probe",
    "STRUCTURE_BUDGET",
]

#: Largest layer (in triples) whose own matrix :func:`structure_probe` keeps.
STRUCTURE_BUDGET = 1_000_000

KINDS = ("free", "toeplitz", "circulant")


def _diag_count(diff: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """Number of (r, c) with c - r == diff, 0 <= r < n_rows, 0 <= c < n_cols."""
    lo = np.maximum(0, -diff)
    hi = np.minimum(n_rows, n_cols - diff)
    return np.maximum(0, hi - lo)


def is_multilevel(
    matrix, row_shape: Sequence[int], col_shape: Sequence[int], kinds: Sequence[str]
) -> bool:
    """True when ``matrix`` has the given kind at every level (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> is_multilevel(np.array([[1, 2, 0], [0, 1, 2]]), (2,), (3,), ("toeplitz",))
    True
    >>> is_multilevel(np.array([[1, 2], [2, 1]]), (2,), (2,), ("circulant",))
    True
    """
    m = sp.coo_array(matrix)
    row_shape, col_shape, kinds = tuple(row_shape), tuple(col_shape), tuple(kinds)
    if not len(row_shape) == len(col_shape) == len(kinds):
        raise ConvAlgebraError("row_shape, col_shape and kinds need one entry per level")
    if bad := [k for k in kinds if k not in KINDS]:
        raise ConvAlgebraError(f"kinds must be among {KINDS}, got {shown(bad)}")
    if m.shape != (math.prod(row_shape), math.prod(col_shape)):
        raise ConvAlgebraError(
            f"matrix shape {m.shape} does not match levels {row_shape} x {col_shape}"
        )
    m.sum_duplicates()
    keep = m.data != 0
    rows = np.unravel_index(m.row[keep], row_shape)
    cols = np.unravel_index(m.col[keep], col_shape)
    data = m.data[keep]
    keys, expected = [], np.ones(data.size, dtype=np.int64)
    for r, c, kind, nr, nc in zip(rows, cols, kinds, row_shape, col_shape):
        if kind == "free":
            keys += [r, c]
        elif kind == "toeplitz":
            keys.append(c - r)
            expected *= _diag_count(c - r, nr, nc)
        else:
            if nr != nc:
                return False
            keys.append(np.mod(c - r, nc))
            expected *= nr
    if data.size == 0:
        return True
    key = np.ravel_multi_index(
        tuple(k - k.min() for k in keys), tuple(int(k.max() - k.min()) + 1 for k in keys)
    )
    order = np.argsort(key, kind="stable")
    key, data, expected = key[order], data[order], expected[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, key.size])
    same = np.all(data == np.repeat(data[starts], counts))
    return bool(same and np.array_equal(counts, expected[starts]))


def is_toeplitz(matrix) -> bool:
    """Constant along every diagonal (and no partial diagonals).

    Parameters
    ----------
    matrix : array_like or sparse array
        A 2-D matrix.

    Returns
    -------
    bool
        Whether every entry equals the one up and to the left of it.

    Examples
    --------
    >>> import numpy as np
    >>> is_toeplitz(np.array([[1, 2, 0], [3, 1, 2]])), is_toeplitz(np.diag([1, 2]))
    (True, False)
    """
    shape = sp.coo_array(matrix).shape
    return is_multilevel(matrix, shape[:1], shape[1:], ("toeplitz",))


def is_circulant(matrix) -> bool:
    """Square, each row the previous one shifted right by one (wrapping).

    Parameters
    ----------
    matrix : array_like or sparse array
        A 2-D matrix.

    Returns
    -------
    bool
        Whether it is circulant.

    Examples
    --------
    >>> import numpy as np
    >>> is_circulant(np.array([[1, 2, 3], [3, 1, 2], [2, 3, 1]]))
    True
    """
    shape = sp.coo_array(matrix).shape
    return is_multilevel(matrix, shape[:1], shape[1:], ("circulant",))


def is_block_toeplitz(matrix, block_shape: tuple[int, int], inner: str = "toeplitz") -> bool:
    """Block Toeplitz with blocks of ``block_shape``; each block of kind ``inner``.

    ``inner="toeplitz"`` is *doubly block Toeplitz*; ``inner="free"`` allows any blocks.

    Parameters
    ----------
    matrix : array_like or sparse array
        A 2-D matrix.
    block_shape : tuple of (int, int)
        The shape of one block; must tile the matrix.
    inner : {"toeplitz", "circulant", "free"}
        What each block must be.

    Returns
    -------
    bool
        Whether the blocks are constant along every block diagonal, each of kind ``inner``.

    Raises
    ------
    ConvAlgebraError
        ``block_shape`` does not tile the matrix.

    Examples
    --------
    The matrix of a 2-D convolution with zero padding, one block per image row:

    >>> import numpy as np
    >>> from convalgebra import ConvSpec, conv_matrix
    >>> w = np.arange(1, 10).reshape(1, 1, 3, 3)
    >>> m = conv_matrix(ConvSpec((1, 3, 3), 1, 3, padding=1), w)
    >>> is_block_toeplitz(m, (3, 3)), is_block_circulant(m, (3, 3))
    (True, False)
    """
    return _two_level(matrix, block_shape, "toeplitz", inner)


def is_block_circulant(matrix, block_shape: tuple[int, int], inner: str = "circulant") -> bool:
    """Block circulant with blocks of ``block_shape``; each block of kind ``inner``.

    ``inner="circulant"`` is *doubly block circulant*; ``inner="free"`` allows any blocks.

    Parameters
    ----------
    matrix : array_like or sparse array
        A 2-D matrix.
    block_shape : tuple of (int, int)
        The shape of one block; must tile the matrix.
    inner : {"circulant", "toeplitz", "free"}
        What each block must be.

    Returns
    -------
    bool
        Whether each block row is the previous one shifted right by one block (wrapping),
        each block of kind ``inner``.

    Raises
    ------
    ConvAlgebraError
        ``block_shape`` does not tile the matrix.

    Examples
    --------
    The matrix of a 2-D circular convolution, one block per image row; with zero padding
    instead the blocks do not wrap:

    >>> import numpy as np
    >>> from convalgebra import ConvSpec, conv_matrix
    >>> w = np.arange(1, 10).reshape(1, 1, 3, 3)
    >>> m = conv_matrix(ConvSpec((1, 3, 3), 1, 3, padding=1, padding_mode="circular"), w)
    >>> z = conv_matrix(ConvSpec((1, 3, 3), 1, 3, padding=1), w)
    >>> is_block_circulant(m, (3, 3)), is_block_circulant(z, (3, 3))
    (True, False)
    """
    return _two_level(matrix, block_shape, "circulant", inner)


def _two_level(matrix, block_shape, outer: str, inner: str) -> bool:
    shape = sp.coo_array(matrix).shape
    bh, bw = block_shape
    if bh < 1 or bw < 1 or shape[0] % bh or shape[1] % bw:
        raise ConvAlgebraError(f"block_shape {block_shape} does not tile a matrix of shape {shape}")
    return is_multilevel(matrix, (shape[0] // bh, bh), (shape[1] // bw, bw), (outer, inner))


@dataclass(frozen=True)
class StructureReport:
    """The structure of a layer's matrix, level by level.

    Attributes
    ----------
    levels : tuple of (name, rows, cols, kind)
        One entry per level: channels first, then each spatial axis.
    name : str
        The textbook name, e.g. ``"doubly block Toeplitz"``.
    """

    levels: tuple[tuple[str, int, int, str], ...]
    name: str

    def __str__(self) -> str:
        parts = ", ".join(f"{n}: {r}x{c} {k}" for n, r, c, k in self.levels)
        return f"{self.name} ({parts})"


_NAMES = {
    (1, "toeplitz"): "Toeplitz",
    (1, "circulant"): "circulant",
    (2, "toeplitz"): "doubly block Toeplitz",
    (2, "circulant"): "doubly block circulant",
    (3, "toeplitz"): "triply block Toeplitz",
    (3, "circulant"): "triply block circulant",
}


def matrix_structure(spec: ConvSpec, weight=None) -> StructureReport:
    """Recognise the structure of a layer's matrix (for a given or a generic weight).

    Each spatial level is tested as circulant, then Toeplitz; channels are a free level
    (block diagonal with ``groups``). With ``weight=None`` a generic weight (distinct
    entries) is used, so the answer is the structure every weight shares.

    Parameters
    ----------
    spec : ConvSpec
        The layer.
    weight : array_like of shape ``spec.weight_shape``, optional
        Test this weight's matrix; default a generic one.

    Returns
    -------
    StructureReport
        ``levels`` (name, rows, columns and kind of each level) and ``name``, the textbook
        name (``"doubly block Toeplitz"``, ``"general (strided)"``, ...); ``str()`` gives both.

    Examples
    --------
    >>> str(matrix_structure(ConvSpec((1, 4, 4), 1, 3, padding=1, padding_mode="circular")))
    'doubly block circulant (channels: 1x1 free, axis 0: 4x4 circulant, axis 1: 4x4 circulant)'
    >>> matrix_structure(ConvSpec((1, 6), 1, 3, stride=2)).name
    'general (strided)'
    """
    from .operators import conv_matrix

    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    if weight is None:
        weight = np.arange(1, math.prod(spec.weight_shape) + 1, dtype=np.float64).reshape(
            spec.weight_shape
        )
    matrix = conv_matrix(spec, weight)
    out_sp, in_sp = spec.output_shape[1:], spec.input_shape[1:]
    row_shape = (spec.output_shape[0], *out_sp)
    col_shape = (spec.input_shape[0], *in_sp)
    kinds = ["free"]
    for axis in range(spec.ndim):
        for kind in ("circulant", "toeplitz", "free"):
            trial = kinds + [kind] + ["free"] * (spec.ndim - axis - 1)
            if kind == "free" or is_multilevel(matrix, row_shape, col_shape, trial):
                kinds.append(kind)
                break
    names = ["channels"] + [f"axis {a}" for a in range(spec.ndim)]
    levels = tuple(zip(names, row_shape, col_shape, kinds))
    spatial = set(kinds[1:])
    if len(spatial) == 1 and spatial != {"free"}:
        name = _NAMES.get((spec.ndim, kinds[1]), f"{spec.ndim}-level {kinds[1]}")
    elif spatial == {"free"} and (max(spec.stride) > 1 or spec.transposed):
        name = "general (strided)"
    else:
        name = "mixed" if spatial - {"free"} else "general"
    if spec.in_channels * spec.out_channels > 1 and name not in ("general", "general (strided)"):
        name = f"block matrix of {name} blocks"
    return StructureReport(levels, name)


def structure_probe(spec: ConvSpec) -> ConvSpec:
    """``spec`` itself, or the same configuration on an input just large enough to show every
    level (the level kinds depend on the configuration, not on the size).

    Layers up to ``STRUCTURE_BUDGET`` triples are their own probe; a larger one keeps, per
    axis, the kernel's extent, four strides, its padding and a margin.

    Examples
    --------
    >>> structure_probe(ConvSpec((2, 2200, 2200), 2, 1)).input_shape
    (2, 9, 9)
    """
    from dataclasses import replace
    from typing import Any

    if triple_count(spec) <= STRUCTURE_BUDGET:
        return spec
    caps = [
        d * (k - 1) + 1 + 4 * s + sum(p) + 4
        for k, s, d, p in zip(spec.kernel_size, spec.stride, spec.dilation, spec.padding)
    ]
    spatial = tuple(min(n, c) for n, c in zip(spec.input_shape[1:], caps))
    try:
        # ConvSpec.__init__ also takes a padding word, which dataclasses.replace's typed
        # signature (the normalised field type) does not know
        changes: dict[str, Any] = {
            "input_shape": (spec.input_shape[0], *spatial),
            "padding": spec.padding if spec.padding_word is None else spec.padding_word,
        }
        return replace(spec, **changes)
    except ConvAlgebraError:
        return spec
