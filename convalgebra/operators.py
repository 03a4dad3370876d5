"""Numeric matrices and matrix-free operators of a convolution, contracted from its triples.

``conv_matrix(spec, w) @ x.ravel()`` equals PyTorch's ``conv{1,2,3}d`` (or
``conv_transpose{1,2,3}d``) of ``x`` without bias, with the padding mode applied as PyTorch
does; ``kernel_jacobian(spec, x) @ w.ravel()`` gives the same output (the im2col matrix).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from . import budget
from .budget import (
    DEFAULT_BLOCK_BYTES,
    DEFAULT_MAX_BYTES,
    FLOAT64_EXACT,
    INT64_MAX,
    block_rows_for,
    check_limit,
    entry_multiplicity,
    matrix_bytes,
    max_abs,
    require_bytes,
    require_exact_sums,
    table_bytes,
    triple_count,
    triples_bytes,
)
from .connectivity import (
    channel_layout,
    iter_triples,
    layer_rows_cols,
    row_template,
    spatial_table,
    tap_weight_order,
    triples,
)
from .errors import ConvAlgebraError, require, shown
from .spec import ConvSpec, plain_array
from .taps import map_padded

__all__ = [
    "DEFAULT_MAX_BYTES",
    "conv_matrix",
    "conv_operator",
    "conv_matrix_blocks",
    "kernel_jacobian",
    "bias_jacobian",
    "check_weight",
    "check_input",
]

_CHUNK_ELEMENTS = 2**22


def as_numeric(name: str, value, shape: tuple[int, ...], layout: str) -> np.ndarray:
    value = plain_array(value)  # a torch tensor, detached
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from exc
    if array.dtype == object:
        raise TypeError(
            f"{name} must be numeric; for sympy symbols use convalgebra.symbolic_matrix"
        )
    if array.dtype.kind not in "biufc":
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if array.shape != shape:
        raise ConvAlgebraError(f"{name} must have shape {shape} {layout}, got {array.shape}")
    if array.dtype.kind == "u" and max_abs(array) > INT64_MAX:
        raise ConvAlgebraError(
            f"{name} has unsigned entries up to {max_abs(array):,}, above 2**63 - 1: the "
            "integer arithmetic is int64 and would wrap them; pass smaller integers, or floats "
            "to accept rounding"
        )
    # bool and narrow integers would wrap when duplicate taps are summed (int8 200 -> -56)
    if array.dtype.kind == "b" or (array.dtype.kind in "iu" and array.dtype != np.int64):
        return array.astype(np.int64)
    # scipy.sparse has no float16: every path computes half precision in float32
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array


def check_weight(spec: ConvSpec, weight) -> np.ndarray:
    """Return ``weight`` as an array of ``spec.weight_shape`` or raise a clear error."""
    check_spec(spec)
    layout = (
        "(C_in, C_out/groups, *kernel_size)"
        if spec.transposed
        else ("(C_out, C_in/groups, *kernel_size)")
    )
    if spec.tile is not None:
        layout = "(*tile, C_out, C_in/groups, *kernel_size)"
    elif spec.channel_table is not None:
        layout = "(C_out, C_in, *kernel_size)"
    return as_numeric("weight", weight, spec.weight_shape, layout)


def check_input(spec: ConvSpec, x) -> np.ndarray:
    """Return ``x`` as an array of ``spec.input_shape`` or raise a clear error."""
    check_spec(spec)
    return as_numeric("x", x, spec.input_shape, "(C_in, *spatial), no batch axis")


def check_spec(spec) -> ConvSpec:
    """The one spec check of every public entry point."""
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__} ({shown(spec)})")
    return spec


def _check_count(name: str, value, minimum: int = 1) -> int:
    """A positive integer parameter (``max_bytes``, ``block_rows``) or a clear error."""
    return check_limit(name, value, minimum)


def _budget(spec: ConvSpec, itemsize: int, max_bytes: int) -> None:
    """Refuse, before anything is built, a matrix of ``spec`` over ``max_bytes``."""
    require_bytes(
        spec,
        "the matrix",
        matrix_bytes(spec, itemsize),
        max_bytes,
        "use conv_operator(spec, weight) for a matrix-free LinearOperator, "
        "conv_matrix_blocks to build it in row blocks, smaller sizes, or a larger "
        "max_bytes=",
    )


def _index_dtype(nnz: int, n_cols: int):
    return np.int32 if max(nnz, n_cols) < 2**31 else np.int64


def _forward_matrix_shared(spec: ConvSpec, weight: np.ndarray, max_bytes: int) -> sp.csr_array:
    """Ordinary convolution: every output channel repeats one row template (fast path)."""
    c_out, c_in, per = channel_layout(spec)
    _budget(spec, weight.dtype.itemsize, max_bytes)
    template = row_template(spec)
    p_out = math.prod(spec.forward_output_spatial)
    n_cols = c_in * math.prod(spec.forward_input_spatial)
    row_nnz = int(template.row_counts.sum())
    nnz = c_out * row_nnz
    idx = _index_dtype(nnz, n_cols)
    flat_w = weight.reshape(c_out, -1)
    data = np.take(flat_w, template.weights, axis=1)
    for slots, taps in template.extra:
        data[:, slots] += np.take(flat_w, taps, axis=1)
    columns = template.columns
    group_offset = (np.arange(c_out) // (c_out // spec.groups)) * (
        per * math.prod(spec.forward_input_spatial)
    )
    indices = columns.astype(idx)[None, :] + group_offset.astype(idx)[:, None]
    indptr = budget.zeros(c_out * p_out + 1, dtype=idx)
    np.cumsum(np.tile(template.row_counts, c_out), out=indptr[1:])
    matrix = sp.csr_array((data.ravel(), indices.ravel(), indptr), shape=(c_out * p_out, n_cols))
    matrix.has_sorted_indices = True
    return matrix


def _forward_matrix_generic(spec: ConvSpec, weight: np.ndarray, max_bytes: int) -> sp.csr_array:
    """Tiled, locally connected or channel-table layers: contract the full triple table."""
    _budget(spec, weight.dtype.itemsize, max_bytes)
    t = triples(spec)
    data = weight.ravel()[t.weight_index]
    matrix = sp.coo_array((data, (t.out_index, t.in_index)), shape=t.shape).tocsr()
    matrix.sum_duplicates()
    return matrix


def conv_matrix(spec: ConvSpec, weight, *, max_bytes: int = DEFAULT_MAX_BYTES) -> sp.csr_array:
    """The sparse matrix ``M`` with ``M @ x.ravel() == conv(x).ravel()`` (no bias).

    Parameters
    ----------
    spec : ConvSpec
        The layer (forward or transposed, any padding mode, groups, tiles, 1-D to 3-D).
    weight : array_like of shape ``spec.weight_shape`` (PyTorch layout)
        The kernel; its dtype is kept.
    max_bytes : int, optional
        Refuse (with the size it would take) matrices larger than this; default 8 GiB.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(prod(spec.output_shape), prod(spec.input_shape))``, C-order flattening.

    Notes
    -----
    Forward: ``y[o] = sum_{(o,i,w) in T} w[w] x[i]``. Adjoint: ``x[i] = sum_{(o,i,w) in T}
    w[w] y[o]`` -- the matrix of a transposed spec is the transpose of its forward's.

    Examples
    --------
    >>> spec = ConvSpec((1, 4), 1, 2, bias=False)
    >>> conv_matrix(spec, [[[1, 2]]]).toarray()
    array([[1, 2, 0, 0],
           [0, 1, 2, 0],
           [0, 0, 1, 2]])
    >>> conv_matrix(ConvSpec((1, 3), 1, 2, transposed=True), [[[1, 2]]]).toarray()
    array([[1, 0, 0],
           [2, 1, 0],
           [0, 2, 1],
           [0, 0, 2]])
    """
    w = check_weight(spec, weight)
    _check_count("max_bytes", max_bytes)
    require_exact_sums(f"the matrix of {spec.describe()}", entry_multiplicity(spec), [w], INT64_MAX)
    if spec.tile is None and spec.channel_table is None:
        matrix = _forward_matrix_shared(spec, w, max_bytes)
    else:
        matrix = _forward_matrix_generic(spec, w, max_bytes)
    return matrix.T.tocsr() if spec.transposed else matrix


def conv_matrix_blocks(
    spec: ConvSpec,
    weight,
    block_rows: int | str = "auto",
    *,
    max_bytes: int = DEFAULT_BLOCK_BYTES,
) -> Iterator[tuple[slice, sp.csr_array]]:
    """Yield ``(rows, block)``: the forward matrix in row blocks, in bounded memory.

    For a transposed spec the blocks are rows of the *forward* matrix, i.e. columns of the
    transposed layer's matrix.

    Parameters
    ----------
    spec : ConvSpec
        The layer.
    weight : array_like of shape ``spec.weight_shape``
        The kernel.
    block_rows : int or "auto"
        Rows per block; ``"auto"`` (default): as many as fit in ``max_bytes`` (see
        :func:`convalgebra.budget.block_rows_for`).
    max_bytes : int, default 256 MiB
        Memory for building one block; a ``block_rows`` that needs more is refused.

    Returns
    -------
    iterator of (slice, scipy.sparse.csr_array)
        ``(rows, block)`` pairs: the block is rows ``rows`` of the forward matrix, all
        columns (``conv_matrix(spec, weight)[rows]`` for a forward spec). The arguments are
        checked at the call, the blocks built as they are drawn.

    Examples
    --------
    >>> spec = ConvSpec((1, 5), 1, 3)
    >>> [(r.start, b.shape) for r, b in conv_matrix_blocks(spec, np.ones((1, 1, 3)), 2)]
    [(0, (2, 5)), (2, (1, 5))]
    """
    w = check_weight(spec, weight).ravel()
    max_bytes = _check_count("max_bytes", max_bytes)
    require_exact_sums(f"the matrix of {spec.describe()}", entry_multiplicity(spec), [w], INT64_MAX)
    if isinstance(block_rows, str) and block_rows == "auto":
        block_rows = block_rows_for(spec, max_bytes)
    block_rows = _check_count("block_rows", block_rows)
    require_bytes(
        spec,
        f"a block of {block_rows:,} rows",
        triples_bytes(spec, block_rows),
        max_bytes,
        "use a smaller block_rows (or leave it out), or a larger max_bytes=",
    )
    return _blocks(spec, w, block_rows)


def _blocks(spec: ConvSpec, w: np.ndarray, block_rows: int) -> Iterator[tuple[slice, sp.csr_array]]:
    for rows, t in iter_triples(spec, block_rows):
        block = sp.coo_array(
            (w[t.weight_index], (t.out_index - rows.start, t.in_index)),
            shape=(rows.stop - rows.start, t.shape[1]),
        ).tocsr()
        block.sum_duplicates()
        yield rows, block


def gather_chunks(spec: ConvSpec) -> Iterator[slice]:
    table = spatial_table(spec)
    _, c_in, _ = channel_layout(spec)
    step = max(1, _CHUNK_ELEMENTS // max(1, c_in * table.shape[1]))
    for start in range(0, table.shape[0], step):
        yield slice(start, min(start + step, table.shape[0]))


def with_fill_column(values: np.ndarray, fill) -> np.ndarray:
    """``(C, P)`` values with one extra column of ``fill``: where padding taps (-1) land."""
    column = np.full((values.shape[0], 1), fill, dtype=values.dtype)
    return np.concatenate([values, column], axis=1)


def gather_patches(padded: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``padded[:, table]`` with ``-1`` entries reading the fill column (the last one)."""
    return padded[:, table]


