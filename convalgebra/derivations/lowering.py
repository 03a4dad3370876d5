"""A convolution lowered to one matrix product (im2col / GEMM).

im2col writes, for every output position ``p``, the inputs under the kernel's taps as row
``p`` of the patch matrix ``X`` (``0`` where a tap reads zero padding); the layer is then
``Z = W Xᵀ`` with ``W`` the filters as rows (``C_out × C_in k``). Both matrices are read off the
layer's triple table, and the product is checked equal to the layer's own output ``M a``.

Notes
-----
With the triple table ``T = {(o, i, w)}``, ``X[p, w] = a[i]`` for the triples of output
channel 1 at position ``p``; ``J(a) = I_{C_out} ⊗ X`` is the kernel Jacobian (``z = J(a) w``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from .. import budget
from ..budget import DEFAULT_MAX_TERMS, dense_pairs, require_terms, symbol_count
from ..errors import ConvAlgebraError
from ..render.grids import array_grid, pick
from ..spec import ConvSpec
from ..transpose import direct_equivalent, require_direct_form
from .general import ints
from .model import Derivation, Equation, Expr, Grid, Step
from .oracle import conv_meaning, im2col_meaning
from .printing import number, sum_of_products
from .words import sizes, spec_words

__all__ = [
    "derive_im2col",
    "patch_matrix",
    "derive_transposed",
    "direct_equivalent",
    "zero_inserted",
    "direct_weight",
]


def _plain(spec: ConvSpec) -> None:
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"im2col derivations need a ConvSpec, got {type(spec).__name__}")
    if (
        spec.transposed
        or spec.groups != 1
        or spec.tile is not None
        or spec.channel_table is not None
    ):
        raise ConvAlgebraError(
            "im2col lowers a forward convolution with one group and a shared kernel (groups lower group by "
            f"group; a transposed layer lowers its forward convolution), got {spec.describe()}"
        )


def patch_matrix(spec: ConvSpec, x: Any = None) -> np.ndarray:
    """The im2col matrix ``X`` (output positions × (input channel, tap)) as an object array.

    Entries are the input symbols ``a…`` (or the numbers ``x``), ``0`` where a tap reads padding;
    duplicate reads (reflect padding) add up.

    Examples
    --------
    >>> patch_matrix(ConvSpec((1, 4), 1, 2)).tolist()
    [[a1, a2], [a2, a3], [a3, a4]]
    """
    from ..connectivity import triples
    from ..symbolic import input_symbols

    _plain(spec)
    a = (input_symbols(spec) if x is None else np.asarray(x, dtype=object)).ravel()
    per = math.prod(spec.output_shape[1:])
    t = triples(spec, slice(0, per))  # output channel 1: its rows of the table
    out = budget.zeros((per, math.prod(spec.weight_shape[1:])), dtype=object)
    for p, i, w in zip(
        t.out_index.tolist(), t.in_index.tolist(), t.weight_index.tolist(), strict=True
    ):
        out[p, w] = out[p, w] + a[i]
    return out


def _product_grid(
    w: np.ndarray, patches: np.ndarray, max_rows: int, max_cols: int
) -> tuple[Grid, Any]:
    """``W Xᵀ`` entry by entry (each a sum of products), and its value as a sympy matrix."""
    import sympy

    rows, cols = pick(w.shape[0], max_rows), pick(patches.shape[0], max_cols)
    cells = []
    for r in rows:
        row: list[Any] = []
        for c in cols:
            if r is None or c is None:
                row.append("d" if r is None and c is None else ("v" if r is None else "h"))
                continue
            terms = [(wi, xi) for wi, xi in zip(w[r], patches[c], strict=True) if xi != 0]
            row.append(sum_of_products(terms) if terms else number(0))
        cells.append(tuple(row))
    full = None not in rows and None not in cols
    value = sympy.Matrix(w.tolist()) * sympy.Matrix(patches.tolist()).T if full else None
    return Grid(tuple(cells), value, rows=tuple(rows), cols=tuple(cols)), value


def _filters(n: int) -> str:
    return "filter is" if n == 1 else f"{n} filters are"


def _same_as_layer(product: Any, direct: Any) -> int:
    """``W Xᵀ`` against the layer's output ``M a`` entry by entry; how many entries were compared."""
    import sympy

    if product is None:
        return 0
    if product.shape != direct.shape or any(
        sympy.expand(p - d) != 0 for p, d in zip(product, direct, strict=True)
    ):
        raise AssertionError("W X^T differs from the layer's output M a")
    return len(product)


