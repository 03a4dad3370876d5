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
