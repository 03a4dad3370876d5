"""Forward and backward derivations: each output, kernel gradient and input gradient written out.

The forward equations are the library's :func:`~convalgebra.symbolic.symbolic_output`; the
backward equations are :func:`~convalgebra.symbolic.backward.symbolic_backward`'s. This
module only orders the terms as a textbook does (``w_{1} a_{1} + w_{2} a_{2}``, gradients in
output order), adds the general formulas of the Deep Learning book (eq. 9.7/9.8, 9.11, 9.13)
with the layer's strides substituted, and truncates long lists with a stated rule.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from .. import budget
from ..budget import DEFAULT_MAX_TERMS, require_symbolic
from ..errors import ConvAlgebraError
from ..spec import ConvSpec
from . import books
from .general import layer_formulas
from .indexing import index_steps
from .matrices import exact_array, matrix_grid, pick, truncation_rule
from .model import Derivation, Equation, Expr, Grid, Step
from .oracle import conv_meaning
from .printing import grad_symbol, number, sum_of_products, symbol_expr
from .words import spec_words

__all__ = ["derive_forward", "derive_backward", "ordered_terms", "ordered_factors"]

_ROLES = ("g", "w", "a", "b")  # sort priority of a term's factors (upstream gradient first)
_SHOW = ("w", "a", "b", "g")  # display order of a term's factors


def _roles(spec: ConvSpec) -> dict[Any, tuple[str, int]]:
    """Symbol -> (role, flat index) for the layer's w, a, b, dL/dz symbols."""
    from ..symbolic import input_symbols, output_symbols, symbol_array, weight_symbols

    table: dict[Any, tuple[str, int]] = {}
    arrays = [
        ("w", weight_symbols(spec)),
        ("a", input_symbols(spec)),
        ("b", symbol_array("b", (spec.out_channels,))),
    ]
    arrays.append(("g", np.array([_grad(z) for z in output_symbols(spec).ravel()], dtype=object)))
    for role, array in arrays:
        table.update({s: (role, k) for k, s in enumerate(array.ravel())})
    return table


def _grad(symbol: Any):
    try:
        from ..symbolic.backward import grad_symbol as library_grad
    except ImportError:
        return grad_symbol(symbol)
    return library_grad(symbol)


def ordered_terms(expr: Any, roles: dict[Any, tuple[str, int]]) -> list[tuple[Any, ...]]:
    """The terms of ``expr`` as factor tuples, in textbook order.

    Terms are sorted by the index of their ``dL/dz`` factor, then weight, input, bias; factors
    are shown coefficient first, then weight, input, bias, gradient.

    Examples
    --------
    >>> import sympy
    >>> spec = ConvSpec((1, 3), 1, 2)
    >>> a1, a2, w1, w2 = sympy.symbols("a1 a2 w1 w2")
    >>> ordered_terms(a2 * w2 + a1 * w1, _roles(spec))
    [(w1, a1), (w2, a2)]
    """
    import sympy

    out = []
    for term in sympy.Add.make_args(sympy.expand(expr)):
        coefficient, factors = term.as_coeff_mul()
        by_role = {roles.get(f, ("?", 0))[0]: f for f in factors}
        key: tuple[float, ...] = tuple(roles[by_role[r]][1] if r in by_role else -1 for r in _ROLES)
        if set(by_role) == {"b"}:
            key = (math.inf,) + key
        shown = [by_role[r] for r in _SHOW if r in by_role] + [f for f in factors if f not in roles]
        out.append((key, ((coefficient,) if coefficient != 1 else ()) + tuple(shown)))
    return [factors for _, factors in sorted(out, key=lambda kv: kv[0])]