def derive_im2col(
    spec: ConvSpec,
    *,
    x: Any = None,
    max_rows: int = 32,
    max_cols: int = 12,
    max_products: int = DEFAULT_MAX_TERMS,
) -> Derivation:
    """The layer as one matrix product: the patch matrix ``X``, the filter matrix ``W`` and ``Z = W Xᵀ``.

    Parameters
    ----------
    spec : ConvSpec
        A forward convolution with one group.
    x : array_like, optional
        Numbers for the input; default the symbols ``a1, a2, …``.
    max_rows, max_cols : int
        Display limits (the first ``max - 1``, an ellipsis and the last).
    max_products : int, default 50,000
        Largest patch matrix (entries) and symbol count derived; larger layers are refused
        before anything is built.

    Examples
    --------
    >>> d = derive_im2col(ConvSpec((1, 4), 1, 2, bias=False))
    >>> [line.strip() for line in d.to_text().splitlines() if line.strip().startswith("Z = ")]
    ['Z = [w1*a1 + w2*a2 w1*a2 + w2*a3 w1*a3 + w2*a4]']
    """
    import sympy

    from ..symbolic import symbolic_output, weight_symbols

    _plain(spec)
    entries = dense_pairs(spec) * spec.in_channels
    require_terms(
        spec,
        "the im2col derivation",
        max(entries, symbol_count(spec)),
        max_products,
        option="max_products",
    )
    patches = patch_matrix(spec, x)
    w = weight_symbols(spec).reshape(spec.out_channels, -1)
    n_pos, n_col = patches.shape
    x_grid, x_rule = array_grid(patches, max_rows, max_cols)
    w_grid, w_rule = array_grid(w, max_rows, max_cols)
    z_grid, z_value = _product_grid(w, patches, max_rows, max_cols)
    layer = symbolic_output(spec, x=x).reshape(spec.out_channels, -1)
    direct = sympy.Matrix(layer.tolist()) if z_value is not None else None
    taps = " \\times ".join(map(str, ints(spec.kernel_size)))
    steps = [
        Step(
            f"Write the layer's {n_pos} output positions (per channel) as the rows of the patch matrix $X$: row "
            f"$p$ lists the inputs under the kernel's ${spec.in_channels} \\cdot {taps} = {n_col}$ taps "
            "(input channel, then tap, row-major), $0$ where a tap reads padding.",
            (Equation((Expr("X", "X"), x_grid)),),
            (
                "Each row is read off the layer's index table: output $p$ reads input $i$ through tap $t$. "
                + x_rule
            ).strip(),
            "im2col",
        ),
        Step(
            f"The {_filters(spec.out_channels)} the rows of $W$ (${spec.out_channels} \\times {n_col}$):",
            (Equation((Expr("W", "W"), w_grid)),),
            w_rule,
            "definition",
        ),
        Step(
            "The convolution is one matrix product, $Z = W X^{\\top}$ (row $c$ of $Z$ is output channel $c$, "
            "column $p$ its output position $p$):",
            (Equation((Expr("Z", "Z"), z_grid), check=partial(_same_as_layer, z_value, direct)),),
            "Entry $(c, p)$ is filter $c$ dotted with patch $p$: the same sum of products as the layer's output "
            "$z = M a$ at channel $c$, position $p$ (checked against the matrix form).",
            "gemm",
        ),
        Step(
            f"Cost: the product multiplies a ${spec.out_channels} \\times {n_col}$ by a ${n_col} \\times {n_pos}$ "
            "matrix.",
            (
                Equation(
                    (
                        Expr(r"\text{MACs}", "MACs"),
                        Expr(
                            rf"{spec.out_channels} \cdot {n_col} \cdot {n_pos}",
                            f"{spec.out_channels}*{n_col}*{n_pos}",
                            spec.out_channels * n_col * n_pos,
                        ),
                        number(spec.macs),
                    )
                ),
            ),
            "The dense count of the layer itself: im2col trades the patch matrix's memory "
            f"(${n_pos} \\times {n_col}$ entries, each input copied once per tap that reads it) for one GEMM.",
            "cost",
        ),
    ]
    title = f"im2col: {spec_words(spec)} as one matrix product"
    return Derivation(title, tuple(steps), result=patches, meaning=partial(im2col_meaning, spec, x))


# ------------------------------------------------------------- transposed convolution
def _transposed_only(spec: ConvSpec) -> None:
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"transposed derivations need a ConvSpec, got {type(spec).__name__}")
    require_direct_form(spec, "transposed derivations")


