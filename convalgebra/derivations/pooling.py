"""Max and average pooling on a given input: windows, forward values and the routing of gradients.

Max pooling is not linear: at a given input it is a selection matrix ``S`` (one 1 per row, at
the first maximum of the window, PyTorch's tie rule), so ``y = S x`` and ``∂L/∂x = Sᵀ g``: each
input receives the upstream gradient of every output that selected it, and nothing otherwise.
Average pooling is the fixed matrix ``A`` (``1/|window|`` per tap), ``∂L/∂x = Aᵀ g``. Both
matrices come from :mod:`convalgebra.variants`; inputs and outputs are numbered from 1 in C
order (``x1, x2, …``, ``y1, y2, …``).
"""

from __future__ import annotations

from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp

from .. import budget
from ..errors import ConvAlgebraError
from ..render.grids import array_grid, pick
from ..spec import normalize_tuple, pool_stride
from .model import Derivation, Equation, Expr, Step
from .oracle import pooling_meaning
from .printing import grad_symbol, number, sum_of_products, symbol_expr
from .words import sizes

__all__ = ["derive_pooling"]


def _layer(obj: Any) -> tuple[str, Any]:
    from ..network.layers import AvgPool, MaxPool

    if isinstance(obj, MaxPool):
        return "max", obj
    if isinstance(obj, AvgPool):
        return "average", obj
    raise TypeError(
        f"pooling derivations need a MaxPool or AvgPool layer, got {type(obj).__name__}"
    )


def _windows(layer: Any, x: np.ndarray) -> sp.csr_array:
    """The windows' 0/1 membership matrix (output row, input column), dilation included.

    Read off the triple table of the depthwise layer whose zero-padded windows are the
    pooling windows (floor mode: no window starts past the padded input).
    """
    from ..connectivity import spatial_table
    from ..spec import ConvSpec

    n, c = x.ndim - 1, x.shape[0]
    kernel = normalize_tuple(layer.kernel_size, n, "kernel_size")
    spec = ConvSpec(
        x.shape,
        c,
        kernel,
        stride=pool_stride(kernel, layer.stride),
        padding=normalize_tuple(layer.padding, n, "padding", minimum=0),
        dilation=normalize_tuple(layer.dilation, n, "dilation"),
        groups=c,
        bias=False,
    )
    table = spatial_table(spec)  # (outputs per channel, taps): flat input or -1 (padding)
    p_in, p_out = int(np.prod(x.shape[1:])), table.shape[0]
    rows = np.repeat(np.arange(c * p_out), table.shape[1])
    cols = (table[None] + (np.arange(c) * p_in)[:, None, None]).reshape(-1)
    keep = np.repeat(table[None] >= 0, c, axis=0).reshape(-1)
    data = budget.ones(int(keep.sum()))
    return sp.csr_array((data, (rows[keep], cols[keep])), shape=(c * p_out, c * p_in))


def _matrices(kind: str, layer: Any, x: np.ndarray):
    """(the matrix pooling applies at ``x``, the windows' 0/1 membership matrix)."""
    from ..variants import avg_pool_matrix, max_pool_selection

    if layer.ceil_mode:
        raise ConvAlgebraError("pooling derivations follow floor mode; got ceil_mode=True")
    stride = layer.stride  # None: the kernel size, as the pooling functions take it
    windows = _windows(layer, x)
    if kind == "max":
        return max_pool_selection(
            x, layer.kernel_size, stride, layer.padding, layer.dilation
        ), windows
    return avg_pool_matrix(
        x.shape, layer.kernel_size, stride, layer.padding, count_include_pad=layer.count_include_pad
    ), windows


def _symbols(prefix: str, n: int) -> list:
    import sympy

    return [sympy.Symbol(f"{prefix}{i + 1}") for i in range(n)]


