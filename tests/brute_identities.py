"""Brute force for the identity checks: dense matrices built by PyTorch from one-hot kernels.

Independent of the library's index tables: every matrix here is torch's own op applied to the
identity basis, and every grid transformation is a torch tensor operation.
"""

from __future__ import annotations

import math

import numpy as np
from oracle import F, torch, torch_conv

__all__ = [
    "batched_conv",
    "dense_layer",
    "dense_transform",
    "equivariance_dimension",
    "blind_dimension",
    "rank",
    "apply_layer",
    "kernel_grid_space",
    "assert_sides_differ",
]


def apply_layer(spec, x, w) -> np.ndarray:
    """torch's layer on ``x`` (C, *spatial) with kernel ``w``, as numpy."""
    return torch_conv(spec, np.asarray(x, dtype=float), np.asarray(w, dtype=float)).numpy()


def batched_conv(spec, x, w):
    """torch's layer on a batch ``x`` of shape (N, C, *spatial) (float64 tensors)."""
    nd = spec.ndim
    if spec.flip:
        w = torch.flip(w, dims=list(range(2, 2 + nd)))
    if spec.transposed:  # unpadded, then cropped: asymmetric padding too
        full = getattr(F, f"conv_transpose{nd}d")(
            x, w, None, stride=spec.stride, groups=spec.groups, dilation=spec.dilation
        )
        for a, ((before, after), extra) in enumerate(
            zip(spec.padding, spec.output_padding, strict=True)
        ):
            size = full.shape[2 + a] - before - after + extra
            full = F.pad(
                full, [0, 0] * (nd - 1 - a) + [0, max(0, before + size - full.shape[2 + a])]
            )
            full = full.narrow(2 + a, before, size)
        return full
    pads: list[int] = []
    for before, after in reversed(spec.padding):
        pads += [before, after]
    mode = "constant" if spec.padding_mode == "zeros" else spec.padding_mode
    x = F.pad(x, pads, mode=mode)
    return getattr(F, f"conv{nd}d")(
        x, w, None, stride=spec.stride, dilation=spec.dilation, groups=spec.groups
    )


def dense_layer(spec, w) -> np.ndarray:
    """Dense ``(n_out, n_in)`` matrix of torch's layer with kernel ``w`` (batched one-hot inputs)."""
    n_in = math.prod(spec.input_shape)
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *spec.input_shape)
    wt = torch.tensor(np.array(w, dtype=float, copy=True))
    return batched_conv(spec, eye, wt).reshape(n_in, -1).T.numpy()


def dense_transform(shape, op, perm=None) -> np.ndarray:
    """Matrix of ``x -> op(x[perm])`` on arrays of ``shape`` (C, *spatial); ``op`` acts on a
    batch of such arrays (a torch tensor of shape (N, C, *spatial))."""
    n = math.prod(shape)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    if perm is not None:
        eye = eye[:, list(perm)]
    return op(eye).reshape(n, -1).T.numpy()


def rank(a: np.ndarray) -> int:
    """Exact rank of a small integer matrix (sympy over QQ via DomainMatrix)."""
    from sympy import QQ
    from sympy.polys.matrices import DomainMatrix

    a = np.rint(a).astype(np.int64)
    a = a[np.any(a != 0, axis=1)]
    if a.size == 0:
        return 0
    a = np.unique(a, axis=0)
    return DomainMatrix([[QQ(int(v)) for v in r] for r in a.tolist()], a.shape, QQ).rank()


def _one_hot_layers(spec):
    n_w = math.prod(spec.weight_shape)
    for k in range(n_w):
        w = np.zeros(n_w)
        w[k] = 1.0
        yield dense_layer(spec, w.reshape(spec.weight_shape))


def equivariance_dimension(spec, p_in_list, p_out_list) -> int:
    """dim {w : P_out M(w) = M(w) P_in for every pair}, from one-hot kernels."""
    cols = []
    for m in _one_hot_layers(spec):
        cols.append(
            np.concatenate(
                [(q @ m - m @ p).ravel() for p, q in zip(p_in_list, p_out_list, strict=True)]
            )
        )
    return len(cols) - rank(np.stack(cols, axis=1))


def blind_dimension(spec) -> int:
    """dim {w : M(w) = 0}."""
    cols = [m.ravel() for m in _one_hot_layers(spec)]
    return len(cols) - rank(np.stack(cols, axis=1))


def _kernel_maps(spec, ops, in_perm, out_perm):
    """Matrices of ``W -> op(W)`` with the channel gathers, on the flat kernel (torch ops on
    the kernel as a batch (C_out, C_in, *k)); ``None`` when one is no permutation of it."""
    shape = tuple(spec.weight_shape)
    n = math.prod(shape)
    rows, cols = (out_perm, in_perm) if not spec.transposed else (in_perm, out_perm)
    maps = []
    for op in ops:
        eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
        if tuple(op(eye[0]).shape[1:]) != shape[1:]:
            return None  # the op changes the kernel's shape: no map of the grid onto itself
        moved = op(eye.reshape(-1, *shape[1:])).reshape(n, shape[0], *op(eye[0]).shape[1:])
        if rows is not None:
            moved = moved[:, list(rows)]
        if cols is not None:
            moved = moved[:, :, list(cols)]
        m = moved.reshape(n, -1).T.numpy()
        if m.shape != (n, n) or not (
            np.array_equal(m.sum(axis=0), np.ones(n)) and np.array_equal(m.sum(axis=1), np.ones(n))
        ):
            return None
        maps.append(m)
    return maps


def kernel_grid_space(spec, ops, in_perm=None, out_perm=None):
    """Integer basis (rows) of ``{W : W = g(W) for every op g}`` on the kernel grid, or ``None``
    when some op permutes no kernel grid (or the layer has groups, tiles, a channel table)."""
    from sympy import Matrix

    if spec.groups != 1 or spec.tile is not None or spec.channel_table is not None:
        return None
    maps = _kernel_maps(spec, ops, in_perm, out_perm)
    if maps is None:
        return None
    n = math.prod(spec.weight_shape)
    stacked = np.concatenate([m - np.eye(n) for m in maps])
    basis = Matrix(np.rint(stacked).astype(int).tolist()).nullspace()
    return np.array([[float(v) for v in b] for b in basis]).reshape(len(basis), n)


def assert_sides_differ(ce, lhs, rhs) -> None:
    """A counterexample's two sides are the ones torch evaluates (``lhs``, ``rhs``), and they
    differ at its position (or somewhere, when it names none)."""
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    assert np.allclose(np.asarray(ce.lhs).ravel(), lhs.ravel(), atol=1e-9)
    assert np.allclose(np.asarray(ce.rhs).ravel(), rhs.ravel(), atol=1e-9)
    if ce.position is None:
        assert not np.allclose(lhs.ravel(), rhs.ravel())
        return
    a = lhs.reshape(np.asarray(ce.lhs).shape)[tuple(ce.position)]
    b = rhs.reshape(np.asarray(ce.rhs).shape)[tuple(ce.position)]
    assert not np.isclose(a, b, atol=1e-9)
