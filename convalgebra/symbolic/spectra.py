"""Closed-form singular values of small circular layers (``derive("spectrum", spec)`` shows them).

The DFT block-diagonalises a circular layer whose output tiles its input
(:func:`convalgebra.spectra.fft_applies`): in polyphase coordinates, frequency ``xi`` carries
the ``C_out x (C_in * phases)`` block ``A_xi[o, (i, phi)] = sum_t w[o, i, t] omega^(xi . u_t)``
(per group), where tap ``t`` lands at polyphase position ``u_t`` of phase ``phi_t`` and
``omega = exp(-2 pi i / N)``. Its singular values are the layer's. When a block is a single
row or column (one output channel per group, or one input channel and no stride) they are in
closed form: ``sigma_xi = sqrt(sum |A_xi entries|^2)``, with ``|sum_t w_t omega^(k_t)|^2 =
(sum_t w_t cos(2 pi k_t / N))^2 + (sum_t w_t sin(2 pi k_t / N))^2`` for real kernels.

Examples
--------
>>> from convalgebra import ConvSpec
>>> spec = ConvSpec((1, 4), 1, 2, padding=((0, 1),), padding_mode="circular", bias=False)
>>> symbolic_singular_values(spec)
[Abs(w1 + w2), sqrt(w1**2 + w2**2), Abs(w1 - w2), sqrt(w1**2 + w2**2)]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy

from ..connectivity import tap_weight_order
from ..errors import ConvAlgebraError
from ..spec import ConvSpec
from ..spectra import fft_applies, polyphase_taps
from .matrix import weight_symbols

__all__ = ["spectrum_blocks", "symbolic_singular_values", "spectrum_layout"]

_MAX_FREQUENCIES = 64


def spectrum_layout(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(grid, phases, offsets)`` of the DFT route, or a refusal naming the rule.

    Examples
    --------
    >>> spectrum_layout(ConvSpec((1, 6), 1, 3, stride=2, padding=1, padding_mode="circular"))
    ((3,), (2,), (-1,))
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    if not fft_applies(spec):
        raise ConvAlgebraError(
            f"a closed-form spectrum needs circular padding whose output tiles the input "
            f"(out = n / gcd(stride, n) per axis); {spec.describe()} does not: use "
            "convalgebra.singular_values numerically"
        )
    sizes = spec.forward_input_spatial
    strides: tuple[int, ...] = spec.stride  # normalised
    phases = tuple(math.gcd(s, n) for s, n in zip(strides, sizes, strict=True))
    grid = tuple(n // g for n, g in zip(sizes, phases, strict=True))
    if math.prod(grid) > _MAX_FREQUENCIES:
        raise ConvAlgebraError(
            f"{math.prod(grid)} frequencies is too many to display "
            f"(at most {_MAX_FREQUENCIES}); use a smaller input"
        )
    return grid, phases, tuple(-b for b, _ in spec.padding)


def _phase_factor(xi: tuple[int, ...], u: np.ndarray, grid: tuple[int, ...]) -> Any:
    """``omega^(xi . u)`` as an exact sympy number, ``exp(-2 pi i sum xi_a u_a / N_a)``."""
    angle = sum(sympy.Rational(int(x) * int(p), n) for x, p, n in zip(xi, u, grid, strict=True))
    angle = angle - sympy.floor(angle)
    return sympy.cos(2 * sympy.pi * angle) - sympy.I * sympy.sin(2 * sympy.pi * angle)


def spectrum_blocks(spec: ConvSpec) -> list[tuple[tuple[int, ...], list[Any]]]:
    """Per frequency, the symbolic DFT block of every group (sympy matrices in the kernel).

    Examples
    --------
    >>> spec = ConvSpec((1, 2), 1, 2, padding=((0, 1),), padding_mode="circular")
    >>> [(xi, blocks[0].tolist()) for xi, blocks in spectrum_blocks(spec)]
    [((0,), [[w1 + w2]]), ((1,), [[w1 - w2]])]
    """
    grid, phases, offsets = spectrum_layout(spec)
    positions, phase = polyphase_taps(spec, spec.forward_input_spatial, offsets, phases)
    w = weight_symbols(spec)
    c_out, per = w.shape[0], w.shape[1]
    w = w.reshape(c_out, per, -1)[:, :, tap_weight_order(spec)]
    g, n_phase = spec.groups, math.prod(phases)
    out = []
    for xi in np.ndindex(*grid):
        factors = [_phase_factor(xi, positions[:, t], grid) for t in range(positions.shape[1])]
        blocks = []
        for group in range(g):
            block = sympy.zeros(c_out // g, per * n_phase)
            for o in range(c_out // g):
                for i in range(per):
                    for t, f in enumerate(factors):
                        block[o, i * n_phase + phase[t]] += w[group * (c_out // g) + o, i, t] * f
            blocks.append(block.applyfunc(sympy.expand))
        out.append((tuple(int(v) for v in xi), blocks))
    return out


def _vector_norm(block: Any) -> Any:
    """``sqrt(sum |entry|^2)`` of a row or column block, real kernel symbols assumed."""
    total = sum((sympy.re(e) ** 2 + sympy.im(e) ** 2 for e in block), sympy.Integer(0))
    real = {s: sympy.Symbol(s.name, real=True) for s in block.free_symbols}
    back = {v: k for k, v in real.items()}
    value = sympy.sqrt(sympy.expand(total.subs(real))).subs(back)
    return sympy.factor(value) if value.is_Pow else value


def symbolic_singular_values(spec: ConvSpec) -> list[Any]:
    """The singular values in closed form, one list entry per (frequency, group).

    Available when every DFT block is a row or a column (one output channel per group, or
    one input channel per group without stride); otherwise the blocks of
    :func:`spectrum_blocks` hold them and a :class:`ConvAlgebraError` says so.
    """
    values = []
    for _, blocks in spectrum_blocks(spec):
        for block in blocks:
            if min(block.shape) != 1:
                raise ConvAlgebraError(
                    f"the DFT blocks of {spec.describe()} are {block.shape[0]}x{block.shape[1]}:"
                    " their singular values have no closed form here; see spectrum_blocks"
                )
            values.append(_real_kernel(_vector_norm(block)))
    return values


def _real_kernel(value: Any) -> Any:
    """Simplify ``sqrt(x**2)`` to ``Abs(x)`` (kernel symbols are real)."""
    if value.is_Pow and value.exp == sympy.Rational(1, 2):
        base = sympy.factor(value.base)
        if base.is_Pow and base.exp == 2:
            return sympy.Abs(base.base)
    return value
