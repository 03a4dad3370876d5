"""Matrix-free products of an ordinary convolution: its padded input and BLAS.

:func:`~convalgebra.operators.conv_operator` builds one :class:`StridedProducts` (or
:class:`TorchProducts`) per layer and calls its ``forward`` and ``adjoint``. The weights are
packed once, in the layout each product reads.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import blas

from . import budget
from .connectivity import channel_layout, tap_weight_order
from .errors import require
from .spec import ConvSpec
from .taps import map_padded

__all__ = ["StridedProducts", "TorchProducts", "batched"]

# memory of one im2col block of the forward products
_BLOCK_BYTES = 64 * 2**20
# the wide products compute every grid position between the first and last output: at most
# this many times the outputs themselves
_WIDE_WORK = 1.5


def batched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` over a leading group axis, as one 2-D BLAS product when there is one group."""
    return (a[0] @ b[0])[None] if a.shape[0] == 1 else a @ b


class StridedProducts:
    """Products of an ordinary convolution through its padded input, with BLAS.

    Forward: pad the input along each axis (the one tap primitive,
    :func:`~convalgebra.taps.map_padded`, says which input each padded position copies). With
    unit strides, one group and real float64 data ("wide" products) the padded input is laid
    out channels-last, so that the input every tap reads is one contiguous block of it; then
    ``y += W_t @ x_t`` for each tap ``t`` is one BLAS product accumulating in place (``beta =
    1``), for the outputs at every grid position between the first and the last output (the
    others are dropped). Otherwise the taps' strided views are copied into one im2col block (in
    chunks of output rows) and multiplied by the packed weights, one product per group.
    Adjoint: the wide products' transpose, each tap's ``W_t^T g`` accumulated in place into the
    channels-last padded grid; otherwise one product ``W^T g`` per group (col) added back onto
    each tap's view (col2im). Then the padding folded back (the copies summed onto the
    positions they copy). These are the fastest of the ways measured
    (``examples/benchmarks/bench_operator.py``).
    """

    def __init__(self, spec: ConvSpec, w: np.ndarray) -> None:
        c_out, c_in, per = channel_layout(spec)
        g, k = spec.groups, math.prod(spec.kernel_size)
        self.spec, self.c_in, self.c_out = spec, c_in, c_out
        table = w.reshape(g, c_out // g, per, k)[..., tap_weight_order(spec)]
        self.weight = np.ascontiguousarray(np.moveaxis(table, -1, 0))  # (K, g, C_out/g, per)
        # (g, C_out/g, per * K): the forward's one product per block of taps (im2col)
        self.weight_rows = np.ascontiguousarray(table.reshape(g, c_out // g, per * k))
        self.weight_cols = np.ascontiguousarray(np.swapaxes(self.weight_rows, 1, 2))
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
        self.wide = self._wide_layout() if self._wide_applies(w) else None

    # ------------------------------------------------------------------ padding
    def _pad(self, x: np.ndarray) -> np.ndarray:
        if self.spec.padding_mode == "zeros":  # one copy into a zero grid
            xp = budget.zeros((self.c_in, *self.grid), dtype=x.dtype)
            xp[(slice(None), *self._inside())] = x[(slice(None), *self._inside_source())]
            return xp
        for axis, index in enumerate(self.maps, 1):
            x = np.take(x, np.where(index >= 0, index, 0), axis=axis)
            if (index < 0).any():
                x[(slice(None),) * axis + (index < 0,)] = 0
        return x

    def _spans(self) -> list[tuple[int, int]]:
        dims = zip(self.spec.padding, self.spec.forward_input_spatial, self.grid, strict=True)
        return [(before, max(0, min(size, grid - before))) for (before, _), size, grid in dims]

    def _inside(self) -> tuple[slice, ...]:
        return tuple(slice(before, before + count) for before, count in self._spans())

    def _inside_source(self) -> tuple[slice, ...]:
        return tuple(slice(0, count) for _, count in self._spans())

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

    # ------------------------------------------------------------------ wide products
    def _wide_applies(self, w: np.ndarray) -> bool:
        spec = self.spec
        if any(s != 1 for s in spec.stride) or spec.groups != 1 or w.dtype != np.float64:
            return False
        return self._wide_count() <= _WIDE_WORK * math.prod(self.out)

    def _grid_strides(self) -> list[int]:
        return [math.prod(self.grid[a + 1 :]) for a in range(len(self.grid))]

    def _wide_count(self) -> int:
        """Grid positions from the first output to the last (C order)."""
        return sum((o - 1) * g for o, g in zip(self.out, self._grid_strides(), strict=True)) + 1

    def _wide_layout(self) -> tuple[int, np.ndarray, list[int], list, list]:
        strides = self._grid_strides()
        offsets = [
            int(sum(t * d * g for t, d, g in zip(tap, self.spec.dilation, strides, strict=True)))
            for tap in np.ndindex(*self.spec.kernel_size)
        ]
        positions = np.indices(self.out).reshape(len(self.out), -1)
        index = np.asarray(np.ravel_multi_index(tuple(positions), self.grid))
        forward = [np.asfortranarray(w_t[0]) for w_t in self.weight]  # (C_out, C_in)
        adjoint = [np.asfortranarray(w_t[0].T) for w_t in self.weight]
        return self._wide_count(), index, offsets, forward, adjoint

    def _wide_forward(self, x: np.ndarray) -> np.ndarray:
        n, index, offsets, weights, _ = self.wide  # type: ignore[misc]
        c = self.c_in
        if self.spec.padding_mode == "zeros":
            xp = budget.zeros((*self.grid, c))
            inside = np.moveaxis(x, 0, -1)[self._inside_source()]
            xp[self._inside()] = inside
        else:
            xp = np.ascontiguousarray(np.moveaxis(self._pad(x), 0, -1), dtype=np.float64)
        flat = xp.reshape(-1)
        acc = budget.zeros((n, self.c_out)).T  # Fortran order, as BLAS accumulates
        for w_t, off in zip(weights, offsets, strict=True):
            acc = blas.dgemm(
                1.0, w_t, flat[off * c : (off + n) * c].reshape(n, c).T, 1.0, acc, overwrite_c=True
            )
        return np.take(acc, index, axis=1).ravel()

    def _wide_adjoint(self, y: np.ndarray) -> np.ndarray:
        n, index, offsets, _, weights = self.wide  # type: ignore[misc]
        c = self.c_in
        grad = budget.zeros((n, self.c_out))
        grad[index] = y.reshape(self.c_out, -1).T
        xp = budget.zeros((*self.grid, c))
        flat = xp.reshape(-1)
        for w_t, off in zip(weights, offsets, strict=True):
            view = flat[off * c : (off + n) * c].reshape(n, c).T
            out = blas.dgemm(1.0, w_t, grad.T, 1.0, view, overwrite_c=True)
            if out.ctypes.data != view.ctypes.data:  # BLAS worked on a copy: add it back
                view[...] = out
        return self._unpad(np.moveaxis(xp, -1, 0)).ravel()

    # ------------------------------------------------------------------ products
    def forward(self, x: np.ndarray) -> np.ndarray:
        x = x.reshape(self.c_in, *self.spec.forward_input_spatial)
        if self.wide is not None and x.dtype.kind in "biuf":
            return self._wide_forward(x)
        xp = self._pad(x)
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
            product = batched(self.weight_rows, block.reshape(g, per * k, -1))
            y[:, :, start:stop] = product.reshape(g, c_out, stop - start, rest)
        return y.ravel()

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        if self.wide is not None and y.dtype.kind in "biuf":
            return self._wide_adjoint(y)
        k, g, c_out, per = self.weight.shape
        grad = np.ascontiguousarray(y).reshape(g, c_out, -1)
        budget.require_array("the adjoint's columns", (g, per * k, grad.shape[2]), 16)
        cols = batched(self.weight_cols, grad).reshape(self.c_in, k, *self.out)
        xp = budget.zeros((self.c_in, *self.grid), dtype=cols.dtype)
        for t, view in enumerate(self.views):
            xp[view] += cols[:, t]
        return self._unpad(xp).ravel()


class TorchProducts(StridedProducts):
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
