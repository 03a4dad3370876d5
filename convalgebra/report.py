"""Plain-text reports of a layer's matrix: shape, structure, sparsity, the matrix itself."""

from __future__ import annotations

import math

import numpy as np

from .spec import ConvSpec

__all__ = ["matrix_report", "format_matrix"]


def format_matrix(dense: np.ndarray, max_rows: int = 16, max_cols: int = 16) -> str:
    """Render a dense 2-D array with ``·`` for zeros, truncated with ``…`` past a size.

    Examples
    --------
    >>> print(format_matrix(np.array([[1, 2, 0], [0, 1, 2]])))
    1 2 ·
    · 1 2
    """
    rows = min(dense.shape[0], max_rows)
    cols = min(dense.shape[1], max_cols)
    cells = [[_cell(v) for v in row[:cols]] for row in dense[:rows]]
    width = max((len(c) for row in cells for c in row), default=1)
    lines = [
        " ".join(c.rjust(width) for c in row) + (" …" if cols < dense.shape[1] else "")
        for row in cells
    ]
    if rows < dense.shape[0]:
        lines.append("⋮")
    return "\n".join(lines)


def _cell(value) -> str:
    if value == 0:
        return "·"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}" if isinstance(value, (float, np.floating)) else str(value)


def _connected_sharing(spec: ConvSpec, sharing: np.ndarray) -> np.ndarray:
    """Use counts of the weights a channel table connects (all weights without a table)."""
    if spec.channel_table is None:
        return sharing
    links = np.array(spec.channel_table, dtype=bool)
    mask = np.broadcast_to(links.reshape(*links.shape, *[1] * spec.ndim), spec.weight_shape)
    return sharing.reshape(spec.weight_shape)[mask]


def matrix_report(spec: ConvSpec, weight=None, *, symbolic: bool = True, max_size: int = 16) -> str:
    """A report of the matrix a layer induces, as a person reads it.

    With ``symbolic=True`` and no weight, entries are the kernel symbols ``w1, w2, …``.

    Examples
    --------
    >>> print(matrix_report(ConvSpec((1, 4), 1, 2)))  # doctest: +ELLIPSIS
    Conv1d(1, 1, kernel_size=(2,), ...
    matrix: 3 x 4, 6 non-zeros (50.0% dense), structure: Toeplitz ...
    """
    from .connectivity import entry_count, weight_uses
    from .structure import matrix_structure, structure_probe

    n_out, n_in = math.prod(spec.output_shape), math.prod(spec.input_shape)
    # reflect/replicate/circular padding sends several taps to one entry: count entries
    nnz = entry_count(spec)
    shared = _connected_sharing(spec, weight_uses(spec))
    probe = structure_probe(spec)
    where = "" if probe == spec else f" (read on input {probe.input_shape}: the same levels)"
    lines = [
        spec.describe(),
        f"output shape {spec.output_shape}, weight shape {spec.weight_shape}, "
        f"{spec.n_params} parameters, {spec.macs:,} MACs",
        f"matrix: {n_out} x {n_in}, {nnz:,} non-zeros ({100 * nnz / (n_out * n_in):.1f}% dense), "
        f"structure: {matrix_structure(probe)}{where}",
        f"parameter sharing: each of the {shared.size}"
        + (" connected" if spec.channel_table is not None else "")
        + f" weights is used {shared.min()}"
        + (f" to {shared.max()}" if shared.max() != shared.min() else "")
        + " times",
    ]
    if not spec.tiles_input:
        lines.append(f"not tiling: input positions never read, per axis: {spec.unread_inputs}")
    if weight is None and symbolic:
        from .symbolic import symbolic_matrix

        corner = symbolic_matrix(spec)[: max_size + 1, : max_size + 1]
        shown = np.array(corner.tolist(), dtype=object)
    else:
        if weight is None:
            weight = np.arange(1, math.prod(spec.weight_shape) + 1).reshape(spec.weight_shape)
        shown = _corner(spec, weight, max_size + 1)
    return "\n".join(lines + ["", format_matrix(shown, max_size, max_size)])


def _corner(spec: ConvSpec, weight, size: int) -> np.ndarray:
    """The top-left ``size x size`` block of the layer's matrix, from its first rows only.

    For a transposed spec the matrix is the forward one transposed, so its corner is the
    transpose of the forward corner.
    """
    from .budget import dense
    from .operators import conv_matrix_blocks

    _, block = next(iter(conv_matrix_blocks(spec, weight, size)))
    corner = dense(block[:, :size], what="the matrix corner")
    return corner.T if spec.transposed else corner
