"""Backward passes as matrix transposes.

For a layer ``y = M(w) x + B b`` (``M`` the convolution matrix, ``B`` the bias broadcast) and
an upstream gradient ``g = dL/dy``:

* input gradient ``dL/dx = M(w)^T g`` -- the transposed convolution of ``g``;
* kernel gradient ``dL/dw = J(x)^T g`` with ``J`` the im2col matrix (eq. 9.11 of the Deep
  Learning book);
* bias gradient ``dL/db = B^T g`` -- ``g`` summed over each output channel.

All three come in PyTorch's shapes (no batch axis) and equal ``torch.autograd.grad`` exactly
on integer data. Complex arguments follow torch's complex autograd: the transposes are
conjugate transposes (``M(w)^H g``, ``J(x)^H g``). ``method="matrix"`` builds the sparse matrices and multiplies by their
transposes (the literal definition); ``method="operator"`` applies the same transposes
matrix-free, one chunk of output positions at a time, so memory stays bounded.
:func:`colliding_input_sizes` and :func:`transpose_spec` hold the size bookkeeping that a
transposed convolution needs (several input sizes share one output size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .connectivity import _channel_layout, iter_triples, spatial_table, tap_weight_order
from .errors import ConvAlgebraError, shown
from .operators import (
    _as_numeric,
    _bincount,
    _check_spec,
    _gather_patches,
    _with_fill_column,
    _gather_chunks,
    check_input,
    check_weight,
    conv_matrix,
    conv_operator,
    kernel_jacobian,
)
from .spec import MAX_SIZE, ConvSpec, normalize_tuple

__all__ = [
    "AxisSizes",
    "CollidingSizes",
    "SizeRange",
    "bias_gradient",
    "check_grad_output",
    "colliding_input_sizes",
    "input_gradient",
    "symbolic_backward",
    "transpose_spec",
    "weight_gradient",
]

METHODS = ("auto", "matrix", "operator")


# --------------------------------------------------------------------------- validation
def check_grad_output(spec: ConvSpec, grad_output) -> np.ndarray:
    """Return ``grad_output`` as an array of ``spec.output_shape`` or raise a clear error.

    Examples
    --------
    >>> check_grad_output(ConvSpec((1, 5), 1, 3), np.ones((1, 4)))
    Traceback (most recent call last):
    ...
    convalgebra.errors.ConvAlgebraError: grad_output must have shape (1, 3) (C_out, *spatial) of the layer's output, no batch axis, got (1, 4)
    """
    _check_spec(spec)
    layout = "(C_out, *spatial) of the layer's output, no batch axis"
    shape = np.shape(grad_output) if hasattr(grad_output, "shape") else None
    if shape is not None and tuple(shape[1:]) == spec.output_shape:
        layout += f"; got a leading axis of {shape[0]}: pass one example at a time"
    return _as_numeric("grad_output", grad_output, spec.output_shape, layout)


def _check_method(method: str) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be one of {METHODS}, got {shown(method)}")
    if method not in METHODS:
        raise ConvAlgebraError(f"method must be one of {METHODS}, got {shown(method)}")
    return "operator" if method == "auto" else method


def _common_dtype(*arrays: np.ndarray) -> np.dtype:
    dtype = np.result_type(*arrays)
    return np.dtype(np.float64) if dtype.kind in "biu" else dtype


def symbolic_backward(spec: ConvSpec, *, bias: bool | None = None, max_terms: int = 50_000):
    """Forward and backward equations in sympy: see
    :func:`convalgebra.backward_symbolic.symbolic_backward` (imported on first use, so the
    numeric gradients do not load sympy). Returns a
    :class:`~convalgebra.backward_symbolic.SymbolicBackward`.

    Examples
    --------
    >>> symbolic_backward(ConvSpec((1, 3), 1, 2), bias=False)["dL/da2"]
    Eq(dL/da2, dL/dz1*w2 + dL/dz2*w1)
    """
    from .backward_symbolic import symbolic_backward as build

    return build(spec, bias=bias, max_terms=max_terms)


# ---------------------------------------------------------------------------- gradients
def input_gradient(spec: ConvSpec, weight, grad_output, *, method: str = "auto") -> np.ndarray:
    """``dL/dx = M(w)^T g``: the gradient of the loss with respect to the layer's input.

    Parameters
    ----------
    spec : ConvSpec
        Any spec (forward or transposed, every padding mode, groups, tiles, 1-D to 3-D).
    weight : array_like of shape ``spec.weight_shape`` (PyTorch layout)
    grad_output : array_like of shape ``spec.output_shape``
        ``g = dL/dy`` for one example (no batch axis).
    method : {"auto", "matrix", "operator"}
        ``"matrix"``: ``conv_matrix(spec, weight).T @ g``. ``"operator"`` (and ``"auto"``):
        the same product matrix-free (:func:`~convalgebra.operators.conv_operator`'s
        ``rmatvec``).

    Returns
    -------
    ndarray of shape ``spec.input_shape``
        float64 for integer arguments, otherwise their common dtype.

    Notes
    -----
    Forward ``y[o] = sum_{(o,i,k) in T} w[k] x[i]``; adjoint ``dL/dx[i] = sum_{(o,i,k) in T}
    w[k] g[o]`` -- eq. 9.13 of the Deep Learning book, the transposed convolution of ``g``.

    Examples
    --------
    >>> spec = ConvSpec((1, 5), 1, 3, stride=2)
    >>> input_gradient(spec, [[[1, 2, 3]]], [[1, 10]])
    array([[ 1.,  2., 13., 20., 30.]])
    """
    how = _check_method(method)
    w = check_weight(_check_spec(spec), weight)
    g = check_grad_output(spec, grad_output)
    dtype = _common_dtype(w, g)
    w, g = w.astype(dtype, copy=False), g.astype(dtype, copy=False).ravel()
    if how == "matrix":
        flat = conv_matrix(spec, w).conj().T @ g
    else:
        flat = conv_operator(spec, w).rmatvec(g)
    return np.asarray(flat, dtype=dtype).reshape(spec.input_shape)


def _weight_grad_shared(spec: ConvSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``J^T g`` for an ordinary convolution: patch-by-patch products, chunk by chunk.

    ``u`` lives on the forward convolution's input, ``v`` on its output.
    """
    c_out, c_in, per = _channel_layout(spec)
    groups = spec.groups
    table = spatial_table(spec)
    k = table.shape[1]
    padded = _with_fill_column(u.reshape(c_in, -1), 0)
    grad = v.reshape(groups, c_out // groups, -1)
    acc = np.zeros((groups, c_out // groups, per, k), dtype=np.result_type(u, v))
    for rows in _gather_chunks(spec):
        patches = _gather_patches(padded, table[rows]).reshape(groups, per, -1, k)
        acc += np.einsum("gop,gipk->goik", grad[:, :, rows], patches, optimize=True)
    out = np.empty_like(acc)
    out[..., tap_weight_order(spec)] = acc  # spatial tap -> weight tap (reversed when flip)
    return out


def _weight_grad_triples(spec: ConvSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``J^T g`` for tiled or channel-table layers: contract the triples block by block."""
    u, v = u.ravel(), v.ravel()
    n_w = math.prod(spec.weight_shape)
    acc = np.zeros(n_w, dtype=np.result_type(u, v))
    for _, t in iter_triples(spec):
        acc += _bincount(t.weight_index, u[t.in_index] * v[t.out_index], n_w)
    return acc


def weight_gradient(spec: ConvSpec, x, grad_output, *, method: str = "auto") -> np.ndarray:
    """``dL/dw = J(x)^T g``: the kernel gradient (eq. 9.11 of the Deep Learning book).

    Parameters
    ----------
    spec : ConvSpec
    x : array_like of shape ``spec.input_shape``
        The layer's input for one example.
    grad_output : array_like of shape ``spec.output_shape``
    method : {"auto", "matrix", "operator"}
        ``"matrix"``: ``kernel_jacobian(spec, x).T @ g``. ``"operator"`` (and ``"auto"``):
        the same sums without storing ``J`` (patches gathered in chunks).

    Returns
    -------
    ndarray of shape ``spec.weight_shape``

    Notes
    -----
    ``dL/dw[k] = sum_{(o,i,k) in T} x[i] g[o]``: each weight collects one product per use,
    which is why parameter sharing turns the gradient into a sum over output positions.
    For a transposed spec the roles of ``x`` and ``g`` on the forward triples are swapped.

    Examples
    --------
    >>> spec = ConvSpec((1, 5), 1, 3, stride=2)
    >>> weight_gradient(spec, [[1, 2, 3, 4, 5]], [[1, 10]])
    array([[[31., 42., 53.]]])
    """
    how = _check_method(method)
    a = check_input(_check_spec(spec), x)
    g = check_grad_output(spec, grad_output)
    dtype = _common_dtype(a, g)
    a, g = a.astype(dtype, copy=False), g.astype(dtype, copy=False)
    if dtype.kind == "c":
        a = np.conj(a)  # J(x)^H g, torch's complex autograd convention
    if how == "matrix":
        flat = kernel_jacobian(spec, a).T @ g.ravel()
        return np.asarray(flat, dtype=dtype).reshape(spec.weight_shape)
    u, v = (g, a) if spec.transposed else (a, g)
    if spec.tile is not None or spec.channel_table is not None:
        return _weight_grad_triples(spec, u, v).reshape(spec.weight_shape)
    return _weight_grad_shared(spec, u, v).reshape(spec.weight_shape)


def bias_gradient(spec: ConvSpec, grad_output) -> np.ndarray:
    """``dL/db = B^T g``: the upstream gradient summed over each output channel.

    Raises
    ------
    ConvAlgebraError
        When ``spec.bias`` is False (the layer has no bias), or ``grad_output`` has the wrong
        shape.

    Examples
    --------
    >>> bias_gradient(ConvSpec((1, 4), 2, 3), [[1, 2], [3, 4]])
    array([3., 7.])
    """
    g = check_grad_output(spec, grad_output)
    if not spec.bias:
        raise ConvAlgebraError(
            f"{spec.describe()} has bias=False: there is no bias gradient"
        )
    dtype = _common_dtype(g)
    return g.reshape(spec.out_channels, -1).sum(axis=1, dtype=dtype)


# -------------------------------------------------------------- size bookkeeping
class SizeRange(Sequence):
    """Consecutive sizes ``start, start + 1, …, stop - 1``, stored as a ``range``.

    Behaves as a tuple of ints (``len``, ``in``, ``index``, slicing, iteration, equality with
    tuples) without listing its elements: a stride of 10**8 gives 10**8 colliding sizes.

    Examples
    --------
    >>> SizeRange(7, 9) == (7, 8), 8 in SizeRange(7, 9), SizeRange(7, 9).index(8)
    (True, True, 1)
    >>> SizeRange(0, 10**8)
    SizeRange(0, 100000000)
    """

    def __init__(self, start: int, stop: int) -> None:
        self._range = range(start, max(start, stop))

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index):
        item = self._range[index]
        return tuple(item) if isinstance(item, range) else item

    def __contains__(self, value) -> bool:
        return isinstance(value, (int, np.integer)) and int(value) in self._range

    def index(self, value, start: int = 0, stop: int | None = None) -> int:
        if value not in self:
            raise ValueError(f"{shown(value)} is not in {shown(self)}")
        return self._range.index(int(value))

    def __eq__(self, other) -> bool:
        if isinstance(other, SizeRange):
            return self._range == other._range
        if isinstance(other, (tuple, list, range)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._range.start, self._range.stop))

    def __repr__(self) -> str:
        if len(self) <= 16:
            return repr(tuple(self._range))
        return f"SizeRange({self._range.start}, {self._range.stop})"


@dataclass(frozen=True)
class AxisSizes:
    """Along one spatial axis: the large-side sizes that share one strided-side size.

    Attributes
    ----------
    axis : int
    output_size : int
        Size on the strided side: the forward convolution's output (= a transposed spec's
        input).
    input_sizes : tuple of int
        Every forward input size mapped to ``output_size`` (ascending). For a transposed
        spec: every output size its input reaches, one per ``output_padding <
        max(stride, dilation)`` (PyTorch's rule; with ``output_padding >= stride`` the size's
        forward convolution has more outputs, see :func:`transpose_spec`).
    output_padding : tuple of int
        Parallel to ``input_sizes``: the ``output_padding`` a transposed convolution needs
        to produce that size.
    current : int
        The spec's own large-side size (forward input, or transposed output).
    """

    axis: int
    output_size: int
    input_sizes: Sequence[int]
    output_padding: Sequence[int]
    current: int

    @property
    def collides(self) -> bool:
        return len(self.input_sizes) > 1

    def __str__(self) -> str:
        if not self.collides:
            return (
                f"axis {self.axis}: only input size {self.input_sizes[0]} gives output size "
                f"{self.output_size} (no collision)"
            )
        pairs = ", ".join(
            f"{n} (output_padding={p})" for n, p in zip(self.input_sizes[:8], self.output_padding[:8])
        )
        if len(self.input_sizes) > 8:
            pairs += (f", … ({len(self.input_sizes):,} sizes, up to {self.input_sizes[-1]} "
                      f"(output_padding={self.output_padding[-1]}))")
        return f"axis {self.axis}: input sizes {pairs} all give output size {self.output_size}"


@dataclass(frozen=True)
class CollidingSizes:
    """Result of :func:`colliding_input_sizes`: one :class:`AxisSizes` per spatial axis."""

    spec: ConvSpec
    axes: tuple[AxisSizes, ...]

    @property
    def collides(self) -> bool:
        """True when some axis has several input sizes for one output size."""
        return any(a.collides for a in self.axes)

    def output_padding_for(self, sizes) -> tuple[int, ...]:
        """The ``output_padding`` that makes the transposed convolution produce ``sizes``.

        Raises ``ConvAlgebraError`` naming the axis and the reachable sizes otherwise.
        """
        sizes = (sizes,) * len(self.axes) if isinstance(sizes, (int, np.integer)) else tuple(sizes)
        if len(sizes) != len(self.axes):
            raise ConvAlgebraError(
                f"sizes must have {len(self.axes)} entries (one per spatial axis), got {shown(sizes)}"
            )
        result = []
        for axis, size in zip(self.axes, sizes):
            if size not in axis.input_sizes:
                raise ConvAlgebraError(
                    f"size {size} along spatial axis {axis.axis} cannot be reached: the "
                    f"transposed convolution from size {axis.output_size} produces only "
                    f"{list(axis.input_sizes)} (output_padding {list(axis.output_padding)})"
                )
            result.append(axis.output_padding[axis.input_sizes.index(size)])
        return tuple(result)

    def __str__(self) -> str:
        return "\n".join(str(a) for a in self.axes)

    def _repr_markdown_(self) -> str:
        def listed(values) -> str:
            if len(values) <= 8:
                return ", ".join(map(str, values))
            return f"{values[0]}, {values[1]}, …, {values[-1]}"

        rows = [
            f"| {a.axis} | {a.output_size} | {listed(a.input_sizes)} | "
            f"{listed(a.output_padding)} |"
            for a in self.axes
        ]
        head = "| axis | output size | input sizes | output_padding |\n|---|---|---|---|"
        return "\n".join([head, *rows])


def _smallest_input(spec: ConvSpec, axis: int) -> int:
    """Smallest forward input size giving the spec's forward output size along ``axis``."""
    (before, after), k = spec.padding[axis], spec.kernel_size[axis]
    s, d = spec.stride[axis], spec.dilation[axis]
    return (spec.forward_output_spatial[axis] - 1) * s + d * (k - 1) + 1 - before - after


def _reach(spec: ConvSpec, axis: int) -> int:
    """How many sizes to try: a transposed spec allows ``output_padding < max(stride, dilation)``."""
    s = spec.stride[axis]
    return max(s, spec.dilation[axis]) if spec.transposed else s


def _extras(spec: ConvSpec, axis: int) -> range:
    """The ``extra`` in ``range(_reach)`` for which size ``smallest + extra`` is a valid spec.

    Only the padding rules bound it below (a positive size; reflect padding smaller than the
    size, circular padding at most the size) and the 2**62 limit above, so the valid extras
    are one interval, computed rather than tried one spec at a time.
    """
    before, after = spec.padding[axis]
    low = 1
    if spec.padding_mode == "reflect":
        low = max(before, after) + 1
    elif spec.padding_mode == "circular":
        low = max(before, after, 1)
    sizes = list(spec.forward_input_spatial)
    channels = spec.out_channels if spec.transposed else spec.in_channels
    others = channels * math.prod(sizes[:axis] + sizes[axis + 1:])
    high = min(MAX_SIZE - 1 - before - after, (MAX_SIZE - 1) // others)
    smallest = _smallest_input(spec, axis)
    return range(max(0, low - smallest), min(_reach(spec, axis), high - smallest + 1))


def colliding_input_sizes(spec: ConvSpec) -> CollidingSizes:
    """Which input sizes map to the same output size, per axis, and how to tell them apart.

    A strided convolution floors: with stride ``s``, up to ``s`` input sizes give one output
    size, so the transposed convolution cannot know which to restore. PyTorch's
    ``output_padding`` selects it; this lists, for each spatial axis, every such size and the
    ``output_padding`` that yields it.

    Parameters
    ----------
    spec : ConvSpec
        A forward spec (sizes of its input) or a transposed spec (sizes of its output; its
        input is the strided side).

    Returns
    -------
    CollidingSizes

    Examples
    --------
    >>> print(colliding_input_sizes(ConvSpec((1, 7), 1, 3, stride=2)))
    axis 0: input sizes 7 (output_padding=0), 8 (output_padding=1) all give output size 3
    >>> sizes = colliding_input_sizes(ConvSpec((1, 3), 1, 3, stride=2, transposed=True))
    >>> sizes.output_padding_for(8)
    (1,)
    """
    _check_spec(spec)
    axes = []
    for axis in range(spec.ndim):
        smallest = _smallest_input(spec, axis)
        extras = _extras(spec, axis)
        axes.append(AxisSizes(
            axis=axis,
            output_size=spec.forward_output_spatial[axis],
            input_sizes=SizeRange(smallest + extras.start, smallest + extras.stop),
            output_padding=SizeRange(extras.start, extras.stop),
            current=spec.forward_input_spatial[axis],
        ))
    return CollidingSizes(spec, tuple(axes))


def transpose_spec(spec: ConvSpec, input_size=None) -> ConvSpec:
    """The spec whose matrix is the transpose of ``spec``'s matrix.

    For a forward spec: the transposed convolution from its output back to its input size
    (or to ``input_size``, one of :func:`colliding_input_sizes`), ``output_padding`` chosen
    accordingly. For a transposed spec: its forward convolution.

    Raises
    ------
    ConvAlgebraError
        ``input_size`` cannot be reached, or the spec is tiled or has a channel table.

    Examples
    --------
    >>> t = transpose_spec(ConvSpec((1, 8), 1, 3, stride=2))
    >>> t.input_shape, t.output_padding, t.output_shape
    ((1, 3), (1,), (1, 8))
    """
    _check_spec(spec)
    if spec.tile is not None or spec.channel_table is not None:
        raise ConvAlgebraError(
            "transpose_spec: tiled, locally connected and channel-table layers have no "
            f"transposed ConvSpec; use conv_matrix(spec, w).T ({spec.describe()})"
        )
    if spec.transposed:
        forward = spec.forward
        if forward.output_shape != spec.input_shape:
            raise ConvAlgebraError(
                f"output_padding={spec.output_padding} is not smaller than stride={spec.stride}: "
                f"the forward convolution of the output gives {forward.output_shape}, not the "
                f"input shape {spec.input_shape}, so no forward spec has this transpose"
            )
        return forward
    if input_size is None:
        target = spec.input_shape[1:]
    else:
        target = normalize_tuple(input_size, spec.ndim, "input_size")
    output_padding = colliding_input_sizes(spec).output_padding_for(target)
    return ConvSpec(
        (spec.out_channels, *spec.output_shape[1:]), spec.in_channels, spec.kernel_size,
        stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups,
        padding_mode=spec.padding_mode, bias=spec.bias, transposed=True,
        output_padding=output_padding, flip=spec.flip,
    )