def weighted_bincount(index: np.ndarray, values: np.ndarray, size: int, dtype=None) -> np.ndarray:
    """``np.bincount`` with weights of any numeric dtype (complex summed part by part)."""
    dtype = np.dtype(values.dtype if dtype is None else dtype)
    if dtype.kind == "c":
        return np.bincount(index, values.real, size) + 1j * np.bincount(index, values.imag, size)
    return np.bincount(index, values, size).astype(dtype, copy=False)


def _apply_triples(spec: ConvSpec, weight: np.ndarray, v: np.ndarray, adjoint: bool) -> np.ndarray:
    """Forward (or plain transpose, no conjugation) through the triple table, block by block."""
    c_out, c_in, _ = channel_layout(spec)
    n_out = c_out * math.prod(spec.forward_output_spatial)
    n_in = c_in * math.prod(spec.forward_input_spatial)
    dtype = np.result_type(weight, v)
    acc = budget.zeros(n_in if adjoint else n_out, dtype=dtype)
    flat = weight.ravel()
    for _, t in iter_triples(spec):
        if adjoint:
            acc += weighted_bincount(t.in_index, flat[t.weight_index] * v[t.out_index], n_in, dtype)
        else:
            acc += weighted_bincount(
                t.out_index, flat[t.weight_index] * v[t.in_index], n_out, dtype
            )
    return acc


