"""The Deep Learning book's general formulas (eq. 9.7/9.8, 9.11, 9.12-9.13) for a layer.

Printed with the book's letters and 1-based indices, the layer's strides, dilations, padding
and group offsets substituted, for any number of spatial dimensions. Each displayed formula
is an :class:`~convalgebra.derivations.general.IndexFormula` from
:func:`~convalgebra.derivations.general.layer_formulas`: what is printed is what
:meth:`~convalgebra.derivations.model.Derivation.verify` instantiates and compares with the layer's
triple table (``V`` the padded input, ``K`` the kernel, ``G`` the upstream gradient).
"""

from __future__ import annotations

from functools import partial

from ..spec import ConvSpec
from .general import LayerFormulas, ints
from .model import Equation, Step

__all__ = [
    "formula_equation",
    "forward_step",
    "kernel_gradient_step",
    "input_gradient_step",
    "general_check",
]

#: Positions at which a displayed general formula is instantiated by ``verify`` (all when fewer).
SAMPLE = 24


def formula_equation(formulas: LayerFormulas, key: str, label: str = "") -> Equation:
    """The displayed equation of formula ``key``, checked by instantiating it (see :mod:`.general`)."""
    return Equation(formulas[key].sides(), label=label, check=partial(formulas.check, key, SAMPLE))


def _notes(formulas: LayerFormulas, *keys: str) -> str:
    return " ".join(formulas.notes[k].rstrip(".") + "." for k in keys if k in formulas.notes)


def _stride_label(spec: ConvSpec, eq: str) -> str:
    stride = ints(spec.forward.stride)
    if max(stride) == 1 and eq == "9.8":
        return "eq. 9.7"
    return f"eq. {eq}, $s = " + ", ".join(map(str, stride)) + "$"


def forward_step(spec: ConvSpec, formulas: LayerFormulas) -> Step | None:
    """Eq. 9.7 (stride 1) or 9.8 with the layer's strides, dilations, padding and groups."""
    if "forward" not in formulas:
        return None
    return Step(
        "In the Deep Learning book's notation the input is $V$, the kernel stack $K$ and the output $Z$ "
        "(channel first, 1-based; $Z = z$):",
        (formula_equation(formulas, "forward", _stride_label(spec, "9.8")),),
        (
            "The sum runs over the input channels $l$ the output channel reads and over the kernel taps; "
            + _notes(formulas, "V", "K", "gamma")
        ).strip(),
        "general formula",
    )


def kernel_gradient_step(spec: ConvSpec, formulas: LayerFormulas) -> Step | None:
    """Eq. 9.11: the kernel gradient (its transposed counterpart for a transposed layer)."""
    if "kernel" not in formulas:
        return None
    if spec.transposed:
        return Step(
            "With $G = \\partial L / \\partial z$ the upstream gradient, each kernel entry collects the input "
            "times the gradient at every output it writes to:",
            (formula_equation(formulas, "kernel"),),
            (
                "Output position $p$ of a transposed convolution is written by input $j$ through tap $m$ exactly when "
                "the forward convolution's output $j$ reads position $p$ through $m$, so the gradient reads "
                "$\\hat{G}$ at the forward index. " + _notes(formulas, "Ghat", "K", "gamma")
            ).strip(),
            "general formula",
        )
    return Step(
        "With $G_{i,\\ldots} = \\partial L / \\partial Z_{i,\\ldots}$ the upstream gradient, the kernel gradient "
        "(eq. 9.11):",
        (formula_equation(formulas, "kernel", _stride_label(spec, "9.11")),),
        "Each kernel entry multiplies, in every output it contributes to, the input under it; the chain rule sums "
        "those inputs weighted by the upstream gradient"
        + ("; $\\partial L / \\partial w$ is this at the flipped tap." if spec.flip else "."),
        "general formula",
    )


def input_gradient_step(spec: ConvSpec, formulas: LayerFormulas) -> Step | None:
    """Eq. 9.12-9.13: the gradient at each padded position, then the input gradient collected from it."""
    if "input" not in formulas:
        return None
    if spec.transposed:
        return Step(
            "The input gradient of a transposed convolution is the forward convolution of the upstream gradient:",
            (formula_equation(formulas, "input"),),
            "Its matrix $M$ ($z = M a$) is $C^{\\top}$, with $C$ the matrix of the forward convolution with the "
            "same kernel, stride, dilation and padding; so $\\partial L / \\partial a = M^{\\top} G = C G$: that "
            "forward convolution, applied to $G$.",
            "general formula",
        )
    eqs = (
        formula_equation(formulas, "padded", _stride_label(spec, "9.13")),
        formula_equation(formulas, "input"),
    )
    copies = (
        ""
        if spec.padding_mode == "zeros"
        else " $\\pi_a(p)$ is the input position that padded position $p$ copies along axis $a$ (0 for none); an "
        "input copied to several padded positions collects all their gradients."
    )
    return Step(
        "The gradient with respect to the padded input (eq. 9.12-9.13), then with respect to the input itself:",
        eqs,
        "Padded position $p$ is read by every output $j$ and tap $m$ whose index lands on it; the sum collects "
        "the kernel entry times the upstream gradient over exactly those." + copies,
        "general formula",
    )


_NAMES = {
    "layer": "z",
    "forward": "Z",
    "kernel": r"\partial L / \partial K",
    "padded": "h",
    "input": r"\partial L / \partial a",
}


def general_check(formulas: LayerFormulas, keys: tuple[str, ...]) -> Step | None:
    """Instantiate the general formulas shown and state that they agree with the instantiated equations."""
    shown = [k for k in keys if k in formulas]
    if not shown:
        return None
    counts = {k: formulas.check(k, SAMPLE) for k in shown}
    total = sum(counts.values())
    parts = ", ".join(f"{counts[k]} for ${_NAMES[k]}$" for k in shown)
    return Step(
        f"Check: the general formulas above, instantiated at {total} positions ({parts}), agree with the instantiated "
        "equations term by term (those are read off the layer's index table).",
        justification=f"Each formula is checked at every position of its left side when there are at most {SAMPLE}, "
        f"otherwise at the corners and positions drawn at random (fixed seed), up to {SAMPLE}.",
        rule="check",
    )
