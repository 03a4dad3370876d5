"""The textbook variants of chapter 9, on the same triple-table machinery.

* locally connected (unshared) layers, eq. 9.9, and tiled convolution, eq. 9.10: specs with
  ``tile`` set (see :class:`~convalgebra.spec.ConvSpec`);
* average pooling: a fixed matrix (PyTorch's ``avg_pool{1,2,3}d`` semantics);
* max pooling: *not linear*. At a given input it acts as a selection matrix, which
  :func:`max_pool_selection` returns -- a different matrix for a different input.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import budget
from .connectivity import padded_positions, spatial_table
from .errors import ConvAlgebraError, shown
from .spec import ConvSpec, normalize_tuple, pool_output_size, pool_stride

__all__ = ["locally_connected", "tiled", "avg_pool_matrix", "max_pool_selection", "pool_spec"]


def tiled(
    input_shape: tuple[int, ...], out_channels: int, kernel_size, tile, **options: Any
) -> ConvSpec:
    """A tiled convolution (eq. 9.10): ``tile`` kernels used in rotation along each axis.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C_in, *spatial)``, no batch axis.
    out_channels : int
        Number of output channels.
    kernel_size : int or tuple of int
        The kernel's spatial size.
    tile : int or tuple of int
        Kernels in rotation per axis: output position ``p`` uses kernel ``p mod tile``.
    **options
        Any other :class:`ConvSpec` parameter (``stride``, ``padding``, ...).

    Returns
    -------
    ConvSpec
        The spec with ``tile`` set; its weight has shape ``(*tile, C_out, C_in, *k)``.

    Examples
    --------
    >>> spec = tiled((1, 8), 1, 3, tile=2)
    >>> spec.weight_shape, spec.n_weights
    ((2, 1, 1, 3), 6)
    """
    return ConvSpec(input_shape, out_channels, kernel_size, tile=tile, **options)


def locally_connected(
    input_shape: tuple[int, ...], out_channels: int, kernel_size, **options: Any
) -> ConvSpec:
    """A locally connected layer (eq. 9.9): a separate kernel at every output position.

    It is the tiled convolution whose tile is the whole output; ``weight[pos]`` is the
    ordinary ``(C_out, C_in, *k)`` kernel used at output position ``pos``.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C_in, *spatial)``, no batch axis.
    out_channels : int
        Number of output channels.
    kernel_size : int or tuple of int
        The kernel's spatial size.
    **options
        Any other :class:`ConvSpec` parameter (``stride``, ``padding``, ...) except ``tile``.

    Returns
    -------
    ConvSpec
        The tiled spec whose tile is the output's spatial shape.

    Examples
    --------
    >>> spec = locally_connected((1, 5), 1, 3)
    >>> spec.weight_shape, spec.is_locally_connected
    ((3, 1, 1, 3), True)
    """
    shared = ConvSpec(input_shape, out_channels, kernel_size, **options)
    return ConvSpec(input_shape, out_channels, kernel_size, tile=shared.output_shape[1:], **options)


def _pool_spec(input_shape, kernel_size, stride, padding, dilation, ceil_mode) -> ConvSpec:
    """A depthwise spec whose zero-padded windows are exactly the pooling windows."""
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"input_shape must be a tuple (C, *spatial), got {shown(input_shape)}")
    if not 2 <= len(input_shape) <= 4:
        raise ConvAlgebraError(
            f"input_shape must be (C, *spatial) with 1-3 spatial sizes, got {shown(input_shape)}"
        )
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in input_shape):
        raise TypeError(f"input_shape must hold integers, got {shown(input_shape)}")
    n = len(input_shape) - 1
    kernel = normalize_tuple(kernel_size, n, "kernel_size")
    stride = pool_stride(kernel, stride)
    pad = normalize_tuple(padding, n, "padding", minimum=0)
    dilation = normalize_tuple(dilation, n, "dilation")
    if any(2 * p > k for p, k in zip(pad, kernel)):
        raise ConvAlgebraError(
            f"padding={pad} must be at most half of kernel_size={kernel} (as in PyTorch)"
        )
    pairs = []
    for size, k, s, p, d in zip(input_shape[1:], kernel, stride, pad, dilation):
        out = pool_output_size(size, k, s, p, d, ceil_mode)
        if out < 1:
            raise ConvAlgebraError(
                f"pooling window {kernel} (padding {pad}) does not fit the input {input_shape[1:]}"
            )
        extra = max(0, (out - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
        pairs.append((p, p + extra))
    c = input_shape[0]
    return ConvSpec(
        input_shape,
        c,
        kernel,
        stride=stride,
        padding=tuple(pairs),
        dilation=dilation,
        groups=c,
        bias=False,
    )


def pool_spec(
    input_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False
) -> ConvSpec:
    """The depthwise spec whose zero-padded windows are PyTorch's pooling windows.

    With ``ceil_mode`` the last window may hang past the padding: the spec pads after by the
    overhang, so that its triples are exactly the taps that read the input or the padding.

    Examples
    --------
    >>> pool_spec((1, 5), 2, ceil_mode=True).padding
    ((0, 1),)
    """
    return _pool_spec(input_shape, kernel_size, stride, padding, dilation, ceil_mode)


def _axis_counts(spec: ConvSpec, axis: int, lo: int, hi: int) -> np.ndarray:
    """Per output position along ``axis``: taps whose padded coordinate lies in [lo, hi)."""
    taps = padded_positions(spec, axis)
    return ((taps >= lo) & (taps < hi)).sum(axis=1)


def avg_pool_matrix(
    input_shape: tuple[int, ...],
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> sp.csr_array:
    """The fixed matrix of average pooling (PyTorch's ``avg_pool{1,2,3}d``), channels apart.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, *spatial)`` with 1, 2 or 3 spatial dimensions.
    kernel_size : int or tuple of int
        The window.
    stride : int or tuple of int, optional
        Default: the window (PyTorch's default).
    padding : int or tuple of int, default 0
        Zeros on both sides of each axis.
    ceil_mode : bool, default False
        Round the output size up: a last window may start in the input and end past it.
    count_include_pad : bool, default True
        Divide by the whole window, padding included; ``False``: by the input positions it
        covers.
    divisor_override : int, optional
        Divide every window by this instead.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(prod(output_shape), prod(input_shape))``, float64, C-order flattening.

    Examples
    --------
    >>> avg_pool_matrix((1, 4), 2).toarray()
    array([[0.5, 0.5, 0. , 0. ],
           [0. , 0. , 0.5, 0.5]])
    >>> avg_pool_matrix((1, 3), 2, padding=1, count_include_pad=False).toarray()
    array([[1. , 0. , 0. ],
           [0. , 0.5, 0.5]])
    """
    spec = _pool_spec(input_shape, kernel_size, stride, padding, 1, ceil_mode)
    from .operators import conv_matrix

    ones = conv_matrix(spec, budget.ones(spec.weight_shape))
    if divisor_override is not None:
        if isinstance(divisor_override, (bool, np.bool_)) or not hasattr(
            type(divisor_override), "__index__"
        ):
            raise TypeError(
                f"divisor_override must be a positive integer or None, got {shown(divisor_override)}"
            )
        if divisor_override < 1:
            raise ConvAlgebraError(
                f"divisor_override must be a positive integer, got {shown(divisor_override)}"
            )
        divisor_override = int(divisor_override)
        return (ones / divisor_override).tocsr()
    divisor = np.ones(1)
    for axis, size in enumerate(spec.input_shape[1:]):
        p = spec.padding[axis][0]
        lo, hi = (-p, size + p) if count_include_pad else (0, size)
        divisor = np.multiply.outer(divisor, _axis_counts(spec, axis, lo, hi)).reshape(-1)
    scale = np.tile(1.0 / divisor, spec.out_channels)
    return (sp.diags_array(scale) @ ones).tocsr()


def _real_input(x) -> np.ndarray:
    """``x`` as float64, or a TypeError naming the rule (real numbers only: max needs an order)."""
    if not isinstance(x, np.ndarray) and hasattr(x, "detach"):
        x = x.detach().cpu().numpy()  # a torch tensor, possibly requiring grad
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"x must be a real numeric array, got {type(x).__name__}") from exc
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"x must be a real numeric array (max pooling compares values), got dtype {array.dtype}"
        )
    return array.astype(np.float64)


def max_pool_selection(
    x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False
) -> sp.csr_array:
    """The selection matrix max pooling applies *at this input* (max pooling is not linear).

    ``S @ x.ravel() == max_pool(x).ravel()``; each row holds one 1, at the first maximum of
    its window (PyTorch's tie rule). Another input generally selects differently.

    A window that lies entirely in the padding (possible with dilation or ``ceil_mode``)
    selects nothing: its row is empty. PyTorch gives ``-inf`` there (the maximum of an empty
    set), which no selection can produce; ``S.empty_rows`` lists those rows:
    ``y = S @ x.ravel(); y[S.empty_rows] = -np.inf`` equals PyTorch's output.

    Parameters
    ----------
    x : array_like
        The input, ``(C, *spatial)`` with 1, 2 or 3 spatial dimensions; real numbers.
    kernel_size : int or tuple of int
        The window.
    stride : int or tuple of int, optional
        Default: the window (PyTorch's default).
    padding : int or tuple of int, default 0
        Implicit ``-inf`` on both sides of each axis (never selected).
    dilation : int or tuple of int, default 1
        Step between the window's taps.
    ceil_mode : bool, default False
        Round the output size up (PyTorch's rule).

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(prod(output_shape), prod(x.shape))``, float64, with an ``empty_rows``
        attribute (int array, flat output rows whose window holds no input).

    Examples
    --------
    >>> max_pool_selection(np.array([[3.0, 1.0, 2.0, 5.0]]), 2).toarray()
    array([[1., 0., 0., 0.],
           [0., 0., 0., 1.]])
    """
    x = _real_input(x)
    if x.ndim < 2 or x.ndim > 4:
        raise ConvAlgebraError(
            f"x must have shape (C, *spatial) with 1-3 spatial dims, got {x.shape}"
        )
    spec = _pool_spec(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    table = spatial_table(spec)
    c, p_in = x.shape[0], math.prod(x.shape[1:])
    from .operators import gather_patches, with_fill_column

    values = gather_patches(with_fill_column(x.reshape(c, p_in), -np.inf), table)  # (C, P_out, K)
    best = np.argmax(np.where(np.isnan(values), np.inf, values), axis=2)
    cols = np.take_along_axis(table[None].repeat(c, 0), best[..., None], axis=2)[..., 0]
    inside = cols >= 0
    cols = cols + (np.arange(c) * p_in)[:, None]
    rows = np.arange(cols.size)
    keep = inside.ravel()
    matrix = sp.csr_array(
        (budget.ones(int(keep.sum())), (rows[keep], cols.ravel()[keep])),
        shape=(rows.size, c * p_in),
    )
    matrix.empty_rows = rows[~keep]
    return matrix