def ordered_factors(pairs: tuple, roles: dict[Any, tuple[str, int]]) -> list[tuple[Any, ...]]:
    """Terms given as factor tuples (``(w, a)``, ``(1, b)``), merged and in textbook order.

    The same order as :func:`ordered_terms`, without expanding a sympy sum: linear in the
    number of terms.

    Examples
    --------
    >>> import sympy
    >>> a1, a2, w1, w2 = sympy.symbols("a1 a2 w1 w2")
    >>> ordered_factors(((w2, a2), (w1, a1), (w1, a1)), _roles(ConvSpec((1, 3), 1, 2)))
    [(2, w1, a1), (w2, a2)]
    """
    import sympy

    merged: dict[tuple, list] = {}
    for term in pairs:
        symbols = [f for f in term if f in roles]
        coefficient = sympy.Mul(*[f for f in term if f not in roles])
        key = tuple(sorted(symbols, key=str))
        entry = merged.setdefault(key, [0, symbols])
        entry[0] += coefficient
    out = []
    for coefficient, symbols in merged.values():
        if coefficient == 0:
            continue
        by_role = {roles[f][0]: f for f in symbols}
        key = tuple(roles[by_role[r]][1] if r in by_role else -1 for r in _ROLES)
        if set(by_role) == {"b"}:
            key = (math.inf,) + key
        shown = tuple(by_role[r] for r in _SHOW if r in by_role)
        out.append((key, ((coefficient,) if coefficient != 1 else ()) + shown))
    return [factors for _, factors in sorted(out, key=lambda kv: kv[0])]


def _sum(pairs: tuple, roles: dict, max_terms: int) -> Expr:
    terms = ordered_factors(pairs, roles)
    if len(terms) <= max_terms:
        return sum_of_products(terms)
    head = sum_of_products(terms[: max_terms - 2])
    tail = sum_of_products(terms[-1:])
    return Expr(rf"{head.tex} + \cdots + {tail.tex}", f"{head.text} + … + {tail.text}")


def _equations(
    lhs: list, rhs: list, roles: dict, max_shown: int, max_terms: int
) -> tuple[Equation, ...]:
    eqs = []
    for k in pick(len(lhs), max_shown):
        if k is None:
            eqs.append(Equation((Expr(r"\vdots", "⋮"),)))
        else:
            eqs.append(Equation((symbol_expr(lhs[k]), _sum(rhs[k], roles, max_terms))))
    return tuple(eqs)


def _rule(n: int, max_shown: int, max_terms: int, what: str, longest: int = 0) -> str:
    """The truncation rule, stated only when something was elided."""
    parts = []
    if n > max_shown:
        parts.append(
            f"of the {n} {what} the first {max_shown - 1} and the last are shown (max_outputs={max_shown})"
        )
    if longest > max_terms:
        parts.append(
            f"sums of more than {max_terms} products show the first {max_terms - 2}, an ellipsis and "
            f"the last (max_terms={max_terms})"
        )
    return ("Truncated: " + "; ".join(parts) + ".") if parts else ""


def _longest(pairs: list) -> int:
    return max((len(p) for p in pairs), default=0)


def _forward_values(spec: ConvSpec, bias: bool, bw: Any = None) -> tuple[list, list]:
    """Output symbols and, per output, its terms as factor tuples (read off the index table)."""
    from ..symbolic.backward import symbolic_backward

    bw = symbolic_backward(spec, bias=bias) if bw is None else bw
    z = bw.output.ravel().tolist()
    return z, [bw.factors(s) for s in z]


def _forward_step(
    spec: ConvSpec, bias: bool, max_outputs: int, max_terms: int, bw: Any = None
) -> Step:
    z, values = _forward_values(spec, bias, bw)
    roles = _roles(spec)
    return Step(
        f"Written out for this layer, each of the {len(z)} outputs is a sum of products"
        + (" plus its channel's bias" if bias else "")
        + ":",
        _equations(z, values, roles, max_outputs, max_terms),
        _rule(len(z), max_outputs, max_terms, "outputs", _longest(values)),
        "instantiate",
    )