def _exact_product(matrix: Any, x: np.ndarray) -> np.ndarray:
    """``matrix @ x`` in exact rationals: a pooling matrix holds 1/count, x binary floats."""
    import sympy

    m = sp.csr_array(matrix)
    coeffs = [Fraction(float(v)).limit_denominator(1 << 20) for v in m.data.tolist()]
    xs = [Fraction(float(v)).limit_denominator(1 << 20) for v in x.ravel().tolist()]
    rows = []
    for r in range(m.shape[0]):  # display sizes only: a derivation prints every output
        lo, hi = int(m.indptr[r]), int(m.indptr[r + 1])
        total = sum((coeffs[i] * xs[int(m.indices[i])] for i in range(lo, hi)), Fraction(0))
        rows.append(sympy.Rational(total.numerator, total.denominator))
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def _exact(v: float):
    """A float as the short rational it stands for (1/9, 0.3 = 3/10), so sums stay exact."""
    import sympy

    exact = Fraction(float(v)).limit_denominator(1 << 20)
    return sympy.Rational(exact.numerator, exact.denominator)


def _forward_equations(
    kind: str, matrix, windows, x: np.ndarray, max_outputs: int
) -> tuple[Equation, ...]:
    import sympy

    xs, flat = _symbols("x", x.size), x.ravel()
    eqs = []
    for j in pick(matrix.shape[0], max_outputs):
        if j is None:
            eqs.append(Equation((Expr(r"\vdots", "⋮"),)))
            continue
        cols = windows.indices[windows.indptr[j] : windows.indptr[j + 1]]
        vals = [_exact(flat[i]) for i in sorted(cols)]
        y = Expr(f"y_{{{j + 1}}}", f"y{j + 1}")
        names = ", ".join(f"x_{{{i + 1}}}" for i in sorted(cols))
        text_names = ", ".join(f"x{i + 1}" for i in sorted(cols))
        if kind == "max":
            value = sympy.Max(*vals)
            shown = ", ".join(str(v) for v in vals)
            sides = (
                Expr(
                    rf"\max({names})",
                    f"Max({text_names})",
                    sympy.Max(*(xs[i] for i in sorted(cols))),
                ),
                Expr(rf"\max({shown})", f"Max({shown})", value),
            )
        else:
            lo, hi = matrix.indptr[j], matrix.indptr[j + 1]
            coeff = {
                int(i): _exact(v)
                for i, v in zip(matrix.indices[lo:hi], matrix.data[lo:hi], strict=True)
            }
            value = sum(coeff[i] * _exact(flat[i]) for i in coeff)
            sides = (
                sum_of_products([(coeff[i], xs[i]) for i in sorted(coeff)]),
                sum_of_products([(coeff[i], _exact(flat[i])) for i in sorted(coeff)]),
            )
        subs = tuple((xs[i], _exact(flat[i])) for i in sorted(cols))
        eqs.append(Equation((y, *sides, number(value)), subs=subs))
    return tuple(eqs)


def _backward_equations(matrix, max_inputs: int) -> tuple[Equation, ...]:
    import sympy

    g = [grad_symbol(y) for y in _symbols("y", matrix.shape[0])]
    xs = _symbols("x", matrix.shape[1])
    cols = matrix.tocsc()
    eqs = []
    for i in pick(matrix.shape[1], max_inputs):
        if i is None:
            eqs.append(Equation((Expr(r"\vdots", "⋮"),)))
            continue
        rows, data = (
            cols.indices[cols.indptr[i] : cols.indptr[i + 1]],
            cols.data[cols.indptr[i] : cols.indptr[i + 1]],
        )
        terms = [
            ((_exact(v), g[int(r)]) if _exact(v) != 1 else (g[int(r)],))
            for r, v in sorted(zip(rows.tolist(), data.tolist(), strict=True))
        ]
        lhs = grad_symbol(xs[i])
        value = sympy.Add(*[sympy.Mul(*t) for t in terms])
        eqs.append(
            Equation((symbol_expr(lhs), sum_of_products(terms, value) if terms else number(0)))
        )
    return tuple(eqs)


