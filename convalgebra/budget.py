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
    "CHECK_MAX_PRODUCTS",
]

#: Largest allocation a call makes unless told otherwise (``max_bytes=``).
DEFAULT_MAX_BYTES = 8 * 2**30
#: Largest symbolic form (products plus symbols) built unless told otherwise (``max_terms=``).
DEFAULT_MAX_TERMS = 50_000
#: Memory for one block of triples when streaming them (operators of tiled layers).
DEFAULT_BLOCK_BYTES = 256 * 2**20
#: Largest layer (in triples) an identity check or solver works on unless told otherwise.
CHECK_MAX_PRODUCTS = 500_000
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
