"""The index formula of a layer, as the first steps of matrix and forward derivations.

With 1-based indices (as in the Deep Learning book), output position ``j`` along an axis reads,
through kernel tap ``m``, the input position ``i = S(j - 1) + D(m - 1) + 1 - P_b`` (stride
``S``, dilation ``D``, padding before ``P_b``). This module prints that formula with the
layer's numbers substituted (``i = 2(j - 1) + m``, ``i = j + m - 1``) and keeps its sympy
value, so the printed index is checked like any other equation.
"""

from __future__ import annotations

from ..spec import ConvSpec
from .model import Equation, Expr, Step
from .printing import linear

__all__ = ["index_steps", "axis_index", "OUT_LETTERS", "TAP_LETTERS"]

OUT_LETTERS = ("j", "k", "t")
TAP_LETTERS = ("m", "n", "p")

_PADDING_RULE = {
    "zeros": "an index outside $1 \\ldots N$ reads a zero (zero padding)",
    "circular": "indices wrap around: $i$ reads $a_{((i - 1) \\bmod N) + 1}$ (circular padding)",
    "reflect": "indices past an edge are mirrored at that edge without repeating it (reflect padding)",
    "replicate": "indices past an edge read the edge value (replicate padding)",
}


def axis_index(spec: ConvSpec, axis: int) -> Expr:
    """The 1-based input index read by output ``j`` through tap ``m`` along ``axis``.

    Examples
    --------
    >>> axis_index(ConvSpec((1, 5, 5), 1, 3, stride=2), 0).tex
    '2(j - 1) + m'
    >>> axis_index(ConvSpec((1, 7), 1, 3), 0).text
    'j + m - 1'
    """
    s, d = spec.stride[axis], spec.dilation[axis]
    before = spec.padding[axis][0]
    j, m = OUT_LETTERS[axis], TAP_LETTERS[axis]
    terms = [(1, j) if s == 1 else (s, f"({j} - 1)"), (1, m) if d == 1 else (d, f"({m} - 1)")]
    constant = (-1 if s == 1 else 0) + (-1 if d == 1 else 0) + 1 - before
    return linear(terms, constant)


def _tap(spec: ConvSpec, axis: int) -> str:
    m, k = TAP_LETTERS[axis], spec.kernel_size[axis]
    return f"{k + 1} - {m}" if spec.flip else m


def _formula(spec: ConvSpec) -> str:
    n = spec.ndim
    outs = list(OUT_LETTERS[:n])
    sums = "".join(rf"\sum_{{{TAP_LETTERS[a]}=1}}^{{{spec.kernel_size[a]}}}" for a in range(n))
    taps = [_tap(spec, a) for a in range(n)]
    index = [axis_index(spec, a).tex for a in range(n)]
    if spec.in_channels * spec.out_channels == 1 and spec.tile is None:
        return rf"z_{{{','.join(outs)}}} = {sums} w_{{{','.join(taps)}}}\, a_{{{', '.join(index)}}}"
    per = spec.in_channels // spec.groups
    c_range = (rf"\sum_{{c=1}}^{{{spec.in_channels}}}" if spec.groups == 1 and spec.channel_table is None
               else r"\sum_{c \in \mathrm{group}(o)}")
    tile = ("^{(" + ",".join(f"({o} - 1) \\bmod {t}" for o, t in zip(outs, spec.tile)) + ")}") if spec.tile else ""
    weight_c = "c" if per == spec.in_channels else "c'"
    return (rf"z_{{o,{','.join(outs)}}} = {c_range}{sums} w{tile}_{{o,{weight_c},{','.join(taps)}}}\, "
            rf"a_{{c,{', '.join(index)}}}")


def _conventions(spec: ConvSpec) -> Step:
    from ..symbolic import input_symbols, output_symbols, weight_symbols
    from .printing import tex_symbol

    kind = ("true convolution (the kernel is flipped)" if spec.flip else
            "cross-correlation (the kernel is not flipped), as in every deep learning library")
    names = []
    for label, array, layout in (("inputs", input_symbols(spec), "channel, then position"),
                                 ("kernel", weight_symbols(spec),
                                  ("tile position, " if spec.tile else "") + "output channel, input channel, taps"),
                                 ("outputs", output_symbols(spec), "channel, then position")):
        flat = array.ravel()
        shown = ", ".join(tex_symbol(s) for s in flat[:2])
        indexed = "_{" in flat[0].name
        names.append(f"{label} ${shown}, \\ldots$" + (f" ({layout})" if indexed else ""))
    return Step(f"The layer computes a {kind}. Write {', '.join(names[:2])} and {names[2]}, numbered from 1, "
                "row-major.",
                justification="Flattening in C order makes $M a$ equal to the flattened output, as in PyTorch.",
                rule="definition")


def index_steps(spec: ConvSpec) -> list[Step]:
    """Conventions, the output formula and the per-axis input index of a (forward) spec."""
    if spec.transposed:
        forward = spec.forward
        steps = index_steps(forward)
        steps.append(Step(
            f"This layer is a transposed convolution: its matrix is $M^{{\\top}}$, where $M$ is the matrix of "
            f"the forward convolution {forward.describe()}.",
            justification="The transposed convolution is defined as the adjoint (the backward pass) of the "
            "forward convolution from its output shape.", rule="transpose"))
        return steps
    n = spec.ndim
    equations = tuple(
        Equation((Expr(f"i_{{{a}}}", f"i_{a}"), axis_index(spec, a)),
                 label=f"axis {a}: $S = {spec.stride[a]}$, $P_b = {spec.padding[a][0]}$"
                 + (f", $D = {spec.dilation[a]}$" if spec.dilation[a] > 1 else ""))
        for a in range(n))
    formula = Step(
        f"Each output is a sum over the kernel taps: ${_formula(spec)}$, where along each axis",
        equations,
        "With 1-based indices the first window starts at $1 - P_b$, each next window $S$ further, and tap "
        f"$m$ sits $D(m - 1)$ after the window's start; {_PADDING_RULE[spec.padding_mode]}.",
        "index formula")
    return [_conventions(spec), formula]