def _batched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` over a leading group axis, as one 2-D BLAS product when there is one group."""
    return (a[0] @ b[0])[None] if a.shape[0] == 1 else a @ b


# memory of one im2col block of the forward products
_BLOCK_BYTES = 64 * 2**20


class _Strided:
    """Products of an ordinary convolution through its padded input, with BLAS.

    Forward: pad the input along each axis (the one tap primitive,
    :func:`~convalgebra.taps.map_padded`, says which input each padded position copies), then
    for each tap ``t`` add ``W_t @ view_t`` (``view_t`` the strided view of the padded input
    the tap reads, ``W_t`` its ``C_out/g x C_in/g`` weights), per group, the views copied into
    one im2col block (in chunks of output rows) so that it is one BLAS product. Adjoint:
    ``W_t^H`` times the output added back onto each view, one product per tap, then the
    padding folded back (the copies summed onto the positions they copy). These are the faster
    of the two ways each way (``examples/benchmarks/bench_operator.py``).
    """

    def __init__(self, spec: ConvSpec, w: np.ndarray) -> None:
        c_out, c_in, per = channel_layout(spec)
        g, k = spec.groups, math.prod(spec.kernel_size)
        self.spec, self.c_in, self.c_out = spec, c_in, c_out
        table = w.reshape(g, c_out // g, per, k)[..., tap_weight_order(spec)]
        self.weight = np.ascontiguousarray(np.moveaxis(table, -1, 0))  # (K, g, C_out/g, per)
        self.weight_t = np.ascontiguousarray(np.swapaxes(self.weight, 2, 3))
        # (g, C_out/g, per * K): the forward's one product per block of taps (im2col)
        self.weight_rows = np.ascontiguousarray(
            np.moveaxis(table, -1, -1).reshape(g, c_out // g, per * k)
        )
        self.out = tuple(spec.forward_output_spatial)
        self.grid = tuple(
            (o - 1) * s + (kk - 1) * d + 1
            for o, kk, s, d in zip(
                self.out, spec.kernel_size, spec.stride, spec.dilation, strict=True
            )
        )
        self.maps = [
            map_padded(np.arange(n) - pad[0], size, spec.padding_mode)
            for n, pad, size in zip(
                self.grid, spec.padding, spec.forward_input_spatial, strict=True
            )
        ]
        self.views = [
            (slice(None),)
            + tuple(
                slice(t * d, t * d + (o - 1) * s + 1, s)
                for t, d, s, o in zip(tap, spec.dilation, spec.stride, self.out, strict=True)
            )
            for tap in np.ndindex(*spec.kernel_size)
        ]

    def _pad(self, x: np.ndarray) -> np.ndarray:
        if self.spec.padding_mode == "zeros":  # one copy into a zero grid
            xp = budget.zeros((self.c_in, *self.grid), dtype=x.dtype)
            dims = zip(self.spec.padding, self.spec.forward_input_spatial, self.grid, strict=True)
            spans = [(before, max(0, min(size, grid - before))) for (before, _), size, grid in dims]
            inside = tuple(slice(before, before + count) for before, count in spans)
            xp[(slice(None), *inside)] = x[(slice(None), *(slice(0, c) for _, c in spans))]
            return xp
        for axis, index in enumerate(self.maps, 1):
            x = np.take(x, np.where(index >= 0, index, 0), axis=axis)
            if (index < 0).any():
                x[(slice(None),) * axis + (index < 0,)] = 0
        return x

    def _unpad(self, xp: np.ndarray) -> np.ndarray:
        dims = zip(self.maps, self.spec.padding, self.spec.forward_input_spatial, strict=True)
        for axis, (index, (before, _), size) in enumerate(dims, 1):
            shape = list(xp.shape)
            shape[axis] = size
            out = budget.zeros(shape, dtype=xp.dtype)
            stop = min(size, len(index) - before)
            lead = (slice(None),) * axis
            out[lead + (slice(0, stop),)] = xp[lead + (slice(before, before + stop),)]
            position = np.arange(len(index))
            border = (index >= 0) & ((position < before) | (position >= before + size))
            if border.any():  # copies of inputs (circular, reflect, replicate): summed back
                np.add.at(
                    np.moveaxis(out, axis, 0), index[border], np.moveaxis(xp, axis, 0)[border]
                )
            xp = out
        return xp

    def forward(self, x: np.ndarray) -> np.ndarray:
        xp = self._pad(x.reshape(self.c_in, *self.spec.forward_input_spatial))
        k, g, c_out, per = self.weight.shape
        dtype = np.result_type(self.weight, x)
        rest = math.prod(self.out[1:])
        y = budget.empty((g, c_out, self.out[0], rest), dtype)
        rows = max(1, _BLOCK_BYTES // (self.c_in * k * rest * 16))
        for start in range(0, self.out[0], rows):
            stop = min(start + rows, self.out[0])
            block = budget.empty((g, per, k, stop - start, *self.out[1:]), dtype)
            for t, view in enumerate(self.views):
                first = view[1]
                step = first.step
                rows_view = slice(
                    first.start + start * step, first.start + (stop - 1) * step + 1, step
                )
                block[:, :, t] = xp[(slice(None), rows_view, *view[2:])].reshape(
                    g, per, stop - start, *self.out[1:]
                )
            # one product per group (a 2-D product when there is one group: BLAS directly)
            product = _batched(self.weight_rows, block.reshape(g, per * k, -1))
            y[:, :, start:stop] = product.reshape(g, c_out, stop - start, rest)
        return y.ravel()

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        g = self.weight.shape[1]
        grad = np.ascontiguousarray(y).reshape(g, self.c_out // g, -1)
        xp = budget.zeros((self.c_in, *self.grid), dtype=np.result_type(self.weight, y))
        for w_t, view in zip(self.weight_t, self.views, strict=True):
            xp[view] += _batched(w_t, grad).reshape(self.c_in, *self.out)
        return self._unpad(xp).ravel()


class _TorchStrided(_Strided):
    """The same products through torch's ``conv{n}d`` / ``conv_transpose{n}d`` (float64).

    The padding and its adjoint stay in numpy (the one tap primitive); complex vectors take
    the numpy route.
    """

    def __init__(self, spec: ConvSpec, w: np.ndarray) -> None:
        super().__init__(spec, w)
        self.torch = require("torch", "torch")
        self.functional = self.torch.nn.functional
        per = self.weight.shape[3]
        kernel = np.moveaxis(self.weight, 0, -1).reshape(self.c_out, per, *spec.kernel_size)
        self.kernel = self.torch.from_numpy(np.ascontiguousarray(kernel))
        self.options = {"stride": spec.stride, "dilation": spec.dilation, "groups": spec.groups}

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.dtype.kind == "c" or self.weight.dtype.kind == "c":
            return super().forward(x)
        xp = self._pad(x.astype(np.float64).reshape(self.c_in, *self.spec.forward_input_spatial))
        conv = getattr(self.functional, f"conv{self.spec.ndim}d")
        out = conv(self.torch.from_numpy(xp)[None], self.kernel, **self.options)
        return out.numpy().ravel()

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        if y.dtype.kind == "c" or self.weight.dtype.kind == "c":
            return super().adjoint(y)
        grad = self.torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))
        conv_t = getattr(self.functional, f"conv_transpose{self.spec.ndim}d")
        xp = conv_t(grad.reshape(1, self.c_out, *self.out), self.kernel, **self.options)
        return self._unpad(xp[0].numpy()).ravel()


def conv_operator(spec: ConvSpec, weight, *, backend: str = "numpy") -> LinearOperator:
    """Matrix-free ``LinearOperator`` of the layer, for sizes too large to store.

    ``matvec`` is the convolution, ``rmatvec`` its adjoint, the conjugate transpose
    ``M^H`` (``LinearOperator`` semantics; for real weights the input gradient ``M^T``).
    Memory is bounded by processing output positions in chunks; tiled and channel-table
    layers build their sparse matrix once (or, over the default budget, stream the triples).

    Parameters
    ----------
    spec : ConvSpec
        The layer.
    weight : array_like of shape ``spec.weight_shape``
        The kernel (real or complex).
    backend : {"numpy", "torch"}
        ``"numpy"``: im2col of the padded input and one BLAS product per group (as fast as
        torch's float64 convolution on one thread, ``examples/benchmarks/bench_operator.py``).
        ``"torch"`` (needs the torch extra): the products by torch's ``conv{n}d`` and
        ``conv_transpose{n}d`` in float64, for 1-3 spatial dimensions and real vectors.

    Returns
    -------
    scipy.sparse.linalg.LinearOperator
        Shape ``(prod(spec.output_shape), prod(spec.input_shape))``, the operator of
        :func:`conv_matrix` on C-order flattened vectors.

    Notes
    -----
    Forward ``y = M v``: pad ``v`` (zeros, or copies of the input for the other modes), then
    ``y[o, p] = sum_{i, t} W[o, i, t] v_pad[i, p s + t d]``. Adjoint ``M^H y``: the transposed
    sum scattered back onto the padded grid, then the padding's adjoint (each copy added onto
    the position it copies).

    Examples
    --------
    >>> spec = ConvSpec((1, 4), 1, 2)
    >>> op = conv_operator(spec, np.array([[[1.0, 2.0]]]))
    >>> op.shape, op @ np.array([1.0, 0.0, 0.0, 1.0])
    ((3, 4), array([1., 0., 2.]))
    """
    w = check_weight(spec, weight)
    require_bytes(
        spec,
        "the operator's spatial table",
        table_bytes(spec),
        DEFAULT_MAX_BYTES,
        "use smaller sizes",
    )
    if w.dtype.kind in "biu":  # the operator computes in float64: keep the weights exact
        require_exact_sums(
            f"conv_operator of {spec.describe()}",
            1,
            [w],
            FLOAT64_EXACT,
            "pass float weights to accept rounding, or integers below 2**53",
        )
        w = w.astype(np.float64)
    if backend not in ("numpy", "torch"):
        raise ConvAlgebraError(f"backend must be 'numpy' or 'torch', got {shown(backend)}")
    forward, transpose = _operator_kernels(spec, w, backend)
    if spec.transposed:
        forward, transpose = transpose, forward

    def matvec(v):
        return forward(np.asarray(v).ravel())

    def rmatvec(v):
        v = np.asarray(v).ravel()
        if w.dtype.kind != "c":
            return transpose(v)
        return np.conj(transpose(np.conj(v)))

    n_out, n_in = math.prod(spec.output_shape), math.prod(spec.input_shape)
    return LinearOperator((n_out, n_in), matvec=matvec, rmatvec=rmatvec, dtype=w.dtype)


def _operator_kernels(spec: ConvSpec, w: np.ndarray, backend: str = "numpy"):
    """``(M v, M^T v)`` of the forward matrix ``M``; the triple table is built at most once."""
    if spec.tile is None and spec.channel_table is None:
        torch_ok = backend == "torch" and spec.ndim <= 3
        strided = _TorchStrided(spec, w) if torch_ok else _Strided(spec, w)
        return strided.forward, strided.adjoint
    try:
        matrix = _forward_matrix_generic(spec, w, DEFAULT_MAX_BYTES)
    except ConvAlgebraError:  # over budget: stream the triples on every product instead
        return (
            lambda v: _apply_triples(spec, w, v, adjoint=False),
            lambda v: _apply_triples(spec, w, v, adjoint=True),
        )
    transposed = matrix.T.tocsr()
    return (lambda v: matrix @ v), (lambda v: transposed @ v)


def kernel_jacobian(spec: ConvSpec, x, *, max_bytes: int = DEFAULT_MAX_BYTES) -> sp.csr_array:
    """The im2col matrix ``J(x)``: ``J @ weight.ravel() == conv(x).ravel()`` (no bias).

    Shape ``(prod(output_shape), prod(weight_shape))``; ``J.T @ g`` is the kernel gradient
    (eq. 9.11 of the Deep Learning book). Like :func:`conv_matrix`, refuses (naming the
    size) a matrix that would need more than ``max_bytes``, before building it.

    Parameters
    ----------
    spec : ConvSpec
        The layer.
    x : array_like of shape ``spec.input_shape``
        The layer's input for one example (no batch axis).
    max_bytes : int, optional
        Refuse larger matrices, naming the size; default 8 GiB.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(prod(spec.output_shape), prod(spec.weight_shape))``: row ``o`` holds the
        input values each weight multiplies at output ``o``.

    Examples
    --------
    >>> kernel_jacobian(ConvSpec((1, 3), 1, 2), [[1, 2, 3]]).toarray()
    array([[1, 2],
           [2, 3]])
    """
    x = check_input(spec, x)
    n_rows = math.prod(spec.output_shape)
    nnz = triple_count(spec)
    needed = triples_bytes(spec) + nnz * (max(x.dtype.itemsize, 8) + 16) + n_rows * 8
    require_bytes(
        spec,
        "the im2col matrix",
        needed,
        max_bytes,
        "use weight_gradient (matrix-free), smaller sizes, or a larger max_bytes=",
    )
    require_exact_sums(
        f"the im2col matrix of {spec.describe()}", entry_multiplicity(spec), [x], INT64_MAX
    )
    t = triples(spec)
    n_w = math.prod(spec.weight_shape)
    # transposed: y_T = M^T x, y_T[i] += w[k] x[o] for each forward triple (o, i, k)
    rows, cols = layer_rows_cols(spec, t)
    values = x.ravel()[cols]
    matrix = sp.coo_array((values, (rows, t.weight_index)), shape=(n_rows, n_w)).tocsr()
    matrix.sum_duplicates()
    return matrix


def bias_jacobian(spec: ConvSpec) -> sp.csr_array:
    """``B`` with ``B @ bias == bias broadcast over the output``: one 1 per output element.

    Parameters
    ----------
    spec : ConvSpec
        The layer.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(prod(spec.output_shape), spec.out_channels)``, float64.

    Examples
    --------
    >>> bias_jacobian(ConvSpec((1, 3), 2, 2)).toarray()
    array([[1., 0.],
           [1., 0.],
           [0., 1.],
           [0., 1.]])
    """
    c_out = check_spec(spec).out_channels
    per_channel = math.prod(spec.output_shape[1:])
    rows = np.arange(c_out * per_channel)
    return sp.csr_array((np.ones(rows.size), (rows, rows // per_channel)), shape=(rows.size, c_out))