def _numbers_step(spec: ConvSpec, weight, x, bias_values, max_outputs: int, max_terms: int) -> Step:
    from ..operators import conv_matrix
    from ..symbolic import input_symbols, symbol_array, weight_symbols

    bias = bias_values is not None
    w, a = exact_array(weight), exact_array(x)
    subs = list(zip(weight_symbols(spec).ravel(), w.ravel())) + list(
        zip(input_symbols(spec).ravel(), a.ravel())
    )
    if bias:
        subs += list(zip(symbol_array("b", (spec.out_channels,)), exact_array(bias_values).ravel()))
    numeric = (
        conv_matrix(spec, np.asarray(weight, dtype=float)) @ np.asarray(x, dtype=float).ravel()
    )
    per = math.prod(spec.output_shape[1:])
    if bias:
        numeric = numeric + np.repeat(np.asarray(bias_values, dtype=float), per)
    z, values = _forward_values(spec, bias)
    roles, table = _roles(spec), dict(subs)
    eqs = []
    for k in pick(len(z), max_outputs):
        if k is None:
            eqs.append(Equation((Expr(r"\vdots", "⋮"),)))
            continue
        terms = ordered_factors(values[k], roles)
        sides = [symbol_expr(z[k]), _sum(values[k], roles, max_terms)]
        if len(terms) <= max_terms:
            sides.append(sum_of_products([tuple(table.get(f, f) for f in t) for t in terms]))
        sides.append(number(_exact_number(numeric[k])))
        eqs.append(Equation(tuple(sides), subs=tuple(subs)))
    eqs += _output_grids(spec, numeric)
    return Step(
        "With the given numbers:",
        tuple(eqs),
        "The last column is the layer's numeric output ($M a$ with the numeric matrix"
        + (" plus the bias" if bias else "")
        + "); the products in between must add up to it.",
        "evaluate",
    )


def _given_step(spec: ConvSpec, weight, x, bias_values) -> Step:
    """The numbers plugged in: each input channel, each filter slice, the biases."""
    from ..render.grids import array_grid

    eqs, rules = [], []
    x = np.asarray(x).reshape(spec.in_channels, -1, spec.input_shape[-1])
    w = np.asarray(weight).reshape(-1, *spec.weight_shape[-spec.ndim :])
    for name, arrays in (("a", x), ("w", w)):
        for k, array in enumerate(arrays):
            grid, rule = array_grid(array.reshape(-1, array.shape[-1]))
            label = (name, name) if len(arrays) == 1 else _slice_name(spec, name, k)
            eqs.append(Equation((Expr(*label), grid)))
            rules += [rule] if rule else []
    if bias_values is not None:
        grid, _ = array_grid(np.asarray(bias_values).reshape(1, -1))
        eqs.append(Equation((Expr("b", "b"), grid)))
    return Step(
        "The numbers: input channels, kernel slices (output channel, input channel)"
        + (" and biases" if bias_values is not None else "")
        + ":",
        tuple(eqs),
        " ".join(dict.fromkeys(rules)),
        "given",
    )


def _slice_name(spec: ConvSpec, name: str, k: int) -> tuple[str, str]:
    if name == "a":
        return f"a_{{{k + 1}}}", f"a_{k + 1}"
    per = spec.weight_shape[-spec.ndim - 1]
    o, c = divmod(k, per)
    return f"w_{{{o + 1},{c + 1}}}", f"w_{o + 1},{c + 1}"


def _exact_number(value: float):
    import sympy

    return sympy.Integer(int(round(value))) if float(value).is_integer() else sympy.nsimplify(value)


