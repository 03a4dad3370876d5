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
    one group and float64 weights ("wide" products) the padded grid is split into its stride
    phases, laid out channels-last (:class:`_Wide`), so that the input every tap reads is one
    contiguous block of one phase; then ``y += W_t @ x_t`` for each tap ``t`` is one BLAS
    product accumulating in place (``beta = 1``), for the outputs at every phase position
    between the first and the last output (the others are dropped). Otherwise the taps'
    strided views are copied into one im2col block (in chunks of output rows) and multiplied
    by the packed weights, one product per group. Adjoint: the wide products' transpose, each
    tap's ``W_t^T g`` accumulated in place into the channels-last phases, which are then put
    back in the grid; otherwise one product ``W^T g`` per group (col) added back onto each
    tap's view (col2im). Then the padding folded back (the copies summed onto the positions
    they copy). These are the fastest of the ways measured
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
        self.wide = self._wide_layout(w)

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
    def _wide_layout(self, w: np.ndarray) -> _Wide | None:
        """The wide products' layout, or None where they do not apply or cost too much."""
        if self.spec.groups != 1 or w.dtype != np.float64:
            return None
        wide = _Wide(self)
        return wide if wide.count <= _WIDE_WORK * math.prod(self.out) else None

    def _phases_of(self, x: np.ndarray) -> np.ndarray:
        """The padded input as channels-last phase grids ``(phases, L, C)``."""
        wide = self.wide
        assert wide is not None
        c = x.shape[0]
        out = budget.zeros((len(wide.phases), math.prod(wide.extent), c))
        if self.spec.padding_mode == "zeros":  # straight from the input: zeros elsewhere
            for k, (inside, source) in enumerate(wide.inside):
                grid = out[k].reshape(*wide.extent, c)
                grid[inside] = np.moveaxis(x[(slice(None), *source)], 0, -1)
            return out
        for k, part in enumerate(wide.parts(self._pad(x))):
            grid = out[k].reshape(*wide.extent, c)
            grid[tuple(slice(0, m) for m in part.shape[1:])] = np.moveaxis(part, 0, -1)
        return out

    def _wide_forward(self, x: np.ndarray) -> np.ndarray:
        wide = self.wide
        assert wide is not None
        n, c = wide.count, self.c_in
        flat = self._phases_of(x).reshape(len(wide.phases), -1)
        acc = budget.zeros((math.prod(wide.extent), self.c_out))
        for w_t, (k, off) in zip(wide.forward, wide.taps, strict=True):
            block = flat[k, off * c : (off + n) * c].reshape(n, c).T
            _accumulate(w_t, block, acc[:n].T)  # Fortran order, as BLAS accumulates
        return np.moveaxis(wide.outputs(acc), -1, 0).ravel()

    def _wide_adjoint(self, y: np.ndarray) -> np.ndarray:
        wide = self.wide
        assert wide is not None
        n, c = wide.count, self.c_in
        grad = budget.zeros((math.prod(wide.extent), self.c_out))
        wide.outputs(grad)[...] = np.moveaxis(y.reshape(self.c_out, *self.out), 0, -1)
        phases = budget.zeros((len(wide.phases), math.prod(wide.extent) * c))
        for w_t, (k, off) in zip(wide.adjoint, wide.taps, strict=True):
            _accumulate(w_t, grad[:n].T, phases[k, off * c : (off + n) * c].reshape(n, c).T)
        if self.spec.padding_mode == "zeros":  # straight to the input: padding dropped
            x = budget.zeros((c, *self.spec.forward_input_spatial))
            for k, (inside, source) in enumerate(wide.inside):
                grid = phases[k].reshape(*wide.extent, c)
                x[(slice(None), *source)] = np.moveaxis(grid[inside], -1, 0)
            return x.ravel()
        xp = budget.zeros((c, *self.grid))
        for k, part in enumerate(wide.parts(xp)):
            grid = phases[k].reshape(*wide.extent, c)
            part[...] = np.moveaxis(grid[tuple(slice(0, m) for m in part.shape[1:])], -1, 0)
        return self._unpad(xp).ravel()

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


def _accumulate(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """``c += a @ b`` in place, by BLAS (all three in Fortran order)."""
    out = blas.dgemm(1.0, a, b, 1.0, c, overwrite_c=True)
    if out.ctypes.data != c.ctypes.data:  # BLAS worked on a copy: add it back
        c[...] = out


class _Wide:
    """The layout of the wide products: the padded grid split into its stride phases.

    Phase ``r`` (one residue per axis) holds the padded positions ``s a + r``, ``a < L``
    (``L = ceil(grid / s)`` per axis), channels last. Tap ``t`` reads phase ``t d mod s`` from
    offset ``t d // s``: output ``o`` at phase position ``o + t d // s``. Flattened, the
    ``count`` positions from the first output to the last are one contiguous block of each
    phase per tap.
    """

    def __init__(self, products: StridedProducts) -> None:
        spec = products.spec
        self.stride = tuple(spec.stride)
        self.extent = tuple(-(-g // s) for g, s in zip(products.grid, self.stride, strict=True))
        steps = [math.prod(self.extent[a + 1 :]) for a in range(len(self.extent))]
        self.phases = list(np.ndindex(*self.stride))
        self.taps = []
        for tap in np.ndindex(*spec.kernel_size):
            pos = [t * d for t, d in zip(tap, spec.dilation, strict=True)]
            phase = tuple(p % s for p, s in zip(pos, self.stride, strict=True))
            offset = sum(p // s * g for p, s, g in zip(pos, self.stride, steps, strict=True))
            self.taps.append((self.phases.index(phase), int(offset)))
        self.count = sum((o - 1) * g for o, g in zip(products.out, steps, strict=True)) + 1
        self.out = tuple(products.out)
        self.inside = [self._inside(products, phase) for phase in self.phases]
        self.forward = [np.asfortranarray(w_t[0]) for w_t in products.weight]  # (C_out, C_in)
        self.adjoint = [np.asfortranarray(w_t[0].T) for w_t in products.weight]

    def _inside(
        self, products: StridedProducts, phase: tuple[int, ...]
    ) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """``(positions in the phase, input positions)`` of the inputs the phase holds.

        Phase position ``a`` is padded position ``s a + r``, input ``s a + r - before``; kept
        where that is an input inside the grid.
        """
        inside, source = [], []
        dims = zip(
            phase,
            self.stride,
            products.spec.padding,
            products.spec.forward_input_spatial,
            products.grid,
            strict=True,
        )
        for r, s, (before, _), size, grid in dims:
            low = max(0, -(-(before - r) // s))
            high = min(-(-(grid - r) // s), (before + size - 1 - r) // s + 1)
            count = max(0, high - low)
            start = s * low + r - before
            inside.append(slice(low, low + count))
            source.append(slice(start, start + s * (count - 1) + 1 if count else start, s))
        return tuple(inside), tuple(source)

    def outputs(self, grid: np.ndarray) -> np.ndarray:
        """The view ``(*out, C)`` of the outputs in a channels-last phase grid ``(L, C)``."""
        shaped = grid.reshape(*self.extent, grid.shape[-1])
        return shaped[tuple(slice(0, o) for o in self.out)]

    def parts(self, xp: np.ndarray) -> list[np.ndarray]:
        """The views of ``xp`` (``(C, *grid)``) that are its phases, in phase order."""
        return [
            xp[(slice(None), *(slice(r, None, s) for r, s in zip(phase, self.stride)))]
            for phase in self.phases
        ]


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
