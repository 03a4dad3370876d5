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
The size bookkeeping a transposed convolution needs (several input sizes share one output
size) is in :mod:`convalgebra.transpose`; the symbolic backward pass in
:mod:`convalgebra.symbolic.backward`.
"""

from __future__ import annotations

import math

import numpy as np

from . import budget
from .budget import FLOAT64_EXACT, entry_multiplicity, require_exact_sums
from .connectivity import channel_layout, iter_triples, spatial_table, tap_weight_order
from .errors import ConvAlgebraError, shown
from .operators import (
    as_numeric,
    check_input,
    check_spec,
    check_weight,
    conv_matrix,
    conv_operator,
    gather_chunks,
    gather_patches,
    kernel_jacobian,
    weighted_bincount,
    with_fill_column,
)
from .spec import ConvSpec

__all__ = [
    "bias_gradient",
    "check_grad_output",
    "input_gradient",
    "weight_gradient",
]

METHODS = ("auto", "matrix", "operator")
#: Integer gradients are computed in float64, exact while every sum stays below 2**53.
_EXACT_ADVICE = "pass float arrays to accept rounding, or smaller integers"


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
    check_spec(spec)
    layout = "(C_out, *spatial) of the layer's output, no batch axis"
    shape = np.shape(grad_output) if hasattr(grad_output, "shape") else None
    if shape is not None and tuple(shape[1:]) == spec.output_shape:
        layout += f"; got a leading axis of {shape[0]}: pass one example at a time"
    return as_numeric("grad_output", grad_output, spec.output_shape, layout)


def _check_method(method: str) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be one of {METHODS}, got {shown(method)}")
    if method not in METHODS:
        raise ConvAlgebraError(f"method must be one of {METHODS}, got {shown(method)}")
    return "operator" if method == "auto" else method


def _common_dtype(*arrays: np.ndarray) -> np.dtype:
    dtype = np.result_type(*arrays)
    return np.dtype(np.float64) if dtype.kind in "biu" else dtype


# ---------------------------------------------------------------------------- gradients
def input_gradient(spec: ConvSpec, weight, grad_output, *, method: str = "auto") -> np.ndarray:
    """``dL/dx = M(w)^T g``: the gradient of the loss with respect to the layer's input.

    Parameters
    ----------
    spec : ConvSpec
        Any spec (forward or transposed, every padding mode, groups, tiles, 1-D to 3-D).
    weight : array_like of shape ``spec.weight_shape`` (PyTorch layout)
        The kernel.
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
    w = check_weight(check_spec(spec), weight)
    g = check_grad_output(spec, grad_output)
    # each dL/dx[i] sums w[k] g[o] over the (o, k) reading i: at most channels x taps x meets
    terms = max(spec.in_channels, spec.out_channels) * math.prod(spec.kernel_size)
    require_exact_sums(
        f"input_gradient of {spec.describe()}",
        terms * entry_multiplicity(spec),
        [w, g],
        FLOAT64_EXACT,
        _EXACT_ADVICE,
    )
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
    c_out, c_in, per = channel_layout(spec)
    groups = spec.groups
    table = spatial_table(spec)
    k = table.shape[1]
    padded = with_fill_column(u.reshape(c_in, -1), 0)
    grad = v.reshape(groups, c_out // groups, -1)
    acc = budget.zeros((groups, c_out // groups, per, k), dtype=np.result_type(u, v))
    for rows in gather_chunks(spec):
        patches = gather_patches(padded, table[rows]).reshape(groups, per, -1, k)
        acc += np.einsum("gop,gipk->goik", grad[:, :, rows], patches, optimize=True)
    out = np.empty_like(acc)
    out[..., tap_weight_order(spec)] = acc  # spatial tap -> weight tap (reversed when flip)
    return out


def _weight_grad_triples(spec: ConvSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``J^T g`` for tiled or channel-table layers: contract the triples block by block."""
    u, v = u.ravel(), v.ravel()
    n_w = math.prod(spec.weight_shape)
    acc = budget.zeros(n_w, dtype=np.result_type(u, v))
    for _, t in iter_triples(spec):
        acc += weighted_bincount(t.weight_index, u[t.in_index] * v[t.out_index], n_w)
    return acc


def weight_gradient(spec: ConvSpec, x, grad_output, *, method: str = "auto") -> np.ndarray:
    """``dL/dw = J(x)^T g``: the kernel gradient (eq. 9.11 of the Deep Learning book).

    Parameters
    ----------
    spec : ConvSpec
        Any spec (forward or transposed, every padding mode, groups, tiles, 1-D to 3-D).
    x : array_like of shape ``spec.input_shape``
        The layer's input for one example.
    grad_output : array_like of shape ``spec.output_shape``
        ``g = dL/dy`` for the same example.
    method : {"auto", "matrix", "operator"}
        ``"matrix"``: ``kernel_jacobian(spec, x).T @ g``. ``"operator"`` (and ``"auto"``):
        the same sums without storing ``J`` (patches gathered in chunks).

    Returns
    -------
    ndarray of shape ``spec.weight_shape``
        float64 for integer arguments, otherwise their common dtype.

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
    a = check_input(check_spec(spec), x)
    g = check_grad_output(spec, grad_output)
    require_exact_sums(  # each dL/dw[k] sums x[i] g[o] over the output positions
        f"weight_gradient of {spec.describe()}",
        math.prod(spec.forward_output_spatial),
        [a, g],
        FLOAT64_EXACT,
        _EXACT_ADVICE,
    )
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

    Parameters
    ----------
    spec : ConvSpec
        A layer with a bias.
    grad_output : array_like of shape ``spec.output_shape``
        ``g = dL/dy`` for one example (no batch axis).

    Returns
    -------
    ndarray of shape ``(spec.out_channels,)``
        float64 for integer arguments, otherwise the dtype of ``grad_output``.

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
        raise ConvAlgebraError(f"{spec.describe()} has bias=False: there is no bias gradient")
    dtype = _common_dtype(g)
    return g.reshape(spec.out_channels, -1).sum(axis=1, dtype=dtype)
