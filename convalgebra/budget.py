"""Resource estimates from a spec alone, and the one refusal above a budget.

Every public entry point that allocates in proportion to the problem (matrices, row blocks,
triple tables, symbolic forms, identity checks, solvers) asks this module first: the size is
computed by arithmetic on the :class:`~convalgebra.spec.ConvSpec`, before anything is built,
and a call above the budget is refused with a :class:`~convalgebra.errors.ConvAlgebraError`
that says how large it would be and what to use instead.

Examples
--------
>>> from convalgebra.spec import ConvSpec
>>> spec = ConvSpec((64, 56, 56), 64, 3, padding=1)
>>> triple_count(spec)
112869376
>>> require_bytes(spec, "the matrix", matrix_bytes(spec, 8), 2**20)
Traceback (most recent call last):
...
convalgebra.errors.ConvAlgebraError: the matrix of Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=((1, 1), (1, 1))) on input (64, 56, 56) has 112,869,376 non-zeros and would need about 1.8 GiB, over max_bytes=1,048,576; use conv_operator(spec, weight) (matrix-free), smaller sizes, or a larger max_bytes=
"""

from __future__ import annotations

import math
import operator
import os
import stat
from typing import cast

import numpy as np

from .errors import ConvAlgebraError, shown
from .spec import ConvSpec

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_TERMS",
    "DEFAULT_BLOCK_BYTES",
    "check_limit",
    "axis_pairs",
    "spatial_pairs",
    "dense_pairs",
    "channel_links",
    "triple_count",
    "symbol_count",
    "table_bytes",
    "matrix_bytes",
    "triples_bytes",
    "block_rows_for",
    "require_bytes",
    "require_terms",
    "require_symbolic",
    "require_table",
    "require_pair",
    "CHECK_MAX_PRODUCTS",
    "OPS_MAX_TERMS",
    "OPS_MAX_PARAMETER",
    "DEFAULT_ARRAY_BYTES",
    "DEFAULT_MAX_STEPS",
    "DEFAULT_FILE_BYTES",
    "require_array",
    "require_steps",
    "zeros",
    "empty",
    "ones",
    "full",
    "dense",
    "read_regular_file",
    "fftn",
    "ifftn",
    "svd",
    "DEFAULT_MAX_FLOPS",
    "INT64_MAX",
    "FLOAT64_EXACT",
    "max_abs",
    "entry_multiplicity",
    "require_exact_sums",
]

#: Largest allocation a call makes unless told otherwise (``max_bytes=``).
DEFAULT_MAX_BYTES = 8 * 2**30
#: Largest term table an operator expression lowers to at one size (``prove(max_terms=)``).
OPS_MAX_TERMS = 20_000_000
#: Largest integer parameter of an operator expression (strides, paddings, shifts, factors,
#: kernel sizes): the proofs decide sizes a few multiples of these, one by one.
OPS_MAX_PARAMETER = 4096
#: Largest symbolic form (products plus symbols) built unless told otherwise (``max_terms=``).
DEFAULT_MAX_TERMS = 50_000
#: Memory for one block of triples when streaming them (operators of tiled layers).
DEFAULT_BLOCK_BYTES = 256 * 2**20
#: Largest layer (in triples) an identity check or solver works on unless told otherwise.
CHECK_MAX_PRODUCTS = 500_000
#: Largest dense array a step holds unless told otherwise (inputs, weights, dense working
#: arrays of a derivation or figure; a sparse matrix has its own ``max_bytes``).
DEFAULT_ARRAY_BYTES = 2**30
#: Largest number of steps of a loop whose length an argument chooses (trials, frames).
DEFAULT_MAX_STEPS = 10**6
#: Largest file read whole (weights, data) unless told otherwise.
DEFAULT_FILE_BYTES = 2**30
#: Bytes per path ``o <- m <- i`` of a composition of two layers while it is compared
#: (four int64 indices for each side, their concatenation, sort and counts; measured ~280).
PATH_BYTES = 300
#: Most floating-point operations one dense factorisation may take unless told otherwise
#: (about a minute of one core).
DEFAULT_MAX_FLOPS = 10**11
#: Largest integer the int64 arithmetic of matrices and tables holds.
INT64_MAX = 2**63 - 1
#: Integers up to this magnitude are exact in float64 (the dtype of integer gradients).
FLOAT64_EXACT = 2**53
#: Per-axis taps above which the exact in-bounds count is replaced by the dense bound.
_EXACT_TAPS = 2**22
#: Bytes per triple of a full table while it is built (three int64 indices, a mask, temporaries).
_TRIPLE_BYTES = 40


