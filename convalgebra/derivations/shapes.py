"""Derivation of a layer's output size: the formula, the numbers substituted, the floor.

For each spatial axis of a forward convolution with input ``N``, kernel ``F``, padding ``P``
(before ``P_b``, after ``P_a``), stride ``S`` and dilation ``D``::

    O = floor((N + P_b + P_a - D(F - 1) - 1) / S) + 1

which is the course's ``(N - F + 2P)/S + 1`` for ``D = 1`` and symmetric padding. When ``S``
does not divide the numerator the stride does not tile the input: PyTorch floors, and the
derivation says which input positions no output reads. A transposed convolution inverts the
size map: ``O = (N - 1)S - P_b - P_a + D(F - 1) + output_padding + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConvAlgebraError, shown
from ..spec import ConvSpec
from .model import Derivation, Equation, Expr, Step
from .printing import number
from .words import sizes, spec_words

__all__ = ["derive_output_size", "floor_sides"]


def _params(spec: ConvSpec, axis: int) -> dict[str, int]:
    (before, after) = spec.padding[axis]
    return dict(
        n=spec.input_shape[1 + axis],
        k=spec.kernel_size[axis],
        s=spec.stride[axis],
        d=spec.dilation[axis],
        pb=before,
        pa=after,
        op=spec.output_padding[axis],
    )


def _numerator(p: dict[str, int]) -> tuple[str, str, str, int]:
    """(symbolic tex, substituted tex, substituted text, value) of the floor's numerator."""
    n, k, d, pb, pa = p["n"], p["k"], p["d"], p["pb"], p["pa"]
    pad_sym, pad_tex, pad_text = (
        ("2P", rf"2 \cdot {pb}", f"2*{pb}")
        if pb == pa
        else ("P_b + P_a", f"{pb} + {pa}", f"{pb} + {pa}")
    )
    if d == 1:
        return (
            f"N - F + {pad_sym}",
            f"{n} - {k} + {pad_tex}",
            f"{n} - {k} + {pad_text}",
            n - k + pb + pa,
        )
    return (
        f"N + {pad_sym} - D(F - 1) - 1",
        rf"{n} + {pad_tex} - {d} \cdot ({k} - 1) - 1",
        f"{n} + {pad_text} - {d}*({k} - 1) - 1",
        n + pb + pa - d * (k - 1) - 1,
    )


def floor_sides(n: int, k: int, s: int, d: int, pb: int, pa: int) -> list[Expr]:
    """The substituted sides of ``O = floor((N + P_b + P_a - D(F - 1) - 1)/S) + 1``: the
    numbers in the formula, then the quotient (when ``S > 1``); each carries its value.

    Examples
    --------
    >>> [e.text for e in floor_sides(224, 7, 2, 1, 3, 3)]
    ['floor((224 - 7 + 2*3)/2) + 1', 'floor(223/2) + 1']
    """
    import sympy

    _, tex, text, value = _numerator(dict(n=n, k=k, d=d, pb=pb, pa=pa))
    if s == 1:
        return [Expr(f"{tex} + 1", f"{text} + 1", sympy.Integer(value + 1))]
    quotient = sympy.Rational(value, s)
    return [
        Expr(
            rf"\left\lfloor \frac{{{tex}}}{{{s}}} \right\rfloor + 1",
            f"floor(({text})/{s}) + 1",
            sympy.floor(quotient) + 1,
        ),
        Expr(
            rf"\left\lfloor {sympy.latex(quotient)} \right\rfloor + 1",
            f"floor({quotient}) + 1",
            sympy.floor(quotient) + 1,
        )
        if value % s
        else Expr(f"{quotient} + 1", f"{quotient} + 1", quotient + 1),
    ]


