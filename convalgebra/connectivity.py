"""The triple table of a convolution: which input and which weight feed which output.

Every layer of the convolution family computes ``y[o] = sum over (o, i, w) in T of x[i] * w[w]``.
This module builds ``T`` from a :class:`~convalgebra.spec.ConvSpec` by vectorised index
arithmetic, one spatial axis at a time, then broadcast over axes and channels. Everything else
in the library (matrices, Jacobians, gradients, symbolic forms, receptive fields) is a
contraction of these tables.

Indices are always those of the *forward* convolution: for a transposed spec, ``out_index``
runs over the transposed layer's input and ``in_index`` over its output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import budget
from .budget import (
    DEFAULT_ARRAY_BYTES,
    DEFAULT_MAX_BYTES,
    block_rows_for,
    channel_links,
    require_array,
    require_bytes,
    table_bytes,
)
from .errors import ConvAlgebraError, shown
from .spec import ConvSpec
from .taps import map_padded, padded_coordinates

__all__ = [
    "TripleTable",
    "axis_table",
    "spatial_table",
    "tap_weight_order",
    "triples",
    "iter_triples",
    "row_template",
    "layer_rows_cols",
    "padded_positions",
    "entry_count",
    "weight_uses",
]


def axis_table(spec: ConvSpec, axis: int) -> np.ndarray:
    """Input position read by each (output position, kernel tap) along one spatial axis.

    Returns an ``(n_out, k)`` int64 array; ``-1`` where the tap reads zero padding. Positions
    are those of the forward convolution (for a transposed spec: its output is the input here).

    Examples
    --------
    >>> axis_table(ConvSpec((1, 5), 1, 3, stride=2, padding=1), 0)
    array([[-1,  0,  1],
           [ 1,  2,  3],
           [ 3,  4, -1]])
    >>> axis_table(ConvSpec((1, 4), 1, 3, padding=1, padding_mode="circular"), 0)[0]
    array([3, 0, 1])
    """
    size = spec.forward_input_spatial[axis]
    return map_padded(padded_positions(spec, axis), size, spec.padding_mode)


def padded_positions(spec: ConvSpec, axis: int) -> np.ndarray:
    """Coordinate (relative to the unpadded input) each (output position, tap) reads along ``axis``.

    Negative or ``>= size`` values fall in the padding; :func:`axis_table` maps them.

    Examples
    --------
    >>> padded_positions(ConvSpec((1, 5), 1, 3, stride=2, padding=1), 0)
    array([[-1,  0,  1],
           [ 1,  2,  3],
           [ 3,  4,  5]])
    """
    return padded_coordinates(
        spec.forward_output_spatial[axis],
        spec.kernel_size[axis],
        spec.stride[axis],
        spec.dilation[axis],
        spec.padding[axis][0],
    )


@lru_cache(maxsize=64)
def spatial_table(spec: ConvSpec) -> np.ndarray:
    """Flat input position per (flat output position, flat tap); ``-1`` for padding.

    Shape ``(prod(out_spatial), prod(kernel_size))``, C order on both sides.

    Examples
    --------
    >>> spatial_table(ConvSpec((1, 3, 3), 1, 2))
    array([[0, 1, 3, 4],
           [1, 2, 4, 5],
           [3, 4, 6, 7],
           [4, 5, 7, 8]])
    """
    require_bytes(
        spec,
        "the spatial table",
        table_bytes(spec),
        DEFAULT_MAX_BYTES,
        "use smaller sizes (every representation of a layer reads this table)",
    )
    n = spec.ndim
    in_sizes = spec.forward_input_spatial
    strides = [math.prod(in_sizes[a + 1 :]) for a in range(n)]
    flat = budget.zeros((1,) * (2 * n), dtype=np.int64)
    valid = budget.ones((1,) * (2 * n), dtype=bool)
    for axis in range(n):
        table = axis_table(spec, axis)
        shape = [1] * (2 * n)
        shape[axis], shape[n + axis] = table.shape
        table = table.reshape(shape)
        flat = flat + table * strides[axis]
        valid = valid & (table >= 0)
    out = np.where(valid, flat, -1)
    table = out.reshape(math.prod(spec.forward_output_spatial), math.prod(spec.kernel_size))
    table.setflags(write=False)
    return table


def tap_weight_order(spec: ConvSpec) -> np.ndarray:
    """Flat weight tap used by each flat spatial tap: reversed when ``flip`` (true convolution)."""
    taps = np.arange(math.prod(spec.kernel_size))
    if not spec.flip:
        return taps
    flipped: np.ndarray = taps.reshape(spec.kernel_size)[(slice(None, None, -1),) * spec.ndim]
    return flipped.ravel()


def _tile_index(spec: ConvSpec, pos: np.ndarray) -> np.ndarray:
    """Flat tile index (eq. 9.10: output position modulo the tile) of flat output positions."""
    tile = spec.tile
    if tile is None:
        raise ConvAlgebraError(f"{spec.describe()} is not tiled")
    coords = np.unravel_index(pos, spec.forward_output_spatial)
    flat: np.ndarray = np.ravel_multi_index(tuple(c % t for c, t in zip(coords, tile)), tile)
    return flat


@dataclass(frozen=True)
class TripleTable:
    """The connectivity ``T`` of a layer: parallel arrays of (output, input, weight) indices.

    Attributes
    ----------
    out_index, in_index, weight_index : ndarray of int64
        Flat C-order indices into the forward output, the forward input and the weight.
    shape : tuple of int
        ``(n_outputs, n_inputs)`` of the forward convolution.
    n_weights : int
        Size of the flat weight vector.
    """

    out_index: np.ndarray
    in_index: np.ndarray
    weight_index: np.ndarray
    shape: tuple[int, int]
    n_weights: int

    def __len__(self) -> int:
        return int(self.out_index.size)

    def sharing(self) -> np.ndarray:
        """How many triples use each weight: the parameter-sharing count per weight."""
        return np.bincount(self.weight_index, minlength=self.n_weights)


def channel_layout(spec: ConvSpec) -> tuple[int, int, int]:
    """(C_out, C_in, C_in read per output channel) of the forward convolution."""
    if spec.transposed:
        c_out, c_in = spec.in_channels, spec.out_channels
    else:
        c_out, c_in = spec.out_channels, spec.in_channels
    per_group = c_in if spec.channel_table is not None else c_in // spec.groups
    return c_out, c_in, per_group


def layer_rows_cols(spec: ConvSpec, t: TripleTable) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of the triples in the *layer's* matrix (swapped for a transposed spec).

    Examples
    --------
    >>> spec = ConvSpec((1, 2), 1, 2, transposed=True)
    >>> [a.tolist() for a in layer_rows_cols(spec, triples(spec))]
    [[0, 1, 1, 2], [0, 0, 1, 1]]
    """
    return (t.in_index, t.out_index) if spec.transposed else (t.out_index, t.in_index)


