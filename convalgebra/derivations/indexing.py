"""The index formula of a layer, as the first steps of matrix and forward derivations.

With 1-based indices (as in the Deep Learning book), output position ``j`` along an axis reads,
through kernel tap ``m``, the input position ``i = S(j - 1) + D(m - 1) + 1 - P_b`` (stride
``S``, dilation ``D``, padding before ``P_b``). This module prints that formula with the
layer's numbers substituted (``i = 2(j - 1) + m``, ``i = j + m - 1``) and keeps its sympy
value, so the printed index is checked like any other equation.
"""

from __future__ import annotations

from ..spec import ConvSpec
from .model import Expr, Step
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
    c_range = (
        rf"\sum_{{c=1}}^{{{spec.in_channels}}}"
        if spec.groups == 1 and spec.channel_table is None
        else r"\sum_{c \in \mathrm{group}(o)}"
    )
    tile = (
        ("^{(" + ",".join(f"({o} - 1) \\bmod {t}" for o, t in zip(outs, spec.tile)) + ")}")
        if spec.tile
        else ""
    )
    weight_c = "c" if per == spec.in_channels else "c'"
    return (
        rf"z_{{o,{','.join(outs)}}} = {c_range}{sums} w{tile}_{{o,{weight_c},{','.join(taps)}}}\, "
        rf"a_{{c,{', '.join(index)}}}"
    )


def _kind(spec: ConvSpec) -> str:
    if spec.transposed:
        return (
            "transposed convolution: every input is multiplied by the kernel and scattered onto the output "
            "(its matrix is the transpose of the forward convolution's)"
        )
    if spec.flip:
        return "true convolution (the kernel is flipped)"
    return "cross-correlation (the kernel is not flipped), as in every deep learning library"


def _conventions(spec: ConvSpec) -> Step:
    from ..symbolic import input_symbols, output_symbols, weight_symbols
    from .printing import tex_symbol

    names = []
    for label, array, layout in (
        ("inputs", input_symbols(spec), "channel, then position"),
        (
            "kernel",
            weight_symbols(spec),
            ("tile position, " if spec.tile else "")
            + (
                "input channel, output channel in its group, taps"
                if spec.transposed
                else "output channel, input channel in its group, taps"
            ),
        ),
        ("outputs", output_symbols(spec), "channel, then position"),
    ):
        flat = array.ravel()
        shown = ", ".join(tex_symbol(s) for s in flat[:2])
        indexed = "_{" in flat[0].name
        names.append(f"{label} ${shown}, \\ldots$" + (f" ({layout})" if indexed else ""))
    return Step(
        f"The layer computes a {_kind(spec)}. Write {', '.join(names[:2])} and {names[2]}, "
        "numbered from 1, row-major; every index in this derivation is 1-based.",
        justification="Flattening in C order makes $M a$ equal to the flattened output, as in PyTorch; "
        "a general formula writes the same entries with one index per axis"
        + (
            " ($w_{m,n}$ is the entry in kernel row $m$, column $n$)."
            if spec.ndim == 2
            else " ($w_m$ is kernel tap $m$)."
            if spec.ndim == 1
            else " (one kernel index per spatial axis)."
        ),
        rule="definition",
    )


def _layer_step(spec: ConvSpec, formulas) -> Step:
    from .books import formula_equation

    if spec.transposed:
        forward = spec.forward
        why = (
            "Output position $p$ collects every input $j$ and tap $m$ for which the forward convolution "
            f"{forward.describe()} reads $p$ from output $j$ through tap $m$: the same index map, solved for $j$"
            + (" after the padding" if any(b for b, _ in spec.padding) else "")
            + "."
        )
        return Step(
            "Each output is a sum over the inputs and taps that scatter onto it:",
            (formula_equation(formulas, "layer"),),
            why + " " + " ".join(formulas.notes[k] for k in ("gamma",) if k in formulas.notes),
            "index formula",
        )
    padding = {k: v for k, v in _PADDING_RULE.items()}[spec.padding_mode]
    notes = " ".join(formulas.notes[k] for k in ("gamma",) if k in formulas.notes)
    return Step(
        "Each output is a sum over the kernel taps"
        + (" and the input channels of its group" if spec.in_channels // spec.groups > 1 else "")
        + ":",
        (formula_equation(formulas, "layer"),),
        (
            "With 1-based indices the first window starts at $1 - P_b$ ($P_b$ the padding before), each next window "
            f"$S$ further (the stride), and tap $m$ sits $D(m - 1)$ after the window's start (the dilation); {padding}. "
            + (
                "The first indices of $w$ pick the kernel of the output's tile. "
                if spec.tile
                else ""
            )
            + notes
        ).strip(),
        "index formula",
    )


def index_steps(spec: ConvSpec, formulas=None) -> list[Step]:
    """Conventions and the layer's own index formula (checked by instantiation)."""
    if spec.channel_table is not None:
        return [
            _conventions(spec),
            Step(
                f"Each output is a sum over the kernel taps: ${_formula(spec)}$.",
                rule="index formula",
            ),
        ]
    if formulas is None:
        from .general import layer_formulas

        formulas = layer_formulas(spec)
    return [_conventions(spec), _layer_step(spec, formulas)]