def _output_grids(spec: ConvSpec, numeric: np.ndarray) -> list[Equation]:
    """The numeric output as matrices: ``Z`` for one channel, ``Z_1, Z_2, …`` per output channel."""
    import sympy

    channels = numeric.reshape(spec.out_channels, -1, spec.output_shape[-1])
    eqs = []
    for c, matrix in enumerate(channels):
        cells = tuple(tuple(number(_exact_number(v)) for v in row) for row in matrix)
        value = sympy.Matrix([[cell.value for cell in row] for row in cells])
        name = ("Z", "Z") if spec.out_channels == 1 else (f"Z_{{{c + 1}}}", f"Z_{c + 1}")
        shape = matrix.shape
        grid = Grid(cells, value, rows=tuple(range(shape[0])), cols=tuple(range(shape[1])))
        eqs.append(Equation((Expr(*name), grid)))
    return eqs


def derive_forward(
    spec: ConvSpec,
    *,
    weight: Any = None,
    x: Any = None,
    bias: Any = None,
    max_outputs: int = 16,
    max_terms: int = 30,
    max_products: int = DEFAULT_MAX_TERMS,
) -> Derivation:
    """The forward equations of a layer: eq. 9.7/9.8 for the spec, then every output.

    Parameters
    ----------
    spec : ConvSpec
    weight, x : array_like, optional
        Numbers for the kernel and the input; when both are given the outputs are evaluated.
    bias : array_like, optional
        Numbers for the bias (with ``weight`` and ``x``); symbols ``b1, …`` otherwise when
        ``spec.bias``.
    max_outputs, max_terms : int
        Display limits (see the truncation rule stated in the derivation).
    max_products : int, default 50,000
        Refuse, before any work, layers with more products or symbols than this.

    Examples
    --------
    >>> d = derive_forward(ConvSpec((1, 3, 3), 1, 2, bias=False),
    ...                    weight=[[[[0, 1], [2, 3]]]], x=[[[0, 1, 2], [3, 4, 5], [6, 7, 8]]])
    >>> print([line.strip() for line in d.to_text().splitlines() if line.strip().startswith("z1")][-1])
    z1 = w1*a1 + w2*a2 + w3*a4 + w4*a5 = 0*0 + 1*1 + 2*3 + 3*4 = 19
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"forward derivations need a ConvSpec, got {type(spec).__name__}")
    require_symbolic(spec, "the forward derivation", max_products, option="max_products")
    if (weight is None) != (x is None):
        raise ConvAlgebraError(
            "give both weight and x to evaluate the forward equations, or neither"
        )
    formulas = layer_formulas(spec)
    steps = index_steps(spec, formulas)
    book = books.forward_step(spec, formulas)
    steps += [book] if book else []
    with_bias = spec.bias if bias is None else True
    if weight is not None and spec.bias and bias is None:
        with_bias = False
    if weight is None:
        steps.append(_forward_step(spec, with_bias, max_outputs, max_terms))
    else:
        from ..operators import check_input, check_weight

        check_weight(spec, weight), check_input(spec, x)
        if bias is not None and not spec.bias:
            raise ConvAlgebraError(
                f"bias values were given but the spec has bias=False: {spec.describe()}"
            )
        steps.append(_given_step(spec, weight, x, bias))
        steps.append(_numbers_step(spec, weight, x, bias, max_outputs, max_terms))
    given_bias = None if weight is None or bias is not None else budget.zeros(spec.out_channels)
    meaning = partial(conv_meaning, spec, weight, x, bias if bias is not None else given_bias)
    return Derivation(f"Forward equations of {spec_words(spec)}", tuple(steps), meaning=meaning)


def _backward_values(spec: ConvSpec, bias: bool, limit: int):
    from ..symbolic.backward import symbolic_backward

    return symbolic_backward(spec, bias=bias, max_terms=limit)


def derive_backward(
    spec: ConvSpec,
    *,
    max_outputs: int = 32,
    max_terms: int = 30,
    max_rows: int = 32,
    max_cols: int = 12,
    max_products: int = 20_000,
    check_general: bool = True,
) -> Derivation:
    """Back-propagation through a layer: kernel gradient (eq. 9.11), input gradient (eq. 9.13), ``Mᵀ``.

    Parameters
    ----------
    spec : ConvSpec
    max_outputs, max_terms, max_rows, max_cols : int
        Display limits (the truncation rule is stated in the derivation).
    max_products : int
        Refuse layers with more products than this (symbolic equations are for small layers).
    check_general : bool
        Also instantiate the general formulas at sample positions and state that they agree
        with the equations read off the layer's table (see :mod:`convalgebra.derivations.general`).

    Examples
    --------
    >>> d = derive_backward(ConvSpec((1, 5, 5), 1, 3, stride=2, bias=False))
    >>> [l.strip() for l in d.to_text().splitlines() if l.strip().startswith("dL/da13 =")]
    ['dL/da13 = w9*dL/dz1 + w7*dL/dz2 + w3*dL/dz3 + w1*dL/dz4']
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"backward derivations need a ConvSpec, got {type(spec).__name__}")
    require_symbolic(spec, "the backward derivation", max_products, option="max_products")
    bw = _backward_values(spec, spec.bias, max_products)
    roles = _roles(spec)
    formulas = layer_formulas(spec)
    steps = index_steps(spec, formulas)
    book = books.forward_step(spec, formulas)
    steps += [book] if book else []
    steps.append(_forward_step(spec, spec.bias, max_outputs, max_terms, bw))
    steps.append(
        Step(
            "The loss $L$ reaches the layer as the upstream gradient $\\partial L / \\partial z_j$, one per output; "
            "by the chain rule every parameter and input collects $\\partial z_j / \\partial(\\cdot)$ times it, "
            "summed over the outputs it feeds.",
            rule="chain rule",
        )
    )
    for title, book in (
        ("kernel", books.kernel_gradient_step(spec, formulas)),
        ("bias", None),
        ("input", books.input_gradient_step(spec, formulas)),
    ):
        eqs = bw.left_sides({"kernel": "weight"}.get(title, title))
        if not eqs.size:
            continue
        steps += [book] if book else []
        lhs = list(bw.left_sides({"kernel": "weight"}.get(title, title)).ravel())
        rhs = [bw.factors(s) for s in lhs]
        steps.append(
            Step(
                f"Instantiated, the {title} gradient:",
                _equations(lhs, rhs, roles, max_outputs, max_terms),
                _rule(len(eqs), max_outputs, max_terms, f"{title} gradients", _longest(rhs)),
                "instantiate",
            )
        )
    steps.append(_transpose_step(spec, max_rows, max_cols))
    check = (
        books.general_check(formulas, ("layer", "forward", "kernel", "padded", "input"))
        if check_general
        else None
    )
    steps += [check] if check else []
    return Derivation(
        f"Back-propagation through {spec_words(spec)}",
        tuple(steps),
        result=bw,
        meaning=partial(conv_meaning, spec),
    )


def _transpose_step(spec: ConvSpec, max_rows: int, max_cols: int) -> Step:
    forward = matrix_grid(spec, max_rows, max_cols)
    n_rows, n_cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    cells = tuple(zip(*forward.cells))
    flip = {"h": "v", "v": "h", "d": "d"}
    cells = tuple(tuple(flip.get(c, c) if isinstance(c, str) else c for c in row) for row in cells)
    value = forward.value.T if forward.value is not None else None
    return Step(
        "In matrix form $\\partial L / \\partial a = M^{\\top} G$ and $\\partial L / \\partial w = J(a)^{\\top} G$, "
        "where $G = \\partial L / \\partial z$ and $J(a)$ is the im2col matrix ($z = J(a)\\, w$):",
        (
            Equation(
                (
                    Expr(r"M^{\top}", "M^T"),
                    Grid(cells, value, rows=forward.cols, cols=forward.rows),
                ),
            ),
        ),
        (
            "Row $i$ of $M^{\\top}$ lists the weights through which input $a_i$ reaches each output: exactly the "
            "coefficients of the input-gradient sums above. "
            + truncation_rule(n_cols, n_rows, max_cols, max_rows)
        ).strip(),
        "transpose",
    )