def triples(spec: ConvSpec, rows: slice | None = None) -> TripleTable:
    """Build the triple table of ``spec`` (optionally for a range of output rows only).

    Parameters
    ----------
    spec : ConvSpec
        The layer (for a transposed spec, the triples of its forward convolution).
    rows : slice, optional
        Flat forward-output rows to generate, e.g. ``slice(0, 1000)``; bounds memory for
        huge layers (see :func:`iter_triples`).

    Returns
    -------
    TripleTable
        Parallel arrays ``out_index``, ``in_index``, ``weight_index``: output ``o`` reads
        input ``i`` through weight ``k`` for each triple ``(o, i, k)``, ordered by output.

    Examples
    --------
    >>> t = triples(ConvSpec((1, 4), 1, 2))
    >>> t.out_index, t.in_index, t.weight_index
    (array([0, 0, 1, 1, 2, 2]), array([0, 1, 1, 2, 2, 3]), array([0, 1, 0, 1, 0, 1]))
    >>> t.sharing()
    array([3, 3])
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    c_out, c_in, per = channel_layout(spec)
    p_out = math.prod(spec.forward_output_spatial)
    p_in = math.prod(spec.forward_input_spatial)
    n_rows = c_out * p_out
    if rows is not None and not isinstance(rows, slice):
        raise TypeError(f"rows must be a slice of output rows or None, got {shown(rows)}")
    try:
        start, stop, step = (rows or slice(None)).indices(n_rows)
    except (TypeError, ValueError):  # slice('a'), slice(0, 1, 0)
        raise TypeError(
            f"rows must be a slice of integers with step 1, got {shown(rows)}"
        ) from None
    if step != 1:
        raise ConvAlgebraError(f"rows must be a contiguous slice, got step {step}")
    r = np.arange(start, stop, dtype=np.int64)
    co, pos = np.divmod(r, p_out)
    k = math.prod(spec.kernel_size)
    sp = spatial_table(spec)[pos]  # (n, K)
    ci_local = np.arange(per, dtype=np.int64)
    if spec.channel_table is not None:
        ci = np.broadcast_to(ci_local, (r.size, per))
        connected = np.asarray(spec.channel_table, dtype=bool)[co[:, None], ci]
    else:
        ci = (co // (c_out // spec.groups))[:, None] * per + ci_local[None, :]
        connected = budget.ones((r.size, per), dtype=bool)
    w = (co[:, None] * per + ci_local[None, :])[:, :, None] * k + tap_weight_order(spec)
    if spec.tile is not None:
        w = w + (_tile_index(spec, pos) * (c_out * per * k))[:, None, None]
    valid = (sp[:, None, :] >= 0) & connected[:, :, None]
    in_index = ci[:, :, None] * p_in + sp[:, None, :]
    out_index = np.broadcast_to(r[:, None, None], valid.shape)
    return TripleTable(
        out_index=out_index[valid],
        in_index=in_index[valid],
        weight_index=np.broadcast_to(w, valid.shape)[valid],
        shape=(c_out * p_out, c_in * p_in),
        n_weights=math.prod(spec.weight_shape),
    )


def iter_triples(spec: ConvSpec, block_rows: int | None = None):
    """Yield ``(row_slice, TripleTable)`` for consecutive blocks of forward-output rows.

    ``block_rows`` defaults to what fits in :data:`convalgebra.budget.DEFAULT_BLOCK_BYTES`.
    """
    if block_rows is None:
        block_rows = block_rows_for(spec)
    if block_rows < 1:
        raise ConvAlgebraError(f"block_rows must be a positive integer, got {shown(block_rows)}")
    c_out = channel_layout(spec)[0]
    n_rows = c_out * math.prod(spec.forward_output_spatial)
    for start in range(0, n_rows, block_rows):
        rows = slice(start, min(start + block_rows, n_rows))
        yield rows, triples(spec, rows)


@dataclass(frozen=True)
class RowTemplate:
    """The non-zero pattern shared by every output channel of an ordinary convolution.

    Entries are ordered as CSR needs them (output position, then input channel, then input
    position), for output channel 0 of group 0; other output channels add a column offset.
    Reflect, replicate and circular padding can map two taps to one pixel: ``weights`` holds the
    first tap of each entry and ``extra`` the others, as ``(entry slots, weight indices)`` per
    multiplicity level, to be added on top.
    """

    columns: np.ndarray  # column (forward input index) of each entry
    weights: np.ndarray  # flat index into weight[c_out] (ci_local * K + tap) of the first tap
    row_counts: np.ndarray  # entries per output position
    extra: tuple[tuple[np.ndarray, np.ndarray], ...]


@lru_cache(maxsize=16)
def row_template(spec: ConvSpec) -> RowTemplate:
    """Row pattern of an ordinary (untiled, table-free) convolution, sorted for CSR."""
    sp = spatial_table(spec)
    _, _, per = channel_layout(spec)
    k = sp.shape[1]
    p_in = math.prod(spec.forward_input_spatial)
    pos, tap = np.nonzero(sp >= 0)
    col = sp[pos, tap]
    order = np.lexsort((col, pos))
    pos, tap, col = pos[order], tap[order], col[order]
    counts = np.bincount(pos, minlength=sp.shape[0])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    local = np.arange(pos.size) - starts[pos]
    # template slot of (pos, ci, local): per*start[pos] + ci*count[pos] + local
    ci = np.arange(per)[:, None]
    slot = (per * starts[pos])[None, :] + ci * counts[pos][None, :] + local[None, :]
    columns = budget.empty(per * pos.size, dtype=np.int64)
    weights = budget.empty(per * pos.size, dtype=np.int64)
    columns[slot] = ci * p_in + col[None, :]
    weights[slot] = ci * k + tap_weight_order(spec)[tap][None, :]
    repeat = np.zeros(pos.size, dtype=bool)
    repeat[1:] = (pos[1:] == pos[:-1]) & (col[1:] == col[:-1])
    if not repeat.any():
        return RowTemplate(columns, weights, per * counts, ())
    duplicate = budget.zeros(per * pos.size, dtype=bool)
    duplicate[slot] = np.broadcast_to(repeat, slot.shape)
    entry = np.cumsum(~duplicate) - 1
    first = np.flatnonzero(~duplicate)
    rank = np.arange(duplicate.size) - first[entry]
    extra = tuple((entry[rank == r], weights[rank == r]) for r in range(1, int(rank.max()) + 1))
    unique_counts = np.bincount(pos[~repeat], minlength=sp.shape[0])
    return RowTemplate(columns[first], weights[first], per * unique_counts, extra)


def _axis_tables(spec: ConvSpec) -> list[np.ndarray]:
    """Every axis's :func:`axis_table`, after the budget of the largest (with temporaries)."""
    for a in range(spec.ndim):
        require_array(
            f"the axis-{a} table of {spec.describe()}",
            (spec.forward_output_spatial[a], tuple(spec.kernel_size)[a]),
            24,
            DEFAULT_ARRAY_BYTES,
            "use smaller sizes",
        )
    return [axis_table(spec, a) for a in range(spec.ndim)]


