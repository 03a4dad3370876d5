"""Kernel expressions: symbolic kernels, constants, and the maps between kernels.

A kernel has PyTorch's weight layout ``(C_out, C_in, *k)`` (for ``conv_transpose``:
``(C_in, C_out / groups, *k)``, as ``F.conv_transpose`` takes it). Lowered, a kernel is a term
table over its flat entries (``out`` = entry, one source): each entry a polynomial in the
symbols of the symbolic kernels it is made of. Rearrangements (dilation, centred enlarging,
flips, polyphase components, concatenation) are gathers on the entries; ``kernel_conv`` is the
one product, of degree the sum of its factors' degrees.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .. import budget
from ..budget import OPS_MAX_PARAMETER
from ..errors import ConvAlgebraError, shown
from .context import Context
from .terms import Terms, combine, compose, gather_terms

__all__ = [
    "Kernel",
    "kernel",
    "constant",
    "delta",
    "dilate_kernel",
    "enlarge_kernel",
    "flip_kernel",
    "transpose_kernel",
    "kernel_conv",
    "polyphase_kernel",
    "cat_kernels",
    "ungroup_kernel",
    "as_fraction",
    "per_axis",
]


def as_fraction(value: Any, name: str) -> Fraction:
    """An exact rational from an int, a Fraction, a finite float or a numpy scalar."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        raise TypeError(f"{name} must be a number, got {shown(value)}")
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value))
    if isinstance(value, Fraction):
        return value
    if isinstance(value, str):  # "1/3", "-2", "0.5": read by Fraction, never evaluated
        try:
            return Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise ConvAlgebraError(
                f"{name} must be a rational number, got {shown(value)}"
            ) from None
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise ConvAlgebraError(f"{name} must be finite, got {shown(value)}")
        return Fraction(float(value))
    raise TypeError(
        f"{name} must be a rational number (int, Fraction or float), got {shown(value)}"
    )


def per_axis(
    value: Any, ndim: int, name: str, minimum: int = 0, maximum: int = OPS_MAX_PARAMETER
) -> tuple[int, ...]:
    """An int or a tuple of ``ndim`` ints, each in ``[minimum, maximum]``."""
    items = (value,) * ndim if not isinstance(value, (tuple, list)) else tuple(value)
    if len(items) != ndim:
        raise ConvAlgebraError(
            f"{name} needs one value per spatial axis ({ndim}), got {shown(value)}"
        )
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must hold integers, got {shown(value)}")
        if int(v) < minimum:
            raise ConvAlgebraError(f"{name} must be at least {minimum}, got {shown(value)}")
        if int(v) > maximum:
            raise ConvAlgebraError(
                f"{name} must be at most {maximum} (OPS_MAX_PARAMETER), got {shown(value)}"
            )
        out.append(int(v))
    return tuple(out)


