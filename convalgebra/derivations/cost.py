"""The cost of a block of convolutions against the standard convolution it replaces.

Parameters and multiply-accumulates (MACs) of each layer, their totals and the exact ratios; a
depthwise-separable block (a ``k × k`` depthwise layer, then a ``1 × 1`` pointwise layer) also gets
the closed form of its ratio, ``1/C_out + 1/k²`` (MobileNet's), checked at the layer's numbers.
With ``batchnorm=True`` a batch normalisation follows each convolution: ``2C`` parameters
(scale and shift) and ``2C + 1`` buffers (running mean and variance, the batch counter).

Notes
-----
A convolution with ``C_in → C_out`` channels, ``G`` groups and kernel ``k_1 × … × k_n`` has
``C_out (C_in/G) ∏k`` weights (plus ``C_out`` biases) and does ``(C_in/G) ∏k`` MACs per output
element.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec
from .general import ints
from .model import Derivation, Equation, Expr, Step
from .printing import number
from .words import spec_words

__all__ = ["derive_cost", "standard_conv"]


def standard_conv(block: Sequence[ConvSpec]) -> ConvSpec:
    """The ordinary convolution a block replaces: the block's channels, its first non-1×1 kernel.

    Examples
    --------
    >>> dw = ConvSpec((32, 16, 16), 32, 3, padding=1, groups=32, bias=False)
    >>> pw = ConvSpec((32, 16, 16), 64, 1, bias=False)
    >>> spec_words(standard_conv([dw, pw]))
    'Conv2d, 32→64 channels, 3×3, padding 1, no bias on 32×16×16'
    """
    first, last = block[0], block[-1]
    shaped = next((s for s in block if math.prod(ints(s.kernel_size)) > 1), first)
    return ConvSpec(
        first.input_shape,
        last.out_channels,
        ints(shaped.kernel_size),
        stride=ints(shaped.stride),
        padding=shaped.padding,
        dilation=ints(shaped.dilation),
        padding_mode=shaped.padding_mode,
        bias=any(s.bias for s in block),
    )


def _layer_equations(spec: ConvSpec, name: str) -> tuple[Equation, Equation]:
    per = spec.in_channels // spec.groups
    taps = math.prod(ints(spec.kernel_size))
    weights = f"{spec.out_channels} \\cdot {per} \\cdot {taps}"
    tex = weights + (f" + {spec.out_channels}" if spec.bias else "")
    text = tex.replace(" \\cdot ", "*")
    params = Equation(
        (
            Expr(rf"\text{{params}}_{{{name}}}", f"params_{name}"),
            Expr(tex, text, spec.n_params),
            number(spec.n_params),
        )
    )
    outputs = math.prod(spec.output_shape)
    macs = Equation(
        (
            Expr(rf"\text{{MACs}}_{{{name}}}", f"MACs_{name}"),
            Expr(rf"{outputs} \cdot {per} \cdot {taps}", f"{outputs}*{per}*{taps}", spec.macs),
            number(spec.macs),
        )
    )
    return params, macs


def _is_separable(block: Sequence[ConvSpec]) -> bool:
    if len(block) != 2:
        return False
    dw, pw = block
    return (
        dw.groups == dw.in_channels == dw.out_channels
        and math.prod(ints(pw.kernel_size)) == 1
        and pw.groups == 1
        and max(ints(pw.stride)) == 1
        and not dw.bias
        and not pw.bias
    )


def _separable_step(block: Sequence[ConvSpec], standard: ConvSpec, ratio: Any) -> Step:
    import sympy

    dw, pw = block
    k2 = math.prod(ints(dw.kernel_size))
    c_out, K = sympy.symbols("C_out K", positive=True)  # K = k², the taps of the depthwise kernel
    closed = 1 / c_out + 1 / K
    eq = Equation(
        (
            Expr(r"\frac{\text{MACs}_{\text{block}}}{\text{MACs}_{\text{standard}}}", "ratio"),
            Expr(
                r"\frac{C_{in} K H W + C_{in} C_{out} H W}{C_{in} C_{out} K H W}",
                "(C_in*K*H*W + C_in*C_out*H*W)/(C_in*C_out*K*H*W)",
            ),
            Expr(r"\frac{1}{C_{out}} + \frac{1}{K}", "1/C_out + 1/K", closed),
            Expr(
                rf"\frac{{1}}{{{pw.out_channels}}} + \frac{{1}}{{{k2}}}",
                f"1/{pw.out_channels} + 1/{k2}",
                sympy.Rational(1, pw.out_channels) + sympy.Rational(1, k2),
            ),
            number(ratio),
        ),
        subs=((c_out, pw.out_channels), (K, k2)),
    )
    return Step(
        f"The block is depthwise separable: with $K = {k2}$ taps per kernel, $H W$ output positions and "
        "$C_{in}$, $C_{out}$ channels, its cost against the standard convolution is",
        (eq,),
        "The depthwise layer does $C_{in} K$ MACs per position, the pointwise one $C_{in} C_{out}$, the standard "
        "convolution $C_{in} C_{out} K$; the last value is the ratio of the library's counts.",
        "ratio",
    )


def _batchnorm_step(block: Sequence[ConvSpec]) -> tuple[Step, int, int]:
    from ..network.layers import BatchNorm

    eqs, params, buffers = [], 0, 0
    for n, spec in enumerate(block, 1):
        facts = BatchNorm().facts([spec.output_shape])
        p, b = sum(facts.params.values()), sum(facts.buffers.values())
        c = spec.out_channels
        eqs.append(
            Equation(
                (
                    Expr(rf"\text{{BN params}}_{{{n}}}", f"BN params_{n}"),
                    Expr(rf"2 \cdot {c}", f"2*{c}", 2 * c),
                    number(p),
                )
            )
        )
        eqs.append(
            Equation(
                (
                    Expr(rf"\text{{BN buffers}}_{{{n}}}", f"BN buffers_{n}"),
                    Expr(rf"2 \cdot {c} + 1", f"2*{c} + 1", 2 * c + 1),
                    number(b),
                )
            )
        )
        params, buffers = params + p, buffers + b
    return (
        Step(
            "A batch normalisation after each convolution learns a scale and a shift per channel and keeps a running "
            "mean and variance per channel, and one batch counter:",
            tuple(eqs),
            "Buffers are state, not parameters: they are updated from the batches, not by the gradient.",
            "batchnorm",
        ),
        params,
        buffers,
    )


def derive_cost(
    block: Any,
    *,
    baseline: ConvSpec | None = None,
    batchnorm: bool = False,
    dtype_bytes: int | None = None,
) -> Derivation:
    """Parameters and MACs of a block of convolutions against the standard convolution it
    replaces, or of a whole network layer by layer.

    Parameters
    ----------
    block : ConvSpec, list of ConvSpec or LayerGraph
        The layers, applied one after the other (each reads the previous one's output), or a
        network (:func:`~convalgebra.derivations.network_cost.derive_network_cost`: parameters,
        buffers, MACs and memory per layer, and the totals).
    baseline : ConvSpec, optional
        What the block replaces; default :func:`standard_conv` of the block.
    batchnorm : bool
        Count a batch normalisation after each convolution of the block.
    dtype_bytes : int, optional
        Bytes per element of a network's memory (default 4); networks only.

    Returns
    -------
    Derivation
        ``result`` holds the totals: ``params``, ``macs``, ``baseline_params``, ``baseline_macs``
        and, with ``batchnorm``, ``bn_params`` and ``bn_buffers`` (a network's: those of
        :meth:`~convalgebra.network.graph.LayerGraph.summary`).

    Examples
    --------
    >>> dw = ConvSpec((32, 16, 16), 32, 3, padding=1, groups=32, bias=False)
    >>> pw = ConvSpec((32, 16, 16), 64, 1, bias=False)
    >>> derive_cost([dw, pw]).result["macs"], derive_cost([dw, pw]).result["baseline_macs"]
    (598016, 4718592)
    """
    import sympy

    from ..network.graph import LayerGraph

    if isinstance(block, LayerGraph):
        if baseline is not None or batchnorm:
            raise ConvAlgebraError(
                "cost derivations of a network count its own batch norms and have no baseline; "
                f"got baseline={shown(baseline)}, batchnorm={shown(batchnorm)}"
            )
        from .network_cost import derive_network_cost

        return derive_network_cost(block, dtype_bytes=4 if dtype_bytes is None else dtype_bytes)
    if dtype_bytes is not None:
        raise ConvAlgebraError(
            f"dtype_bytes applies to a network's cost, not to layers; got {shown(dtype_bytes)}"
        )
    if not isinstance(block, (ConvSpec, list, tuple)):
        raise ConvAlgebraError(
            f"cost derivations need a ConvSpec, a list of ConvSpecs or a LayerGraph, got {shown(block)}"
        )
    specs = [block] if isinstance(block, ConvSpec) else list(block)
    if not specs or not all(isinstance(s, ConvSpec) for s in specs):
        raise ConvAlgebraError(
            f"cost derivations need a ConvSpec, a list of ConvSpecs or a LayerGraph, got {shown(block)}"
        )
    for n, (a, b) in enumerate(zip(specs, specs[1:], strict=False), 2):
        if a.output_shape != b.input_shape:
            raise ConvAlgebraError(
                f"layer {n} reads {b.input_shape}, but layer {n - 1} writes {a.output_shape}"
            )
    standard = standard_conv(specs) if baseline is None else baseline
    steps = [
        Step(
            "The block: "
            + "; then ".join(spec_words(s) for s in specs)
            + ". It replaces the standard "
            f"convolution {spec_words(standard)}.",
            rule="definition",
        )
    ]
    for n, spec in enumerate(specs, 1):
        steps.append(
            Step(
                f"Layer {n} has $C_{{out}} (C_{{in}}/G) \\prod k$ weights"
                + (" and $C_{out}$ biases" if spec.bias else "")
                + " and does $(C_{in}/G) \\prod k$ "
                "MACs per output element:",
                _layer_equations(spec, str(n)),
                justification=f"Here $C_{{in}} = {spec.in_channels}$, $G = {spec.groups}$, "
                f"$C_{{out}} = {spec.out_channels}$ and the output has {math.prod(spec.output_shape):,} "
                "elements.",
                rule="count",
            )
        )
    params, macs = sum(s.n_params for s in specs), sum(s.macs for s in specs)
    steps.append(
        Step(
            "The standard convolution, counted the same way:",
            _layer_equations(standard, "std"),
            rule="count",
        )
    )
    ratio_p, ratio_m = (
        sympy.Rational(params, standard.n_params),
        sympy.Rational(macs, standard.macs),
    )
    steps.append(
        Step(
            "Totals and ratios (block over standard):",
            (
                Equation(
                    (
                        Expr(r"\text{params}", "params"),
                        Expr(
                            " + ".join(str(s.n_params) for s in specs),
                            " + ".join(str(s.n_params) for s in specs),
                            params,
                        ),
                        number(params),
                    )
                ),
                Equation(
                    (
                        Expr(r"\text{MACs}", "MACs"),
                        Expr(
                            " + ".join(str(s.macs) for s in specs),
                            " + ".join(str(s.macs) for s in specs),
                            macs,
                        ),
                        number(macs),
                    )
                ),
                Equation(
                    (
                        Expr(r"\text{params ratio}", "params ratio"),
                        Expr(
                            rf"\frac{{{params}}}{{{standard.n_params}}}",
                            f"{params}/{standard.n_params}",
                            ratio_p,
                        ),
                        number(ratio_p),
                    )
                ),
                Equation(
                    (
                        Expr(r"\text{MACs ratio}", "MACs ratio"),
                        Expr(
                            rf"\frac{{{macs}}}{{{standard.macs}}}",
                            f"{macs}/{standard.macs}",
                            ratio_m,
                        ),
                        number(ratio_m),
                    )
                ),
            ),
            "Exact fractions of the library's counts.",
            "compare",
        )
    )
    if _is_separable(specs) and baseline is None:
        steps.append(_separable_step(specs, standard, ratio_m))
    result = {
        "params": params,
        "macs": macs,
        "baseline_params": standard.n_params,
        "baseline_macs": standard.macs,
    }
    if batchnorm:
        step, bn_p, bn_b = _batchnorm_step(specs)
        steps.append(step)
        result.update(bn_params=bn_p, bn_buffers=bn_b)
    title = "Cost of " + (
        spec_words(specs[0]) if len(specs) == 1 else f"a block of {len(specs)} convolutions"
    )
    return Derivation(title, tuple(steps), result=result)