def _forward_axis(spec: ConvSpec, axis: int) -> Step:
    p = _params(spec, axis)
    sym, tex, text, value = _numerator(p)
    s, out = p["s"], spec.output_shape[1 + axis]
    sides = floor_sides(p["n"], p["k"], s, p["d"], p["pb"], p["pa"])
    eqs = [Equation((Expr(f"O_{{{axis + 1}}}", f"O_{axis + 1}"), *sides, number(out)))]
    if p["pb"] or p["pa"]:
        padded = p["n"] + p["pb"] + p["pa"]
        eqs.insert(
            0,
            Equation(
                (
                    Expr(r"N + P_b + P_a", "N + P_b + P_a"),
                    Expr(
                        f"{p['n']} + {p['pb']} + {p['pa']}",
                        f"{p['n']} + {p['pb']} + {p['pa']}",
                        padded,
                    ),
                    number(padded),
                ),
                label="the padded input",
            ),
        )
    statement = (
        f"Axis {axis + 1}: $N = {p['n']}$, $F = {p['k']}$, $S = {s}$, "
        + (f"$P = {p['pb']}$" if p["pb"] == p["pa"] else f"$P_b = {p['pb']}$, $P_a = {p['pa']}$")
        + (f", $D = {p['d']}$" if p["d"] > 1 else "")
        + "."
    )
    why = f"The last window starts at most ${sym}$ positions after the first, in steps of $S$."
    if s > 1 and value % s:
        return Step(
            statement, tuple(eqs), why, "floor", (_not_tiling(spec, axis, tex, text, value, s),)
        )
    return Step(statement, tuple(eqs), why, "substitute")


def _not_tiling(spec: ConvSpec, axis: int, tex: str, text: str, value: int, s: int) -> Step:
    import sympy

    exact = sympy.Rational(value, s) + 1
    unread = spec.unread_inputs[axis]
    eq = Equation(
        (
            Expr(rf"\frac{{{tex}}}{{{s}}} + 1", f"({text})/{s} + 1", exact),
            Expr(sympy.latex(exact), str(exact), exact),
            Expr(f"{float(exact):.2f}", f"{float(exact):.2f}"),
        ),
        defines=False,
        relation=("=", "approx"),
    )
    where = ", ".join(str(i + 1) for i in unread) if unread else "none"
    return Step(
        f"The exact quotient is not an integer: the stride does not tile the input along axis {axis + 1}.",
        (eq,),
        f"PyTorch takes the floor; input positions never read by any output (1-based): {where}.",
        "not tiling",
    )


def _transposed_axis(spec: ConvSpec, axis: int) -> Step:
    import sympy

    p = _params(spec, axis)
    n, k, s, d, pb, pa, op = (p[x] for x in ("n", "k", "s", "d", "pb", "pa", "op"))
    value = (n - 1) * s - pb - pa + d * (k - 1) + op + 1
    tex = rf"({n} - 1) \cdot {s} - {pb} - {pa} + {d} \cdot ({k} - 1) + {op} + 1"
    text = f"({n} - 1)*{s} - {pb} - {pa} + {d}*({k} - 1) + {op} + 1"
    eq = Equation(
        (
            Expr(f"O_{{{axis + 1}}}", f"O_{axis + 1}"),
            Expr(tex, text, sympy.Integer(value)),
            number(spec.output_shape[1 + axis]),
        )
    )
    return Step(
        f"Axis {axis + 1}: $N = {n}$, $F = {k}$, $S = {s}$, $P_b = {pb}$, $P_a = {pa}$, $D = {d}$, "
        f"$P_o = {op}$.",
        (eq,),
        "A transposed convolution is the transpose of the forward convolution from the output size; "
        "the output padding picks one of the sizes that forward map sends to $N$.",
        "substitute",
    )


def _padding_step(spec: ConvSpec) -> Step | None:
    word = spec.padding_word
    if word not in ("same", "full"):
        return None
    rule = r"P = \frac{F - 1}{2}" if word == "same" else "P = F - 1"
    pads = "; ".join(
        f"axis {k + 1}: $P_b = {b}$, $P_a = {a}$" for k, (b, a) in enumerate(spec.padding)
    )
    odd = (
        " When $D(F - 1)$ is odd the extra position goes after the input (PyTorch's rule): "
        "$P_b = \\lfloor D(F - 1)/2 \\rfloor$, $P_a = \\lceil D(F - 1)/2 \\rceil$."
        if word == "same" and any(b != a for b, a in spec.padding)
        else ""
    )
    return Step(
        f"Padding '{word}' means ${rule}$ (with dilation, $D(F - 1)$ in place of $F - 1$), "
        f"here, before ($P_b$) and after ($P_a$) the input: {pads}.{odd}",
        justification=(
            "The output keeps the input size when the padding adds the $F - 1$ positions the "
            "kernel loses."
            if word == "same"
            else "Every position where the kernel overlaps the input at least once is an output."
        ),
        rule="definition",
    )


