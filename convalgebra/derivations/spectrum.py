"""The derivation ``derive("spectrum", spec)``: a circular layer block-diagonalised by the DFT.

The steps render the objects of :mod:`convalgebra.symbolic.spectra`: the circulant structure
(with its polyphase split under a stride), the DFT blocks per frequency (real and imaginary
parts, exact), and, when every block is a row or a column, each singular value in closed form.
"""

from __future__ import annotations

import math
from typing import Any

import sympy

from ..errors import ConvAlgebraError
from ..spec import ConvSpec
from ..symbolic.spectra import spectrum_blocks, spectrum_layout, symbolic_singular_values
from .model import Derivation, Equation, Expr, Grid, Step
from .printing import sympy_expr
from .words import spec_words

__all__ = ["derive_spectrum"]


def _frequency_name(xi: tuple[int, ...]) -> tuple[str, str]:
    """The frequency as a label: ``$\\xi = 1$`` (one axis) or ``$\\xi = (1, 2)$``."""
    joined = str(xi[0]) if len(xi) == 1 else "(" + ", ".join(map(str, xi)) + ")"
    return rf"\xi = {joined}", f"ξ = {joined}"


def derive_spectrum(spec: ConvSpec, **options: Any) -> Derivation:
    """The spectrum of a small circular layer, step by step (``derive("spectrum", spec)``).

    Examples
    --------
    >>> from convalgebra import derive
    >>> d = derive("spectrum", ConvSpec((1, 3), 1, 2, padding=((0, 1),), padding_mode="circular"))
    >>> print(d.to_text().splitlines()[0])
    Singular values of Conv1d, kernel 2, circular padding 0 before, 1 after on 1×3
    >>> d.verify() > 0
    True
    """
    if options:
        raise ConvAlgebraError(f"derive('spectrum') takes no options, got {sorted(options)}")
    grid, phases, offsets = spectrum_layout(spec)
    blocks = spectrum_blocks(spec)
    steps = [_structure_step(spec, grid, phases, offsets), _blocks_step(blocks)]
    closed = all(min(b.shape) == 1 for _, bs in blocks for b in bs)
    result = symbolic_singular_values(spec) if closed else [b for _, bs in blocks for b in bs]
    steps.append(
        _values_step(blocks, result)
        if closed
        else Step(
            "The singular values of the layer are those of the blocks $A_\\xi$ together.",
            justification="A block larger than a row or a column has no closed-form singular "
            "values in general; convalgebra.singular_values computes them.",
            rule="result",
        )
    )
    return Derivation(f"Singular values of {spec_words(spec)}", tuple(steps), result=result)


def _structure_step(spec: ConvSpec, grid: tuple, phases: tuple, offsets: tuple) -> Step:
    stride = (
        ""
        if max(phases) == 1
        else (
            f" Every output reads the input in steps of $g = {_vector(phases)}$: split the input "
            f"into its ${math.prod(phases)}$ polyphase components, each on the grid "
            f"$N = {_vector(grid)}$."
        )
    )
    return Step(
        "Circular padding that tiles: output $r$ reads input $(r g + o + t d) \\bmod n$ "
        f"through tap $t$ (offset $o = {_vector(offsets)}$), a (block) circulant in $r$." + stride,
        justification="The DFT diagonalises every circulant (the convolution theorem); with "
        "polyphase components, one block row per frequency (Sedghi et al. 2019).",
        rule="block-diagonalisation",
    )


def _vector(values: tuple) -> str:
    """A per-axis tuple as mathematics: ``-1`` for one axis, ``(2, 2)`` for several."""
    values = tuple(int(v) for v in values)
    return str(values[0]) if len(values) == 1 else "(" + ", ".join(map(str, values)) + ")"


def _grid(block: Any) -> Grid:
    cells = tuple(
        tuple(sympy_expr(block[i, j]) for j in range(block.shape[1])) for i in range(block.shape[0])
    )
    return Grid(cells, value=block)


def _blocks_step(blocks: list) -> Step:
    eqs = []
    for xi, bs in blocks:
        label = "$" + _frequency_name(xi)[0] + "$"
        for group, block in enumerate(bs):
            sub = ",".join(map(str, xi))
            sup = f"^{{({group + 1})}}" if len(bs) > 1 else ""
            for part, fn in (("Re", sympy.re), ("Im", sympy.im)):
                name = rf"\operatorname{{{part}}} A_{{{sub}}}{sup}"
                text = f"{part} A_{sub}" + (f"^({group + 1})" if sup else "")
                value = _real_part(block, fn)
                eqs.append(Equation((Expr(name, text), _grid(value)), label=label))
    return Step(
        "The DFT blocks $A_\\xi = \\operatorname{Re} A_\\xi + i \\operatorname{Im} "
        "A_\\xi$, one per frequency (and group), with $\\omega = e^{-2\\pi i/N}$ "
        "evaluated exactly:",
        tuple(eqs),
        "Substituting the tap positions into the DFT.",
        rule="substitute",
    )


def _real_part(block: Any, fn: Any) -> Any:
    """Real or imaginary part of a block whose kernel symbols are real."""
    real = {s: sympy.Symbol(s.name, real=True) for s in block.free_symbols}
    back = {v: k for k, v in real.items()}
    return block.subs(real).applyfunc(lambda e: sympy.expand(fn(e))).subs(back)


def _values_step(blocks: list, values: list) -> Step:
    eqs = []
    k = 0
    for xi, bs in blocks:
        for _ in bs:
            name = f"\\sigma_{{{','.join(map(str, xi))}}}"
            eqs.append(
                Equation((Expr(name, f"sigma_{'_'.join(map(str, xi))}"), sympy_expr(values[k])))
            )
            k += 1
    return Step(
        "Each block is a row or a column: its one singular value is its Euclidean norm.",
        tuple(eqs),
        "For real kernels $|\\sum_t w_t \\omega^{k_t}|^2 = (\\sum_t w_t \\cos\\theta_t)^2"
        " + (\\sum_t w_t \\sin\\theta_t)^2$.",
        rule="result",
    )