def entry_count(spec: ConvSpec) -> int:
    """Entries of the layer's matrix that some triple reaches (its non-zeros for a generic
    weight), without building the table.

    Notes
    -----
    Output ``(c_o, p)`` reads input ``(c_i, q)`` when the channels are linked and, on every
    axis ``a``, some tap of ``p_a`` reads ``q_a`` (the taps of the axes combine freely), so the
    count is the linked channel pairs times, per axis, the distinct (position, input) pairs.
    Wrapped or reflected taps that meet count once.

    Examples
    --------
    >>> entry_count(ConvSpec((1, 3), 1, 3, padding=1, padding_mode="circular"))
    9
    >>> entry_count(ConvSpec((2, 5, 5), 4, 3, padding=1))
    1352
    """
    total = channel_links(spec)
    for table in _axis_tables(spec):
        ordered = np.sort(table, axis=1)
        new = np.ones(ordered.shape, dtype=bool)
        new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        total *= int((new & (ordered >= 0)).sum())
    return total


def weight_uses(spec: ConvSpec) -> np.ndarray:
    """How many triples use each weight (flat, in weight order): :meth:`TripleTable.sharing`,
    built from the axes alone unless the layer is tiled or has a channel table.

    Notes
    -----
    Weight ``(c_o, c_i, m)`` of a shared kernel is used once per output position of its
    channel where every axis's tap ``m_a`` reads the input (not zero padding): the product
    over the axes of those counts, the same for every channel pair.

    Examples
    --------
    >>> weight_uses(ConvSpec((1, 4), 2, 3, padding=1)).tolist()
    [3, 4, 3, 3, 4, 3]
    """
    if spec.tile is not None or spec.channel_table is not None:
        return triples(spec).sharing()
    per_tap = np.ones(1, dtype=np.int64)
    for table in _axis_tables(spec):
        per_tap = np.multiply.outer(per_tap, (table >= 0).sum(axis=0)).ravel()
    uses = np.empty_like(per_tap)
    uses[tap_weight_order(spec)] = per_tap
    return np.tile(uses, math.prod(spec.weight_shape[: -spec.ndim]))
