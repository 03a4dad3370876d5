"""The Deep Learning book's general formulas (eq. 9.7/9.8, 9.11, 9.12-9.13) for a layer.

Printed with the book's letters and 1-based indices, the layer's strides substituted
(``(j-1) \\times 2 + m``), for any number of spatial dimensions. ``V`` is the padded input and
``K`` the kernel stack (zeros between dilated taps, reversed when the kernel is flipped), as in
:mod:`convalgebra.symbolic.backward`, whose :func:`check_general_formulas` expands these
formulas for the layer's sizes and compares them with the instantiated equations.
"""

from __future__ import annotations

from ..errors import ConvAlgebraError
from ..spec import ConvSpec
from .model import Equation, Expr, Step
from .printing import tex_to_text

__all__ = ["forward_step", "kernel_gradient_step", "input_gradient_step", "general_check"]


def _letters(n: int, two: tuple[str, str], extra: str) -> list[str]:
    return list(two[:n]) if n <= 2 else [*two, extra]


def _strided(outer: str, s: int, inner: str) -> str:
    return f"{outer} + {inner} - 1" if s == 1 else rf"({outer} - 1) \times {s} + {inner}"


def _in_scope(spec: ConvSpec) -> bool:
    return not spec.transposed and spec.tile is None and spec.channel_table is None


def _eq(lhs: str, rhs: str, label: str) -> Equation:
    return Equation((Expr(lhs, tex_to_text(lhs)), Expr(rhs, tex_to_text(rhs))), label=label)


def _notes(spec: ConvSpec) -> str:
    notes = []
    if any(a + b for a, b in spec.padding):
        notes.append("$V$ is the input padded by $P_b$ before and $P_a$ after on each axis")
    if max(spec.dilation) > 1:
        notes.append("$K$ is the dilated kernel (zeros between taps)")
    if spec.flip:
        notes.append("$K$ is the flipped kernel (this layer is a true convolution)")
    if spec.groups > 1:
        notes.append("$K$ is zero between channels that no group connects")
    return ("; ".join(notes) + ".") if notes else ""


def forward_step(spec: ConvSpec) -> Step | None:
    """Eq. 9.7 (stride 1) or 9.8 with the layer's strides."""
    if not _in_scope(spec):
        return None
    n = spec.ndim
    outs, taps = _letters(n, ("j", "k"), "t"), _letters(n, ("m", "n"), "p")
    index = ", ".join(_strided(o, s, t) for o, s, t in zip(outs, spec.stride, taps))
    lhs = f"Z_{{i,{','.join(outs)}}}"
    rhs = rf"\sum_{{l,{','.join(taps)}}} V_{{l,{index}}}\, K_{{i,l,{','.join(taps)}}}"
    label = "eq. 9.7" if max(spec.stride) == 1 else "eq. 9.8, $s = " + ", ".join(map(str, spec.stride)) + "$"
    return Step(
        "In the Deep Learning book's notation (input $V$, kernel stack $K$, output $Z$, channel first, 1-based):",
        (_eq(lhs, rhs, label),),
        ("Eq. 9.8 is the cross-correlation of eq. 9.7 sampled every $s$ outputs; the sum runs over the input "
         "channels $l$ and the kernel taps. " + _notes(spec)).strip(),
        "general formula")


def kernel_gradient_step(spec: ConvSpec) -> Step | None:
    """Eq. 9.11: the kernel gradient ``g(G, V, s)``."""
    if not _in_scope(spec):
        return None
    n = spec.ndim
    taps, outs = _letters(n, ("k", "l"), "u"), _letters(n, ("m", "n"), "p")
    index = ", ".join(_strided(o, s, t) for o, s, t in zip(outs, spec.stride, taps))
    lhs = rf"g(G, V, s)_{{i,j,{','.join(taps)}}} = \frac{{\partial L}}{{\partial K_{{i,j,{','.join(taps)}}}}}"
    rhs = rf"\sum_{{{','.join(outs)}}} G_{{i,{','.join(outs)}}}\, V_{{j,{index}}}"
    return Step(
        "With $G_{i,\\ldots} = \\partial L / \\partial Z_{i,\\ldots}$, the kernel gradient (eq. 9.11):",
        (_eq(lhs, rhs, "eq. 9.11"),),
        "Each kernel entry multiplies, in every output it contributes to, the input under it; the chain rule sums "
        "those inputs weighted by the upstream gradient.",
        "general formula")


def input_gradient_step(spec: ConvSpec) -> Step | None:
    """Eq. 9.12-9.13: the input gradient ``h(K, G, s)``."""
    if not _in_scope(spec):
        return None
    n = spec.ndim
    pos = _letters(n, ("j", "k"), "t")
    pairs = [("l", "m"), ("n", "p"), ("u", "v")][:n]
    sums = "".join(
        rf"\sum_{{{a},{b} \,:\, {_strided(a, s, b)} = {p}}}" for (a, b), s, p in zip(pairs, spec.stride, pos))
    lhs = rf"h(K, G, s)_{{i,{','.join(pos)}}} = \frac{{\partial L}}{{\partial V_{{i,{','.join(pos)}}}}}"
    rhs = rf"{sums} \sum_{{q}} K_{{q,i,{','.join(b for _, b in pairs)}}}\, G_{{q,{','.join(a for a, _ in pairs)}}}"
    return Step(
        "The input gradient (eq. 9.12-9.13):",
        (_eq(lhs, rhs, "eq. 9.13"),),
        "Input $V_{i,\\ldots}$ is read by every output $(l, n)$ and tap $(m, p)$ with $(l - 1)s + m$ equal to its "
        "position: sum the kernel entry times the upstream gradient over exactly those.",
        "general formula")


def general_check(backward) -> Step | None:
    """State that the general formulas, expanded for the layer's sizes, give the equations shown."""
    if not _in_scope(backward.spec):
        return None
    try:
        from ..symbolic.backward import check_general_formulas

        agrees = check_general_formulas(backward)
    except (ImportError, ConvAlgebraError):
        return None
    verdict = "agree with" if agrees else "DISAGREE with"
    return Step(
        f"Check: eq. 9.8, 9.11 and 9.13, summed out for this layer's sizes, {verdict} the instantiated equations "
        "above (term by term, in sympy).", rule="check")