def _spec_steps(spec: ConvSpec) -> list[Step]:
    if spec.transposed:
        general = r"O = (N - 1)S - P_b - P_a + D(F - 1) + P_o + 1"
    elif all(d == 1 for d in spec.dilation) and all(b == a for b, a in spec.padding):
        general = r"O = \left\lfloor \frac{N - F + 2P}{S} \right\rfloor + 1"
    else:
        general = r"O = \left\lfloor \frac{N + P_b + P_a - D(F - 1) - 1}{S} \right\rfloor + 1"
    why = (
        "Each of the $N$ inputs writes a copy of the kernel (extent $D(F - 1) + 1$ with dilation $D$) "
        "$S$ positions after the previous one, so the copies span $(N - 1)S + D(F - 1) + 1$ positions; the "
        "padding $P_b$, $P_a$ is cropped from the two ends and the output padding $P_o$ added at the end."
        if spec.transposed
        else "Count the window positions: the first starts at the padded edge, each next one $S$ further, and the "
        "last must still fit inside the padded input."
    )
    steps = [Step(f"Along each spatial axis, ${general}$.", justification=why, rule="formula")]
    padding = _padding_step(spec)
    steps += [padding] if padding else []
    axis_step = _transposed_axis if spec.transposed else _forward_axis
    steps += [axis_step(spec, a) for a in range(spec.ndim)]
    shape = r" \times ".join(map(str, spec.output_shape[1:]))
    steps.append(
        Step(
            f"The output has {spec.out_channels} channel{'s' if spec.out_channels > 1 else ''} "
            f"(one per filter): shape ${spec.out_channels} \\times {shape}$ (channels first).",
            rule="result",
        )
    )
    return steps


def derive_output_size(spec: ConvSpec | Sequence[ConvSpec]) -> Derivation:
    """The output size of a spec (or of several specs, compared), step by step.

    Examples
    --------
    >>> d = derive_output_size(ConvSpec((1, 7), 1, 3, stride=3))
    >>> print(d.to_text())  # doctest: +ELLIPSIS
    Output size of Conv1d, kernel 3, stride 3 on 1×7
    ...
        O_1 = floor((7 - 3 + 2*0)/3) + 1 = floor(4/3) + 1 = 2
    ...
    """
    if isinstance(spec, ConvSpec):
        return Derivation(
            f"Output size of {spec_words(spec)}", tuple(_spec_steps(spec)), result=spec.output_shape
        )
    if not isinstance(spec, (list, tuple)):
        raise TypeError(
            f"output_size needs a ConvSpec or a non-empty list of them, got "
            f"{type(spec).__name__} {shown(spec)}"
        )
    specs = list(spec)
    if not specs or not all(isinstance(s, ConvSpec) for s in specs):
        raise ConvAlgebraError(
            f"output_size needs a ConvSpec or a non-empty list of them, got {shown(spec)}"
        )
    steps = [
        Step(
            f"Input {sizes(s.input_shape)}: {spec_words(s)}.",
            rule="case",
            substeps=tuple(_spec_steps(s)),
        )
        for s in specs
    ]
    steps.append(_compare(specs))
    return Derivation("Output sizes compared", tuple(steps), result=[s.output_shape for s in specs])


def _compare(specs: list[ConvSpec]) -> Step:
    shapes = [s.output_shape for s in specs]
    if len(set(shapes)) == len(shapes):
        return Step("The output shapes differ: " + ", ".join(map(str, shapes)) + ".", rule="result")
    from ..transpose import colliding_input_sizes

    lines = [str(a) for s in specs for a in colliding_input_sizes(s).axes if a.collides]
    return Step(
        "Different inputs give the same output shape "
        + f"{shapes[0]}"
        + ": "
        + "; ".join(dict.fromkeys(lines))
        + ".",
        justification="The floor forgets the remainder, so a transposed convolution (the backward map) must "
        "be told the original size: that is what PyTorch's output_padding selects.",
        rule="result",
    )