def zero_inserted(spec: ConvSpec, x: np.ndarray) -> np.ndarray:
    """``x`` (``spec.input_shape``) with ``s - 1`` zeros between neighbouring entries on every axis."""
    inserted = (
        spec.in_channels,
        *((n - 1) * s + 1 for n, s in zip(spec.input_shape[1:], ints(spec.stride), strict=True)),
    )
    out = budget.zeros(inserted, dtype=object if x.dtype == object else x.dtype)
    out[(slice(None), *(slice(None, None, s) for s in ints(spec.stride)))] = x
    return out


def direct_weight(spec: ConvSpec, weight: np.ndarray) -> np.ndarray:
    """The transposed layer's weight ``(C_in, C_out/G, k)`` as the direct layer's ``(C_out, C_in/G, k)``."""
    g = spec.groups
    per_in, per_out = spec.in_channels // g, spec.out_channels // g
    w = weight.reshape(g, per_in, per_out, *ints(spec.kernel_size))
    return np.swapaxes(w, 1, 2).reshape(spec.out_channels, per_in, *ints(spec.kernel_size))


def _same_outputs(got: np.ndarray, want: np.ndarray) -> int:
    import sympy

    if got.shape != want.shape or any(
        sympy.expand(a - b) != 0 for a, b in zip(got.ravel(), want.ravel(), strict=True)
    ):
        raise AssertionError(
            "the direct convolution of the zero-inserted input differs from the transposed layer"
        )
    return int(got.size)


def derive_transposed(spec: ConvSpec, *, max_rows: int = 32, max_cols: int = 12) -> Derivation:
    """A transposed convolution three ways: output size, zero insertion + direct convolution, ``Mᵀ``.

    Examples
    --------
    >>> d = derive_transposed(ConvSpec((1, 3), 1, 3, stride=2, transposed=True, bias=False))
    >>> d.result
    (1, 7)
    """
    from ..symbolic import input_symbols, symbolic_output, weight_symbols
    from .matrices import matrix_grid
    from .shapes import derive_output_size

    _transposed_only(spec)
    direct = direct_equivalent(spec)
    a = input_symbols(spec)
    inserted = zero_inserted(spec, a)
    w_direct = direct_weight(spec, weight_symbols(spec))
    got = symbolic_output(direct, weight=w_direct, x=inserted)
    want = symbolic_output(spec)
    a_grid, a_rule = array_grid(a, max_rows, max_cols)
    ins_grid, ins_rule = array_grid(inserted, max_rows, max_cols)
    z_grid, z_rule = array_grid(want, max_rows, max_cols)
    n = spec.input_shape[1:]
    size = derive_output_size(spec)
    steps = [
        Step(
            "Output size (the transposed relationship of Dumoulin and Visin):",
            substeps=size.steps,
            rule="part",
        ),
        Step(
            f"Insert $S - 1$ zeros between neighbouring inputs: the input of size {sizes(n)} becomes "
            f"{sizes(direct.input_shape[1:])} ($(N - 1) S + 1$ per axis).",
            (Equation((Expr("a", "a"), a_grid)), Equation((Expr(r"\tilde{a}", "a~"), ins_grid))),
            " ".join(r for r in (a_rule, ins_rule) if r),
            "zero insertion",
        ),
        Step(
            f"Convolve $\\tilde a$ with stride 1: {spec_words(direct)}, i.e. padding $D(k - 1) - P_b$ before and "
            "$D(k - 1) - P_a + P_o$ after, the kernel flipped"
            + (
                " and each weight moved from (input, output) to (output, input) channel"
                if spec.in_channels * spec.out_channels > 1
                else ""
            )
            + ":",
            (Equation((Expr("z", "z"), z_grid), check=partial(_same_outputs, got, want)),),
            (
                "Output $p$ of the transposed layer collects input $j$ through tap $m$ where "
                "$S(j - 1) + D(m - 1) + 1 = p + P_b$; in $\\tilde a$ input $j$ sits at $S(j - 1) + 1$, so the "
                "direct convolution meets it through the mirrored tap. " + z_rule
            ).strip(),
            "direct convolution",
        ),
        Step(
            f"As a matrix, the layer is $M^{{\\top}}$ with $M$ the matrix of {spec_words(spec.forward)}:",
            (Equation((Expr(r"M^{\top}", "M^T"), matrix_grid(spec, max_rows, max_cols))),),
            "Its rows are the outputs of the transposed layer, its columns the inputs; row $p$ holds the taps "
            "that scatter onto $p$.",
            "transpose",
        ),
    ]
    return Derivation(
        f"Transposed convolution: {spec_words(spec)}",
        tuple(steps),
        result=spec.output_shape,
        meaning=partial(conv_meaning, spec, bias=budget.zeros(spec.out_channels), own="M^T"),
    )