def check_limit(name: str, value, minimum: int = 1) -> int:
    """A positive integer limit (``max_bytes``, ``max_terms``, ``block_rows``) or a clear error.

    Examples
    --------
    >>> check_limit("max_terms", 10)
    10
    >>> check_limit("max_terms", None)
    Traceback (most recent call last):
    ...
    TypeError: max_terms must be an integer >= 1, got None
    """
    if isinstance(value, (bool, np.bool_)) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {shown(value)}")
    if operator.index(value) < minimum:
        raise ConvAlgebraError(f"{name} must be an integer >= {minimum}, got {shown(value)}")
    return operator.index(value)


def _ints(value) -> tuple[int, ...]:
    """A normalised per-axis field of a spec (always a tuple after validation)."""
    return cast(tuple[int, ...], value)


def _forward_channels(spec: ConvSpec) -> tuple[int, int, int]:
    """(C_out, C_in, C_in read per output channel) of the forward convolution."""
    c_out, c_in = spec.out_channels, spec.in_channels
    if spec.transposed:
        c_out, c_in = c_in, c_out
    per = c_in if spec.channel_table is not None else c_in // spec.groups
    return c_out, c_in, per


def axis_pairs(spec: ConvSpec, axis: int) -> tuple[int, bool]:
    """(count, exact) of (output position, tap) pairs along ``axis`` that read the input.

    Zero padding drops the taps that land outside; the other modes read every tap. The
    count is exact unless the kernel has more than 2**22 taps on the axis (then it is the
    dense bound ``n_out * k`` and ``exact`` is False).

    Notes
    -----
    Tap ``m`` of output ``j`` reads ``j s + m d - P_b``, inside when
    ``ceil((P_b - m d) / s) <= j <= floor((N - 1 + P_b - m d) / s)``.

    Examples
    --------
    >>> axis_pairs(ConvSpec((1, 5), 1, 3, stride=2, padding=1), 0)
    (7, True)
    """
    n_out, size = spec.forward_output_spatial[axis], spec.forward_input_spatial[axis]
    s, d, k = _ints(spec.stride)[axis], _ints(spec.dilation)[axis], _ints(spec.kernel_size)[axis]
    before = spec.padding[axis][0]
    if spec.padding_mode != "zeros":
        return n_out * k, True
    if k > _EXACT_TAPS:
        return n_out * k, False
    offset = before - np.arange(k, dtype=np.int64) * d
    lo = np.maximum(-(-offset // s), 0)
    hi = np.minimum((size - 1 + offset) // s, n_out - 1)
    return int(np.maximum(hi - lo + 1, 0).sum()), True


def spatial_pairs(spec: ConvSpec) -> tuple[int, bool]:
    """(count, exact) of in-bounds (output position, tap) pairs over all spatial axes."""
    counts = [axis_pairs(spec, a) for a in range(spec.ndim)]
    return math.prod(c for c, _ in counts), all(e for _, e in counts)


def dense_pairs(spec: ConvSpec) -> int:
    """Entries of the dense spatial table: output positions times kernel taps."""
    return math.prod(spec.forward_output_spatial) * math.prod(_ints(spec.kernel_size))


def channel_links(spec: ConvSpec) -> int:
    """Connected (output channel, input channel) pairs of the forward convolution."""
    if spec.channel_table is not None:
        return sum(map(sum, spec.channel_table))
    c_out, _, per = _forward_channels(spec)
    return c_out * per


def triple_count(spec: ConvSpec) -> int:
    """Triples of the layer's table (an upper bound when :func:`axis_pairs` is not exact)."""
    return channel_links(spec) * spatial_pairs(spec)[0]


def symbol_count(spec: ConvSpec) -> int:
    """Sympy symbols of a symbolic form: one per weight, per input and per output."""
    return math.prod(spec.weight_shape) + math.prod(spec.input_shape) + math.prod(spec.output_shape)


def table_bytes(spec: ConvSpec) -> int:
    """Bytes to build the spatial table (int64 positions, a validity mask, temporaries)."""
    return dense_pairs(spec) * 24


def matrix_bytes(spec: ConvSpec, itemsize: int) -> int:
    """Bytes of the sparse matrix and of the row template it is built from.

    Notes
    -----
    ``nnz (itemsize + 2 i) + rows (8 + i)`` for the CSR arrays (``i`` the index size, the
    column indices built once and offset once), plus the spatial table and 48 bytes per
    template entry (positions, taps, columns, slots, sort order).
    """
    nnz = triple_count(spec)
    _, c_in, per = _forward_channels(spec)
    n_cols = c_in * math.prod(spec.forward_input_spatial)
    idx = 4 if max(nnz, n_cols) < 2**31 else 8
    rows = math.prod(spec.output_shape)
    template = per * spatial_pairs(spec)[0] * 48 + table_bytes(spec)
    if spec.tile is not None or spec.channel_table is not None:
        template = triples_bytes(spec)
    return nnz * (itemsize + 2 * idx) + (rows + 1) * (8 + idx) + template


def triples_bytes(spec: ConvSpec, rows: int | None = None) -> int:
    """Bytes to build the triple table of ``rows`` forward-output rows (default: all).

    The table is built dense (every tap of every connected channel) before the padding taps
    are dropped, so this counts ``rows * C_in/groups * prod(k)`` entries plus the spatial table.
    """
    c_out, _, per = _forward_channels(spec)
    n_rows = c_out * math.prod(spec.forward_output_spatial) if rows is None else rows
    return n_rows * per * math.prod(_ints(spec.kernel_size)) * _TRIPLE_BYTES + table_bytes(spec)


def block_rows_for(spec: ConvSpec, max_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Forward-output rows per block so that one block of triples fits in ``max_bytes``.

    Examples
    --------
    >>> block_rows_for(ConvSpec((512, 224, 224), 512, 3, padding=1), 2**30)
    5766
    """
    max_bytes = check_limit("max_bytes", max_bytes)
    _, _, per = _forward_channels(spec)
    free = max_bytes - table_bytes(spec)
    per_row = per * math.prod(_ints(spec.kernel_size)) * _TRIPLE_BYTES
    if free < per_row:
        require_bytes(
            spec, "one row block of the triple table", table_bytes(spec) + per_row, max_bytes
        )
    return max(1, free // per_row)


def _size(nbytes: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes:,} bytes"


def require_bytes(
    spec: ConvSpec,
    what: str,
    nbytes: int,
    max_bytes: int,
    alternative: str = "use conv_operator(spec, weight) (matrix-free), smaller sizes, "
    "or a larger max_bytes=",
) -> None:
    """Refuse ``what`` of ``spec`` when it needs more than ``max_bytes``; say size and remedy."""
    max_bytes = check_limit("max_bytes", max_bytes)
    if nbytes <= max_bytes:
        return
    nnz, exact = spatial_pairs(spec)
    count = f"{'' if exact else 'up to '}{channel_links(spec) * nnz:,} non-zeros"
    raise ConvAlgebraError(
        f"{what} of {spec.describe()} has {count} and would need about {_size(nbytes)}, over "
        f"max_bytes={max_bytes:,}; {alternative}"
    )


def require_terms(
    spec: ConvSpec,
    what: str,
    terms: int,
    max_terms: int,
    alternative: str | None = None,
    option: str = "max_terms",
) -> None:
    """Refuse symbolic work of ``terms`` products and symbols above ``max_terms``.

    ``option`` is the caller's name for the limit, named in the message.
    """
    max_terms = check_limit(option, max_terms)
    if alternative is None:
        alternative = (
            "symbolic forms are for small layers: use smaller sizes, the numeric "
            f"functions, or a larger {option}="
        )
    if terms > max_terms:
        raise ConvAlgebraError(
            f"{what} of {spec.describe()} has {terms:,} products and symbols, more than "
            f"{option}={max_terms:,}; {alternative}"
        )


def require_symbolic(
    spec: ConvSpec, what: str, max_terms: int = DEFAULT_MAX_TERMS, option: str = "max_terms"
) -> None:
    """The budget of a symbolic form of ``spec``: its products and its symbols, each."""
    require_terms(spec, what, max(triple_count(spec), symbol_count(spec)), max_terms, option=option)


def require_table(
    spec: ConvSpec,
    what: str,
    max_products: int = CHECK_MAX_PRODUCTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> None:
    """The budget of work on the layer's full triple table: its triples and its bytes.

    Examples
    --------
    >>> require_table(ConvSpec((1, 8, 8), 1, 3), "check('adjoint')", max_products=10)
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: check('adjoint') of Conv2d(1, 1, kernel_size=(3, 3), stride=(1, 1), padding=((0, 0), (0, 0))) on input (1, 8, 8) has 324 products and symbols, more than max_products=10; the verdict depends on the configuration, not on the size beyond a few kernel extents: use smaller sizes, or a larger max_products=
    """
    count = triple_count(spec)
    max_products = check_limit("max_products", max_products)
    if count > max_products:
        raise ConvAlgebraError(
            f"{what} of {spec.describe()} has {count:,} products and symbols, more than "
            f"max_products={max_products:,}; the verdict depends on the configuration, not on the "
            "size beyond a few kernel extents: use smaller sizes, or a larger max_products="
        )
    require_bytes(spec, what, triples_bytes(spec), max_bytes, "use smaller sizes")


def _fan_in(spec: ConvSpec) -> int:
    """Most (input, tap) pairs one output of the layer reads: an upper bound."""
    if spec.channel_table is not None:
        per = max(sum(col) for col in zip(*spec.channel_table))
        per = max(per, max(map(sum, spec.channel_table)))
    else:
        per = spec.in_channels // spec.groups
    return per * math.prod(_ints(spec.kernel_size))


def require_pair(
    first: ConvSpec,
    second: ConvSpec,
    what: str,
    max_products: int = CHECK_MAX_PRODUCTS,
    max_bytes: int = DEFAULT_ARRAY_BYTES,
) -> int:
    """The budget of work on the paths of two layers composed either way; returns the bound.

    Each layer can be under :func:`require_table` while the pair is not: the paths
    ``o <- m <- i`` of ``second ∘ first`` number at most the triples of ``second`` times the
    largest fan-in of ``first``. Refused above ``max_products`` paths or ``max_bytes``.

    Examples
    --------
    >>> a, b = ConvSpec((8, 800), 8, 9), ConvSpec((8, 792), 8, 9)
    >>> require_pair(a, b, "check('composition')")
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: check('composition') of Conv1d(8, 8, kernel_size=(9,), stride=(1,), padding=((0, 0),)) on input (8, 800) and Conv1d(8, 8, kernel_size=(9,), stride=(1,), padding=((0, 0),)) on input (8, 792) has up to 32,845,824 paths o <- m <- i and would need about 9.2 GiB, over max_products=500,000 paths or max_bytes=1,073,741,824; use smaller sizes (the verdict depends on the configuration, not on the size beyond a few kernel extents), or a larger max_products=
    """
    max_products = check_limit("max_products", max_products)
    max_bytes = check_limit("max_bytes", max_bytes)
    paths = max(triple_count(second) * _fan_in(first), triple_count(first) * _fan_in(second))
    nbytes = paths * PATH_BYTES
    if paths > max_products or nbytes > max_bytes:
        raise ConvAlgebraError(
            f"{what} of {first.describe()} and {second.describe()} has up to {paths:,} paths "
            f"o <- m <- i and would need about {_size(nbytes)}, over max_products="
            f"{max_products:,} paths or max_bytes={max_bytes:,}; use smaller sizes (the verdict "
            "depends on the configuration, not on the size beyond a few kernel extents), or a "
            "larger max_products="
        )
    return paths


def _count(shape) -> int:
    """Entries of an array of ``shape`` (an int or a sequence of ints), exactly."""
    if isinstance(shape, (int, np.integer)):
        return max(int(shape), 0)
    return math.prod(max(int(n), 0) for n in shape)


def require_array(
    what: str,
    shape,
    itemsize: int = 8,
    max_bytes: int = DEFAULT_ARRAY_BYTES,
    alternative: str = "use smaller sizes",
) -> int:
    """Refuse a dense array of ``shape`` above ``max_bytes``; return its entry count.

    ``shape`` is the array's shape (or its entry count); the refusal names the entries, the
    bytes, the limit and ``alternative``.

    Examples
    --------
    >>> require_array("the input", (1, 150_000_000))
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: the input has 150,000,000 entries and would need about 1.1 GiB, over max_bytes=1,073,741,824; use smaller sizes
    """
    max_bytes = check_limit("max_bytes", max_bytes)
    n = _count(shape)
    nbytes = n * itemsize
    if nbytes > max_bytes:
        raise ConvAlgebraError(
            f"{what} has {n:,} entries and would need about {_size(nbytes)}, over "
            f"max_bytes={max_bytes:,}; {alternative}"
        )
    return n


def require_steps(
    what: str,
    steps: int,
    max_steps: int = DEFAULT_MAX_STEPS,
    alternative: str = "ask for fewer",
    option: str = "max_steps",
    unit: str = "steps",
) -> int:
    """Refuse a loop of ``steps`` steps above ``max_steps``; return ``steps``.

    Examples
    --------
    >>> require_steps("dottest(n_trials=10000000)", 10**7, 10**4, "use fewer trials")
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: dottest(n_trials=10000000) would take 10,000,000 steps, more than max_steps=10,000; use fewer trials
    """
    max_steps = check_limit(option, max_steps)
    if steps > max_steps:
        raise ConvAlgebraError(
            f"{what} would take {steps:,} {unit}, more than {option}={max_steps:,}; {alternative}"
        )
    return steps


def _dtype_size(dtype) -> int:
    return 8 if dtype is None else max(np.dtype(dtype).itemsize, 1)


def empty(shape, dtype=float, *, what: str = "an array", max_bytes: int = DEFAULT_MAX_BYTES):
    """``np.empty`` after :func:`require_array` (default limit: ``DEFAULT_MAX_BYTES``)."""
    require_array(what, shape, _dtype_size(dtype), max_bytes)
    return np.empty(shape, dtype=dtype)


def zeros(shape, dtype=float, *, what: str = "an array", max_bytes: int = DEFAULT_MAX_BYTES):
    """``np.zeros`` after :func:`require_array` (default limit: ``DEFAULT_MAX_BYTES``).

    Examples
    --------
    >>> zeros((2, 3), int).tolist()
    [[0, 0, 0], [0, 0, 0]]
    >>> zeros((60004, 60004), bool, what="the grid", max_bytes=2**30)
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: the grid has 3,600,480,016 entries and would need about 3.4 GiB, over max_bytes=1,073,741,824; use smaller sizes
    """
    require_array(what, shape, _dtype_size(dtype), max_bytes)
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype=float, *, what: str = "an array", max_bytes: int = DEFAULT_MAX_BYTES):
    """``np.ones`` after :func:`require_array` (default limit: ``DEFAULT_MAX_BYTES``)."""
    require_array(what, shape, _dtype_size(dtype), max_bytes)
    return np.ones(shape, dtype=dtype)


def full(
    shape, fill_value, dtype=None, *, what: str = "an array", max_bytes: int = DEFAULT_MAX_BYTES
):
    """``np.full`` after :func:`require_array` (default limit: ``DEFAULT_MAX_BYTES``)."""
    require_array(what, shape, _dtype_size(dtype), max_bytes)
    return np.full(shape, fill_value, dtype=dtype)


def dense(matrix, *, what: str = "the dense matrix", max_bytes: int = DEFAULT_ARRAY_BYTES):
    """``matrix.toarray()`` of a scipy sparse matrix after :func:`require_array`.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> dense(sp.csr_array(np.eye(2))).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    require_array(
        what,
        matrix.shape,
        matrix.dtype.itemsize,
        max_bytes,
        "use the sparse matrix or a slice of it, or smaller sizes",
    )
    return matrix.toarray()


def fftn(a: np.ndarray, axes=None, *, max_bytes: int = DEFAULT_ARRAY_BYTES) -> np.ndarray:
    """``np.fft.fftn`` after :func:`require_array` (its complex result and a temporary).

    Examples
    --------
    >>> fftn(np.array([1.0, 0.0])).tolist()
    [(1+0j), (1+0j)]
    """
    require_array("the FFT", 2 * np.size(a), 16, max_bytes, "use smaller sizes")
    return np.fft.fftn(a, axes=axes)


def ifftn(a: np.ndarray, axes=None, *, max_bytes: int = DEFAULT_ARRAY_BYTES) -> np.ndarray:
    """``np.fft.ifftn`` after :func:`require_array` (its complex result and a temporary)."""
    require_array("the inverse FFT", 2 * np.size(a), 16, max_bytes, "use smaller sizes")
    return np.fft.ifftn(a, axes=axes)


def svd(
    a: np.ndarray,
    compute_uv: bool = True,
    *,
    max_bytes: int = DEFAULT_ARRAY_BYTES,
    max_flops: int = DEFAULT_MAX_FLOPS,
):
    """``np.linalg.svd`` of a matrix after its memory and its work are estimated.

    Notes
    -----
    An ``m x n`` SVD takes about ``4 m n min(m, n)`` flops (``+ 8 min^3`` with the vectors)
    and holds ``m n`` entries and the factors (``m^2 + n^2`` more with ``compute_uv``).

    Examples
    --------
    >>> np.round(svd(np.diag([3.0, 2.0]), compute_uv=False), 12).tolist()
    [3.0, 2.0]
    >>> svd(np.zeros((3000, 3000)), max_flops=10**9)
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: the SVD of a 3,000 x 3,000 matrix would take 324,000,000,000 flops, more than max_flops=1,000,000,000; use smaller sizes
    """
    m, n = np.shape(a)
    small = min(m, n)
    entries = m * n + (m * m + n * n if compute_uv else small)
    require_array(f"the SVD of a {m:,} x {n:,} matrix", 2 * entries, 8, max_bytes)
    flops = 4 * m * n * small + (8 * small**3 if compute_uv else 0)
    require_steps(
        f"the SVD of a {m:,} x {n:,} matrix",
        flops,
        max_flops,
        "use smaller sizes",
        option="max_flops",
        unit="flops",
    )
    if compute_uv:
        return np.linalg.svd(a)
    return np.linalg.svd(a, compute_uv=False)


def read_regular_file(path, what: str, max_bytes: int = DEFAULT_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, or a clear refusal.

    The file is opened without blocking and checked by its own descriptor, so a FIFO, a
    device (``/dev/zero``) or a directory is refused before a byte is read, whatever link
    leads to it, and the size is known before reading.

    Examples
    --------
    >>> read_regular_file("/dev/zero", "weight")
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: weight must be a regular file, got '/dev/zero' (a character device)
    """
    max_bytes = check_limit("max_bytes", max_bytes)
    name = shown(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConvAlgebraError(f"cannot read {what} from {name}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConvAlgebraError(
                f"{what} must be a regular file, got {name} ({_file_kind(info.st_mode)})"
            )
        if info.st_size > max_bytes:
            raise ConvAlgebraError(
                f"{what} file {name} has {_size(info.st_size)}, over max_bytes={max_bytes:,}; "
                "use a smaller file"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew while being read
        raise ConvAlgebraError(f"{what} file {name} grew past max_bytes={max_bytes:,} while read")
    return data


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def max_abs(array: np.ndarray) -> int:
    """The largest magnitude of an integer (or bool) array, as an exact Python int.

    Examples
    --------
    >>> max_abs(np.array([3, -2**63], np.int64)) == 2**63
    True
    """
    if array.size == 0:
        return 0
    return max(abs(int(array.max())), abs(int(array.min())))


def entry_multiplicity(spec: ConvSpec) -> int:
    """Most triples one matrix entry sums: 1 with zero padding (every tap of a row reads its
    own input), else up to the kernel's taps (wrapped or reflected taps can meet)."""
    if spec.padding_mode == "zeros":
        return 1
    return math.prod(_ints(spec.kernel_size))


def require_exact_sums(
    what: str,
    terms: int,
    arrays,
    bound: int = INT64_MAX,
    alternative: str = "pass float arrays to accept rounding, or smaller integers",
) -> None:
    """Refuse integer ``arrays`` whose products (one entry of each), summed ``terms`` times,
    could exceed ``bound`` in magnitude; nothing to check when one of them is not integer.

    Integer results are then exact: no int64 sum wraps (``bound=INT64_MAX``) and no integer
    result computed in float64 is rounded (``bound=FLOAT64_EXACT``).

    Examples
    --------
    >>> require_exact_sums("the matrix", 3, [np.full(3, 2**62)])
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: the matrix: integer entries up to 2**62.0 summed over up to 3 terms can reach 2**63.6, over the exact range 2**63 - 1 (int64); pass float arrays to accept rounding, or smaller integers
    """
    if not all(np.asarray(a).dtype.kind in "biu" for a in arrays):
        return
    peak = terms * math.prod(max_abs(np.asarray(a)) for a in arrays)
    if peak > bound:
        names = {INT64_MAX: "2**63 - 1 (int64)", FLOAT64_EXACT: "2**53 (exact integers in float64)"}
        largest = max(max_abs(np.asarray(a)) for a in arrays)
        raise ConvAlgebraError(
            f"{what}: integer entries up to 2**{math.log2(largest):.1f} summed over up to "
            f"{terms:,} terms can reach 2**{math.log2(peak):.1f}, over the exact range "
            f"{names.get(bound, f'{bound:,}')}; {alternative}"
        )


# --------------------------------------------------------------------- work and iterations
__all__ += ["DEFAULT_MAX_FLOPS", "MAX_ITERATIONS", "require_memory", "require_work"]
__all__ += ["check_iterations"]
#: Most floating-point operations one numeric call performs unless told otherwise
#: (``max_flops=``): about half a minute to a minute of one core.
DEFAULT_MAX_FLOPS = 2**36
#: Most steps of an iterative method (Lanczos restarts, power or Gram iterations) by default.
MAX_ITERATIONS = 10**5


def require_memory(what: str, nbytes: int, max_bytes: int, alternative: str) -> None:
    """Refuse ``what`` when it needs more than ``max_bytes``: the size, the limit, the way out.

    Examples
    --------
    >>> require_memory("the DFT blocks", 3 * 2**30, 2**30, "pass k=...")
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: the DFT blocks would need about 3.0 GiB, over max_bytes=1,073,741,824; pass k=...
    """
    max_bytes = check_limit("max_bytes", max_bytes)
    if nbytes > max_bytes:
        raise ConvAlgebraError(
            f"{what} would need about {_size(int(nbytes))}, over max_bytes={max_bytes:,}; "
            f"{alternative}"
        )


def require_work(what: str, flops: float, max_flops: int, alternative: str) -> None:
    """Refuse ``what`` when its estimated floating-point work exceeds ``max_flops``.

    Examples
    --------
    >>> require_work("a dense SVD", 1.7e11, 2**36, "pass k=...")
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: a dense SVD needs about 1.7e+11 floating-point operations, over max_flops=68,719,476,736; pass k=...
    """
    max_flops = check_limit("max_flops", max_flops)
    if flops > max_flops:
        raise ConvAlgebraError(
            f"{what} needs about {flops:.2g} floating-point operations, over "
            f"max_flops={max_flops:,}; {alternative}"
        )


def check_iterations(name: str, value, maximum: int = MAX_ITERATIONS, minimum: int = 0) -> int:
    """A step count in ``[minimum, maximum]`` or a clear error (never an endless loop).

    Examples
    --------
    >>> check_iterations("gram_iterations", 2**61, 64)
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: gram_iterations must be an integer in [0, 64], got 2305843009213693952
    """
    if isinstance(value, (bool, np.bool_)) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be an integer in [{minimum}, {maximum}], got {shown(value)}")
    if not minimum <= operator.index(value) <= maximum:
        raise ConvAlgebraError(
            f"{name} must be an integer in [{minimum}, {maximum}], got {shown(value)}"
        )
    return operator.index(value)
