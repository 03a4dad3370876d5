"""What the printed names mean: the values a derivation's symbols stand for, computed apart.

A derivation prints names (``y3``, ``dL/dx4``, ``w_1,2``, the matrix ``M``) and claims
equations between them. :func:`~convalgebra.derivations.verify.verify` reads every printed
equation back and evaluates it on a *meaning*: a dictionary from each printed name to its
value (a number, or for a matrix label the whole array). The inputs (``x``, ``a``, ``w``,
``b``, the upstream gradients ``dL/dz``) get the given or small random integers; the outputs
and gradients are computed by a route that does not go through the printed equations
(numpy sliding windows for pooling, the sparse layer matrix for convolutions). A test passes
the same dictionary computed by PyTorch instead.

Examples
--------
>>> from convalgebra.network.layers import MaxPool
>>> m = pooling_meaning(MaxPool(2, stride=1, dilation=2), np.arange(25).reshape(1, 5, 5))
>>> m["y1"], m["x13"]
(12, 12)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .. import budget
from ..spec import ConvSpec, normalize_tuple, pool_stride

__all__ = ["Meaning", "pooling_meaning", "conv_meaning", "im2col_meaning", "upstream", "named"]


def upstream(n: int, seed: int = 0) -> np.ndarray:
    """``n`` small non-zero integers for the upstream gradients (fixed seed)."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, 7, n) * rng.choice([-1, 1], n)


def named(prefix: str, values: Any) -> dict[str, Any]:
    """``{prefix1: v1, prefix2: v2, …}`` over the C-order flattening of ``values`` (1-based).

    Examples
    --------
    >>> named("y", np.array([[3, 4]]))
    {'y1': 3, 'y2': 4}
    """
    return {f"{prefix}{k + 1}": _plain(v) for k, v in enumerate(np.asarray(values).ravel())}


def _plain(v: Any) -> Any:
    """A numpy scalar as a Python int when it is integral, else a float."""
    f = float(v)
    return int(round(f)) if f.is_integer() else f


def _pool_windows(layer: Any, x: np.ndarray, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """(values, flat input index or -1) per output and tap, by strided views of the padded input."""
    n = x.ndim - 1
    k = normalize_tuple(layer.kernel_size, n, "kernel_size")
    s = pool_stride(k, layer.stride)
    p = normalize_tuple(layer.padding, n, "padding", minimum=0)
    d = normalize_tuple(layer.dilation, n, "dilation")
    ids = np.arange(x.size).reshape(x.shape)
    pad = [(0, 0)] + [(q, q) for q in p]
    xp = np.pad(x.astype(float), pad, constant_values=fill)
    ip = np.pad(ids, pad, constant_values=-1)
    span = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d, strict=True))
    views = []
    for a in (xp, ip):
        v = np.lib.stride_tricks.sliding_window_view(a, span, axis=tuple(range(1, n + 1)))
        v = v[(slice(None), *(slice(None, None, ss) for ss in s))]  # window starts
        taps: tuple[Any, ...] = (Ellipsis, *(slice(None, None, dd) for dd in d))
        v = v[taps]  # dilated taps
        views.append(v.reshape(*v.shape[: n + 1], -1))
    return views[0].reshape(-1, views[0].shape[-1]), views[1].reshape(-1, views[1].shape[-1])


def pooling_meaning(layer: Any, x: Any, seed: int = 0) -> Meaning:
    """Meaning of a pooling derivation's names: ``x_i``, ``y_j``, ``dL/dy_j``, ``dL/dx_i``, grids ``x``, ``y``.

    Max pooling routes ``dL/dy_j`` to the first maximum of window ``j`` (taps in row-major
    order, PyTorch's rule); average pooling gives each input ``1/count`` of it.
    """
    x = np.asarray(x, dtype=float)
    is_max = type(layer).__name__ == "MaxPool"
    values, index = _pool_windows(layer, x, -np.inf if is_max else 0.0)
    g = upstream(values.shape[0], seed)
    grad = np.zeros(x.size)
    if is_max:
        best = np.argmax(values, axis=1)  # the first maximum
        y = values[np.arange(len(values)), best]
        np.add.at(grad, index[np.arange(len(values)), best], g)
    else:
        inside = index >= 0
        count = (
            np.full(len(values), values.shape[1]) if layer.count_include_pad else inside.sum(axis=1)
        )
        y = values.sum(axis=1) / count
        rows = np.repeat(np.arange(len(values)), values.shape[1]).reshape(values.shape)
        np.add.at(grad, index[inside], (g / count)[rows[inside]])
    out_shape = layer.facts([x.shape]).shape
    arrays = {"x": x, "y": y, "dL/dy": g, "dL/dx": grad}
    grids = {"x": x.reshape(-1, x.shape[-1]), "y": y.reshape(-1, out_shape[-1])}
    return Meaning(arrays, grids)