class Kernel:
    """A kernel expression of a fixed shape ``(C_out, C_in, *k)``."""

    shape: tuple[int, ...]
    degree: int = 1

    @property
    def ndim(self) -> int:
        return len(self.shape) - 2

    def symbols(self) -> dict[str, tuple[int, ...]]:
        """The symbolic kernels it is made of, by name."""
        return {}

    def lower(self, ctx: Context) -> Terms:
        """The entries as polynomials: a term table over the flat entries."""
        return ctx.memo(ctx.cache, self, lambda: self._lower(ctx))

    def _lower(self, ctx: Context) -> Terms:
        raise NotImplementedError

    def formula(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.formula()

    def __add__(self, other: Any) -> Kernel:
        return _KernelSum([(self, Fraction(1)), (_kernel(other, "+"), Fraction(1))])

    def __sub__(self, other: Any) -> Kernel:
        return _KernelSum([(self, Fraction(1)), (_kernel(other, "-"), Fraction(-1))])

    def __neg__(self) -> Kernel:
        return _KernelSum([(self, Fraction(-1))])

    def __mul__(self, scalar: Any) -> Kernel:
        return _KernelSum([(self, as_fraction(scalar, "a kernel's scalar factor"))])

    __rmul__ = __mul__


def _kernel(value: Any, op: str) -> Kernel:
    if not isinstance(value, Kernel):
        raise TypeError(f"{op} combines kernels with kernels, got {shown(value)}")
    return value


def _check_shape(shape: Any, name: str) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or not 3 <= len(shape) <= 5:
        raise ConvAlgebraError(
            f"{name} must be a kernel shape (C_out, C_in, *k) with 1-3 spatial sizes, "
            f"got {shown(shape)}"
        )
    checked = per_axis(tuple(shape), len(shape), name, minimum=1)
    if math.prod(checked) > 2**20:
        raise ConvAlgebraError(
            f"a kernel of shape {checked} has {math.prod(checked):,} entries, over 2**20 symbols"
        )
    return checked


class _Symbolic(Kernel):
    def __init__(self, name: str, shape: Any) -> None:
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
            raise ConvAlgebraError(f"a kernel name must be an ASCII identifier, got {shown(name)}")
        self.name = name
        self.shape = _check_shape(shape, "shape")

    def symbols(self) -> dict[str, tuple[int, ...]]:
        return {self.name: self.shape}

    def _lower(self, ctx: Context) -> Terms:
        n = math.prod(self.shape)
        ids = np.arange(n, dtype=np.int64) + ctx.symbols.offsets[self.name]
        ones = budget.ones(n, dtype=np.int64)
        entries = np.arange(n, dtype=np.int64)
        return Terms(entries, 0 * entries, ctx.monomials.symbol(ids), ones, 1, n, 1)

    def formula(self) -> str:
        return self.name


class _Constant(Kernel):
    degree = 0

    def __init__(self, values: Any, label: str = "") -> None:
        array = np.asarray(values, dtype=object)
        if not 3 <= array.ndim <= 5:
            raise ConvAlgebraError(
                f"a constant kernel must have shape (C_out, C_in, *k), got shape {array.shape}"
            )
        self.shape = tuple(int(v) for v in array.shape)
        self.values = [as_fraction(v, "a constant kernel entry") for v in array.ravel()]
        self.label = label

    def _lower(self, ctx: Context) -> Terms:
        den = math.lcm(*(v.denominator for v in self.values)) if self.values else 1
        nums = np.array([v.numerator * (den // v.denominator) for v in self.values], dtype=object)
        if nums.size and max(abs(int(v)) for v in nums) >= 2**62:
            raise ConvAlgebraError("a constant kernel's exact entries exceed 2**62")
        nums = nums.astype(np.int64)
        rows = np.flatnonzero(nums)
        zeros = budget.zeros(rows.size, dtype=np.int64)
        return Terms(rows, zeros, zeros, nums[rows], den, len(self.values), 1)

    def formula(self) -> str:
        if self.label:
            return self.label
        if len(self.values) > 64:
            return f"constant(<{'x'.join(map(str, self.shape))} entries>)"
        nested: Any = [str(v) for v in self.values]
        for size in reversed(self.shape[1:]):
            nested = [nested[i : i + size] for i in range(0, len(nested), size)]
        return "constant(" + repr(nested).replace("'", "") + ")"


class _Gathered(Kernel):
    """A kernel whose entries are entries of another (or zero): ``u[e] = v[src[e]]``."""

    def __init__(
        self,
        base: Kernel,
        shape: tuple[int, ...],
        src: np.ndarray,
        text: str,
        kind: str = "",
        args: tuple = (),
    ) -> None:
        self.base, self.shape, self.src, self.text = base, shape, src, text
        self.kind, self.args = kind, args
        self.degree = base.degree

    def symbols(self) -> dict[str, tuple[int, ...]]:
        return self.base.symbols()

    def _lower(self, ctx: Context) -> Terms:
        inner = self.base.lower(ctx)
        return compose(gather_terms(self.src, inner.n_out), inner, ctx.monomials, ctx.max_terms)

    def formula(self) -> str:
        return self.text


class _KernelSum(Kernel):
    def __init__(
        self, parts: list[tuple[Kernel, Fraction]], text: str = "", cat: tuple = ()
    ) -> None:
        self.text, self.cat = text, cat
        shapes = {k.shape for k, _ in parts}
        if len(shapes) != 1:
            raise ConvAlgebraError(f"kernels of different shapes cannot be added: {sorted(shapes)}")
        self.parts = parts
        self.shape = parts[0][0].shape
        self.degree = max(k.degree for k, _ in parts)

    def symbols(self) -> dict[str, tuple[int, ...]]:
        return _merged([k.symbols() for k, _ in self.parts])

    def _lower(self, ctx: Context) -> Terms:
        return combine([(k.lower(ctx), s) for k, s in self.parts])

    def formula(self) -> str:
        if self.text:
            return self.text
        text = ""
        for k, s in self.parts:
            sign = "-" if s < 0 else "+"
            mag = abs(s)
            term = k.formula() if mag == 1 else f"{mag}*{k.formula()}"
            text += (f"-{term}" if sign == "-" else term) if not text else f" {sign} {term}"
        return text if len(self.parts) > 1 or self.parts[0][1] != -1 else f"-{self.parts[0][0]}"


class _KernelConv(Kernel):
    """``u[o, i, r] = sum over m and s + t = r of w[o, m, s] v[m, i, t]``."""

    def __init__(self, v: Kernel, w: Kernel) -> None:
        if v.ndim != w.ndim:
            raise ConvAlgebraError(
                f"kernel_conv needs kernels of one dimension, got {v.shape}, {w.shape}"
            )
        if w.shape[1] != v.shape[0]:
            raise ConvAlgebraError(
                f"kernel_conv(v, w): w reads {w.shape[1]} channels but v writes {v.shape[0]}"
            )
        self.v, self.w = v, w
        spatial = tuple(a + b - 1 for a, b in zip(v.shape[2:], w.shape[2:]))
        self.shape = (w.shape[0], v.shape[1], *spatial)
        self.degree = v.degree + w.degree

    def symbols(self) -> dict[str, tuple[int, ...]]:
        return _merged([self.v.symbols(), self.w.symbols()])

    def _lower(self, ctx: Context) -> Terms:
        a, b = self.w.lower(ctx), self.v.lower(ctx)
        wa = np.unravel_index(a.out, self.w.shape)
        vb = np.unravel_index(b.out, self.v.shape)
        # pair every w entry with every v entry whose input-side channel matches
        order = np.argsort(vb[0], kind="stable")
        counts = np.bincount(vb[0], minlength=self.v.shape[0])
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        reps = counts[wa[1]]
        total = int(reps.sum())
        if total > ctx.max_terms:
            raise ConvAlgebraError(f"kernel_conv needs {total:,} products, over max_terms")
        which = np.repeat(np.arange(a.out.size), reps)
        offset = np.arange(total) - np.repeat(np.cumsum(reps) - reps, reps)
        j = order[starts[wa[1]][which] + offset]
        coords = [wa[0][which], vb[1][j]] + [
            wa[2 + d][which] + vb[2 + d][j] for d in range(self.ndim)
        ]
        entry = np.ravel_multi_index(tuple(coords), self.shape)
        product = Terms(
            entry,
            0 * entry,
            ctx.monomials.multiply(a.mono[which], b.mono[j]),
            a.coeff[which] * b.coeff[j],
            a.den * b.den,
            math.prod(self.shape),
            1,
        )
        return combine([(product, Fraction(1))])

    def formula(self) -> str:
        return f"kernel_conv({self.v.formula()}, {self.w.formula()})"


def _merged(dicts: list[dict[str, tuple[int, ...]]]) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for d in dicts:
        for name, shape in d.items():
            if out.get(name, shape) != shape:
                raise ConvAlgebraError(
                    f"kernel {name!r} is used with two shapes, {out[name]} and {shape}"
                )
            out[name] = shape
    return out


def _index_grid(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def kernel(name: str, shape: Any) -> Kernel:
    """A symbolic kernel: one independent symbol per entry, ``name1, name2, …`` in C order.

    Examples
    --------
    >>> w = kernel("w", (1, 1, 3))
    >>> w.shape, w
    ((1, 1, 3), w)
    """
    return _Symbolic(name, shape)


def constant(values: Any) -> Kernel:
    """A kernel of fixed rational entries: ints, Fractions, strings such as ``"1/3"``, or
    floats (taken exactly: ``1/3`` as a float is not one third; write ``"1/3"``).

    Examples
    --------
    >>> constant([[[1, 2, 1]]]).shape
    (1, 1, 3)
    """
    return _Constant(values)


def delta(shape: Any) -> Kernel:
    """The identity kernel: ``delta[c, c, centre] = 1``, centre ``(k - 1) // 2`` per axis.

    With ``padding="same"``, ``conv(x, delta(...))`` is ``x`` (PyTorch's 'same' pads
    ``(k - 1) // 2`` before).

    Examples
    --------
    >>> delta((1, 1, 3))
    delta((1, 1, 3))
    """
    shape = _check_shape(shape, "shape")
    values = budget.zeros(shape, dtype=np.int64)
    centre = tuple((k - 1) // 2 for k in shape[2:])
    for c in range(min(shape[0], shape[1])):
        values[(c, c, *centre)] = 1
    return _Constant(values, f"delta({shape})")


def dilate_kernel(w: Kernel, dilation: Any) -> Kernel:
    """The kernel with ``dilation - 1`` zeros between taps: ``conv(x, w, dilation=d)`` equals
    ``conv(x, dilate_kernel(w, d))``.

    Examples
    --------
    >>> dilate_kernel(kernel("w", (1, 1, 3)), 2).shape
    (1, 1, 5)
    """
    w = _kernel(w, "dilate_kernel")
    d = per_axis(dilation, w.ndim, "dilation", minimum=1)
    spatial = tuple(di * (k - 1) + 1 for di, k in zip(d, w.shape[2:]))
    shape = (*w.shape[:2], *spatial)
    src = budget.full(shape, -1, dtype=np.int64)
    src[(slice(None), slice(None), *(slice(None, None, di) for di in d))] = _index_grid(w.shape)
    return _Gathered(w, shape, src, f"dilate_kernel({w.formula()}, {_arg(d)})", "dilate", (d,))


def enlarge_kernel(w: Kernel, size: Any) -> Kernel:
    """``w`` zero-padded to spatial ``size``, centred as PyTorch's 'same' padding centres it:
    ``(size - 1) // 2 - (k - 1) // 2`` zeros before, so that ``conv(x, w, padding="same")``
    equals ``conv(x, enlarge_kernel(w, size), padding="same")``.

    Examples
    --------
    >>> enlarge_kernel(kernel("w", (1, 1, 3, 3)), 5).shape
    (1, 1, 5, 5)
    """
    w = _kernel(w, "enlarge_kernel")
    spatial = per_axis(size, w.ndim, "size", minimum=1)
    if any(s < k for s, k in zip(spatial, w.shape[2:])):
        raise ConvAlgebraError(
            f"enlarge_kernel: size {spatial} is smaller than the kernel {w.shape[2:]}"
        )
    shape = (*w.shape[:2], *spatial)
    src = budget.full(shape, -1, dtype=np.int64)
    before = [(s - 1) // 2 - (k - 1) // 2 for s, k in zip(spatial, w.shape[2:])]
    window = tuple(slice(b, b + k) for b, k in zip(before, w.shape[2:]))
    src[(slice(None), slice(None), *window)] = _index_grid(w.shape)
    return _Gathered(
        w, shape, src, f"enlarge_kernel({w.formula()}, {_arg(spatial)})", "enlarge", (spatial,)
    )


def flip_kernel(w: Kernel) -> Kernel:
    """The kernel reversed along every spatial axis (cross-correlation ↔ convolution).

    Examples
    --------
    >>> flip_kernel(kernel("w", (1, 1, 3)))
    flip_kernel(w)
    """
    w = _kernel(w, "flip_kernel")
    grid = _index_grid(w.shape)[(slice(None), slice(None), *([slice(None, None, -1)] * w.ndim))]
    return _Gathered(w, w.shape, np.ascontiguousarray(grid), f"flip_kernel({w.formula()})", "flip")


def transpose_kernel(w: Kernel) -> Kernel:
    """The kernel with its two channel axes exchanged, ``w.transpose(0, 1)``.

    A stride-1 ``conv_transpose`` with ``w`` is a ``conv`` with ``flip_kernel(transpose_kernel(w))``.

    Examples
    --------
    >>> transpose_kernel(kernel("w", (3, 2, 1))).shape
    (2, 3, 1)
    """
    w = _kernel(w, "transpose_kernel")
    grid = np.ascontiguousarray(np.swapaxes(_index_grid(w.shape), 0, 1))
    return _Gathered(w, grid.shape, grid, f"transpose_kernel({w.formula()})", "transpose")


def kernel_conv(v: Kernel, w: Kernel) -> Kernel:
    """The kernel ``u`` of two cross-correlations in a row: ``conv(conv(x, v), w)`` equals
    ``conv(x, u)`` without padding ('valid'), and under 'full' or circular padding.

    Notes
    -----
    ``u[o, i, r] = Σ_m Σ_{s + t = r} w[o, m, s] · v[m, i, t]``, of spatial size
    ``k_v + k_w - 1``: the full (linear) convolution of the two kernels, summed over the
    middle channels.

    Examples
    --------
    >>> kernel_conv(kernel("v", (2, 1, 3)), kernel("w", (1, 2, 2))).shape
    (1, 1, 4)
    """
    return _KernelConv(_kernel(v, "kernel_conv"), _kernel(w, "kernel_conv"))


def polyphase_kernel(w: Kernel, factor: Any, phase: Any) -> Kernel:
    """The polyphase component ``w[..., phase::factor]`` (per spatial axis).

    Examples
    --------
    >>> polyphase_kernel(kernel("w", (1, 1, 5)), 2, 1).shape
    (1, 1, 2)
    """
    w = _kernel(w, "polyphase_kernel")
    f = per_axis(factor, w.ndim, "factor", minimum=1)
    p = per_axis(phase, w.ndim, "phase", minimum=0)
    if any(pi >= k for pi, k in zip(p, w.shape[2:])):
        raise ConvAlgebraError(f"polyphase_kernel: phase {p} is outside the kernel {w.shape[2:]}")
    grid = _index_grid(w.shape)[
        (slice(None), slice(None), *(slice(pi, None, fi) for pi, fi in zip(p, f)))
    ]
    return _Gathered(
        w,
        grid.shape,
        np.ascontiguousarray(grid),
        f"polyphase_kernel({w.formula()}, {_arg(f)}, {_arg(p)})",
        "polyphase",
        (f, p),
    )


def cat_kernels(kernels: list[Kernel], dim: int = 0) -> Kernel:
    """Kernels side by side along ``dim`` (0: output channels, 1: input channels).

    Examples
    --------
    >>> cat_kernels([kernel("v", (1, 2, 3)), kernel("w", (2, 2, 3))]).shape
    (3, 2, 3)
    """
    if not isinstance(kernels, (list, tuple)) or not kernels:
        raise TypeError(f"cat_kernels takes a non-empty list of kernels, got {shown(kernels)}")
    ks = [_kernel(k, "cat_kernels") for k in kernels]
    if dim not in (0, 1):
        raise ConvAlgebraError(
            f"cat_kernels: dim must be 0 (output) or 1 (input channels), got {shown(dim)}"
        )
    other = {k.shape[:dim] + k.shape[dim + 1 :] for k in ks}
    if len(other) != 1:
        raise ConvAlgebraError(f"cat_kernels: shapes {[k.shape for k in ks]} differ off dim {dim}")
    names = ", ".join(k.formula() for k in ks)
    return _KernelSum(
        [(_placed(ks, i, dim), Fraction(1)) for i in range(len(ks))],
        f"cat_kernels([{names}], dim={dim})",
        (tuple(ks), dim),
    )


def ungroup_kernel(w: Kernel, groups: int) -> Kernel:
    """The dense kernel of a grouped convolution: ``conv(x, w, groups=g)`` equals
    ``conv(x, ungroup_kernel(w, g))``. Output channel ``o`` reads the input channels of its
    group; the others get zero taps.

    Examples
    --------
    >>> ungroup_kernel(kernel("w", (4, 1, 3)), 4).shape   # depthwise: a diagonal kernel
    (4, 4, 3)
    """
    w = _kernel(w, "ungroup_kernel")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ConvAlgebraError(f"groups must be a positive integer, got {shown(groups)}")
    c_out, per = w.shape[0], w.shape[1]
    if c_out % groups:
        raise ConvAlgebraError(f"groups={groups} does not divide the {c_out} output channels")
    shape = (c_out, per * int(groups), *w.shape[2:])
    src = budget.full(shape, -1, dtype=np.int64)
    grid = _index_grid(w.shape)
    out_per = c_out // int(groups)
    for o in range(c_out):
        g = o // out_per
        src[o, g * per : (g + 1) * per] = grid[o]
    return _Gathered(
        w, shape, src, f"ungroup_kernel({w.formula()}, {int(groups)})", "ungroup", (int(groups),)
    )


def _placed(ks: list[Kernel], i: int, dim: int) -> Kernel:
    k = ks[i]
    total = sum(x.shape[dim] for x in ks)
    before = sum(x.shape[dim] for x in ks[:i])
    shape = k.shape[:dim] + (total,) + k.shape[dim + 1 :]
    src = budget.full(shape, -1, dtype=np.int64)
    index = [slice(None)] * len(shape)
    index[dim] = slice(before, before + k.shape[dim])
    src[tuple(index)] = _index_grid(k.shape)
    return _Gathered(k, shape, src, k.formula())


def _arg(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else str(values)