def _padding_note(kind: str, layer: Any) -> str:
    if not layer.padding:
        return ""
    if kind == "max":
        return "Padding never wins a maximum: a window reads only its inputs."
    if layer.count_include_pad:
        return (
            "A window over the padding still divides by its full size, as PyTorch does by default."
        )
    return (
        "A window over the padding divides by the number of inputs it holds (padding not counted)."
    )


def derive_pooling(
    layer: Any, *, x: Any, max_outputs: int = 16, max_inputs: int = 32
) -> Derivation:
    """Max or average pooling of ``x``: windows, forward values, and where the gradients go.

    Parameters
    ----------
    layer : MaxPool or AvgPool
        The pooling layer (:mod:`convalgebra.network.layers`); floor mode.
    x : array_like
        The input, ``(C, *spatial)``.
    max_outputs, max_inputs : int
        Display limits for the forward and the backward equations.

    Returns
    -------
    Derivation
        ``result`` is the matrix pooling applies at ``x`` (scipy sparse): ``y = result @ x``,
        ``∂L/∂x = result.T @ g``.

    Examples
    --------
    >>> from convalgebra.network.layers import MaxPool
    >>> d = derive_pooling(MaxPool(2), x=[[3, 1, 2, 5]])
    >>> [l.strip() for l in d.to_text().splitlines() if l.strip().startswith(("y1", "dL/dx4"))]
    ['y1 = Max(x1, x2) = Max(3, 1) = 3', 'dL/dx4 = dL/dy2']
    """
    kind, layer = _layer(layer)
    x = np.asarray(x)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise ConvAlgebraError(
            f"x must be a numeric array of shape (C, *spatial), got shape {x.shape}"
        )
    matrix, windows = _matrices(kind, layer, x.astype(float))
    out_shape = layer.facts([x.shape]).shape
    x_grid, x_rule = array_grid(x.reshape(-1, x.shape[-1]))
    y_values = _exact_product(matrix, x).reshape(out_shape)
    y_grid, y_rule = array_grid(y_values.reshape(-1, out_shape[-1]))
    strides = pool_stride(
        normalize_tuple(layer.kernel_size, x.ndim - 1, "kernel_size"), layer.stride
    )
    stride = strides[0] if len(set(strides)) == 1 else strides
    rule = (
        "the first maximum of its window (PyTorch's rule for ties)"
        if kind == "max"
        else "the mean of its window"
        + ("" if getattr(layer, "count_include_pad", True) else " (padding not counted)")
    )
    steps = [
        Step(
            f"{kind.capitalize()} pooling with kernel {layer.kernel_size}, stride {stride}, padding {layer.padding}"
            + (f", dilation {layer.dilation}" if layer.dilation != 1 else "")
            + " "
            f"on the {sizes(x.shape)} input (channels pooled apart; inputs $x_1, x_2, \\ldots$ and outputs "
            "$y_1, y_2, \\ldots$ numbered from 1, row-major):",
            (Equation((Expr("x", "x"), x_grid)),),
            x_rule,
            "given",
        ),
        Step(
            f"Each output is {rule}:",
            _forward_equations(kind, matrix, windows, x, max_outputs),
            _padding_note(kind, layer),
            "forward",
        ),
        Step("The output:", (Equation((Expr("y", "y"), y_grid)),), y_rule, "result"),
        Step(
            "Backward: with $g_j = \\partial L / \\partial y_j$, each input collects "
            + (
                "the gradient of every output that selected it, and $0$ if none did:"
                if kind == "max"
                else "$1/|W_j|$ of the gradient of every window $W_j$ that holds it:"
            ),
            _backward_equations(matrix, max_inputs),
            (
                "Max pooling is the selection $y = S x$ at this input, so $\\partial L / \\partial x = S^{\\top} g$; "
                "another input may select other positions."
                if kind == "max"
                else "Average pooling is the fixed linear map $y = A x$, so $\\partial L / \\partial x = A^{\\top} g$."
            ),
            "backward",
        ),
    ]
    title = f"{kind.capitalize()} pooling of a {sizes(x.shape)} input, forward and backward"
    return Derivation(
        title, tuple(steps), result=matrix, meaning=partial(pooling_meaning, layer, x)
    )