class Meaning(Mapping):
    """What printed names stand for, resolved on demand.

    ``arrays`` maps a stem (``"a"``, ``"dL/dw"``) to its values in their natural shape; a
    name is the stem and a 1-based flat index (``a7``) or multi-index (``w_1,2,1,1``).
    ``grids`` maps matrix labels (``"M"``, ``"x"``) to whole arrays (dense or sparse).

    Examples
    --------
    >>> m = Meaning({"w": np.array([[5, 6], [7, 8]])}, {"M": np.eye(2)})
    >>> m["w3"], m["w_2,2"], "w5" in m, m["M"].shape
    (7, 8, False, (2, 2))
    """

    def __init__(self, arrays: dict[str, np.ndarray], grids: dict[str, Any]) -> None:
        self.arrays, self.grids = arrays, grids

    def __getitem__(self, name: str) -> Any:
        if name in self.grids:
            return self.grids[name]
        flat = re.fullmatch(r"(.*?[^\d_,])(\d+)", name)
        index = re.fullmatch(r"(.*?)_(\d+(?:,\d+)*)", name)
        if flat and flat.group(1) in self.arrays:
            values = np.asarray(self.arrays[flat.group(1)]).ravel()
            k = int(flat.group(2)) - 1
            if 0 <= k < values.size:
                return _plain(values[k])
        if index and index.group(1) in self.arrays:
            values = np.asarray(self.arrays[index.group(1)])
            idx = tuple(int(i) - 1 for i in index.group(2).split(","))
            if len(idx) == values.ndim and all(0 <= i < n for i, n in zip(idx, values.shape)):
                return _plain(values[idx])
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.grids)

    def __len__(self) -> int:
        return len(self.grids)


def conv_meaning(
    spec: ConvSpec,
    weight: Any = None,
    x: Any = None,
    bias: Any = None,
    seed: int = 0,
    own: str = "M",
) -> Meaning:
    """Meaning of a convolution derivation's names: ``a``, ``w``, ``b``, ``z``, their gradients, ``M``, ``M^T``.

    ``weight``/``x``/``bias`` default to small random integers (fixed seed); the outputs
    are ``M a + b`` with the sparse layer matrix ``M``, the gradients ``Mᵀ g``, ``J(a)ᵀ g``
    and the per-channel sums of ``g``. ``own`` names the layer's own matrix (``z = M a``):
    ``"M"``, or ``"M^T"`` where a transposed layer is written as the transpose of its
    forward counterpart's.
    """
    from ..gradients import input_gradient, weight_gradient
    from ..operators import conv_matrix

    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, spec.weight_shape) if weight is None else np.asarray(weight, float)
    a = rng.integers(-3, 4, spec.input_shape) if x is None else np.asarray(x, float)
    b = rng.integers(-3, 4, spec.out_channels) if bias is None else np.asarray(bias, float)
    w, a, b = w.astype(float), a.astype(float), b.astype(float)
    m = conv_matrix(spec, w).tocsr()
    per = int(np.prod(spec.output_shape[1:]))
    z = (m @ a.ravel() + (np.repeat(b, per) if spec.bias else 0)).reshape(spec.output_shape)
    g = upstream(z.size, seed + 1).reshape(spec.output_shape)
    arrays = {
        "w": w,
        "a": a,
        "b": b,
        "z": z,
        "dL/dz": g,
        "dL/da": input_gradient(spec, w, g),
        "dL/dw": weight_gradient(spec, a, g),
        "dL/db": g.reshape(spec.out_channels, -1).sum(axis=1),
    }
    grids: dict[str, Any] = {"a": a.reshape(-1, a.shape[-1]), "z": z.reshape(-1, z.shape[-1])}
    grids["M"], grids["M^T"] = (m.T.tocsr(), m) if own == "M^T" else (m, m.T.tocsr())
    channels = z.reshape(spec.out_channels, -1, spec.output_shape[-1])
    if spec.out_channels == 1:
        grids["Z"] = channels[0]
    grids.update({f"Z_{c + 1}": channel for c, channel in enumerate(channels)})
    if weight is not None:  # the given numbers, printed as slices (output, input channel)
        per_in = spec.weight_shape[-spec.ndim - 1]
        slices = w.reshape(-1, *spec.weight_shape[-spec.ndim :])
        grids["w"] = slices[0].reshape(-1, spec.weight_shape[-1])
        for k, piece in enumerate(slices):
            o, c = divmod(k, per_in)
            grids[f"w_{o + 1},{c + 1}"] = piece.reshape(-1, spec.weight_shape[-1])
        for k, piece in enumerate(a):
            grids[f"a_{k + 1}"] = piece.reshape(-1, a.shape[-1])
        grids["b"] = b.reshape(1, -1)
    return Meaning(arrays, grids)


def im2col_meaning(spec: ConvSpec, x: Any = None, seed: int = 0) -> Meaning:
    """:func:`conv_meaning` with the im2col names: patch matrix ``X`` (rows: output positions,
    columns: input channel then tap, read off the kernel Jacobian), filters ``W``, ``Z = W Xᵀ``
    (one row per output channel)."""
    from ..operators import kernel_jacobian

    meaning = conv_meaning(spec, x=x, bias=budget.zeros(spec.out_channels), seed=seed)
    n_pos = int(np.prod(spec.output_shape[1:]))
    n_col = int(np.prod(spec.weight_shape[1:]))
    jacobian = kernel_jacobian(spec, meaning.arrays["a"]).tocsr()
    meaning.grids["X"] = jacobian[:n_pos, :n_col]
    meaning.grids["W"] = meaning.arrays["w"].reshape(spec.out_channels, -1)
    meaning.grids["Z"] = meaning.arrays["z"].reshape(spec.out_channels, -1)
    return meaning
