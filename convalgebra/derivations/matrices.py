"""Derivation of a layer's matrix: index formula, entries, structure, sparsity, sharing, cost.

The matrix is displayed with symbolic kernel entries (or the given numbers). Past
``max_rows``/``max_cols`` it is truncated as textbooks do: the first ``max - 1`` rows
(columns), an ellipsis, and the last one; only the displayed entries are ever computed, from
the rows of the triple table they need, so a layer with millions of rows costs no more than
a small one. A 2-D single-channel layer is also shown in block form (the blocks are the
Toeplitz or circulant matrices of the kernel rows), as in the Deep Learning book.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from .. import budget
from ..budget import require_terms, symbol_count, triple_count
from ..render.grids import pick, truncation_rule
from ..spec import ConvSpec
from ..structure import STRUCTURE_BUDGET, structure_probe
from ..symbolic.exprs import as_expr
from .indexing import index_steps
from .model import Derivation, Equation, Expr, Grid, Step
from .oracle import conv_meaning
from .printing import number, sum_of_products, tex_symbol, text_symbol
from .words import spec_words

__all__ = ["derive_matrix", "pick", "matrix_grid"]


def _cell(value: Any) -> Expr:
    import sympy

    value = as_expr(value, "value")
    if value.is_Symbol:
        return Expr(tex_symbol(value), text_symbol(value), value)
    if value.is_number:
        return number(value)
    return sum_of_products(
        [(a,) if a.is_Symbol else a.as_ordered_factors() for a in sympy.Add.make_args(value)], value
    )


def matrix_grid(
    spec: ConvSpec,
    max_rows: int = 12,
    max_cols: int = 12,
    weight: Any = None,
    row_range: tuple[int, int] | None = None,
    col_range: tuple[int, int] | None = None,
) -> Grid:
    """The (truncated) matrix of ``spec`` as a :class:`Grid` of entries, optionally a block of it."""
    import sympy

    n_rows, n_cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    r0, r1 = row_range or (0, n_rows)
    c0, c1 = col_range or (0, n_cols)
    rows = [None if i is None else i + r0 for i in pick(r1 - r0, max_rows)]
    cols = [None if j is None else j + c0 for j in pick(c1 - c0, max_cols)]
    from ..symbolic import matrix_entries

    entries = matrix_entries(
        spec, weight, [i for i in rows if i is not None], [j for j in cols if j is not None]
    )
    cells = []
    for i in rows:
        cells.append(
            tuple(
                ("d" if j is None else "v")
                if i is None
                else ("h" if j is None else _cell(entries.get((i, j), 0)))
                for j in cols
            )
        )
    full = None not in rows and None not in cols
    value = (
        sympy.Matrix(
            [[entries.get((i, j), 0) for j in cols if j is not None] for i in rows if i is not None]
        )
        if full
        else None
    )
    return Grid(tuple(cells), value, rows=tuple(rows), cols=tuple(cols))


def _matrix_step(spec: ConvSpec, max_rows: int, max_cols: int, weight: Any) -> Step:
    n_rows, n_cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    grid = matrix_grid(spec, max_rows, max_cols, weight)
    rule = truncation_rule(n_rows, n_cols, max_rows, max_cols)
    return Step(
        f"Collecting the entries gives the ${_n(n_rows)} \\times {_n(n_cols)}$ matrix $M$ with $z = M a$ "
        "(rows: outputs, columns: inputs, both flattened row-major, channels first).",
        (Equation((Expr("M", "M"), grid)),),
        rule,
        "matrix",
    )


def _blocks_step(spec: ConvSpec, max_rows: int, max_cols: int, weight: Any) -> Step | None:
    """Block form of a 2-D single-channel matrix: blocks named by the kernel row they hold."""
    if spec.ndim != 2 or spec.in_channels * spec.out_channels != 1 or spec.tile is not None:
        return None
    fwd_out, fwd_in = spec.output_shape[1:], spec.input_shape[1:]
    (h_out, w_out), (h_in, w_in) = fwd_out, fwd_in
    brows, bcols = pick(h_out, max_rows), pick(h_in, max_cols)
    grids: dict[Any, tuple[str, Grid]] = {}
    cells = []
    for bi in brows:
        row: list[Any] = []
        for bj in bcols:
            if bi is None or bj is None:
                row.append("d" if bi is None and bj is None else ("v" if bi is None else "h"))
                continue
            g = matrix_grid(
                spec,
                max_rows,
                max_cols,
                weight,
                (bi * w_out, (bi + 1) * w_out),
                (bj * w_in, (bj + 1) * w_in),
            )
            key = g.tex
            if all(isinstance(c, Expr) and c.value == 0 for c in g.exprs()):
                row.append(number(0))
                continue
            if key not in grids:
                grids[key] = (f"B_{{{len(grids) + 1}}}", g)
            name = grids[key][0]
            row.append(Expr(name, name.replace("{", "").replace("}", "")))
        cells.append(tuple(row))
    rule = truncation_rule(h_out, h_in, max_rows, max_cols)
    defs = tuple(
        Equation(
            (Expr(name, name.replace("{", "").replace("}", "")), g), label=_kernel_rows(spec, g)
        )
        for name, g in grids.values()
    )
    return Step(
        f"In block form $M$ is a ${h_out} \\times {h_in}$ grid of ${w_out} \\times {w_in}$ blocks, one block row "
        "per output row and one block column per input row; the distinct non-zero blocks are named $B_1, B_2, \\ldots$:",
        (Equation((Expr("M", "M"), Grid(tuple(cells)))),) + defs,
        (
            "Block $(r, c)$ holds the kernel row that output row $r$ applies to input row $c$, so it depends on "
            "$c - r$ only (on $(c - r) \\bmod$ the height with circular padding). " + rule
        ).strip(),
        "blocks",
    )


def _kernel_rows(spec: ConvSpec, grid: Grid) -> str:
    """Which kernel rows a block's symbolic entries come from ("" for numeric entries)."""
    from ..symbolic import weight_symbols

    rows = {s: k // spec.kernel_size[-1] + 1 for k, s in enumerate(weight_symbols(spec).ravel())}
    found = sorted(
        {
            rows[s]
            for e in grid.exprs()
            if e.value is not None
            for s in getattr(e.value, "free_symbols", ())
            if s in rows
        }
    )
    if not found:
        return ""
    return ("kernel row " if len(found) == 1 else "kernel rows ") + ", ".join(map(str, found))


def _sparsity_step(spec: ConvSpec) -> Step:
    n_rows, n_cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    from ..operators import conv_matrix

    generic = np.arange(1, math.prod(spec.weight_shape) + 1, dtype=np.float64).reshape(
        spec.weight_shape
    )
    nnz = conv_matrix(spec, generic).count_nonzero()
    dense = Equation(
        (
            Expr("m n", "m*n"),
            Expr(rf"{_n(n_cols)} \cdot {_n(n_rows)}", f"{n_cols}*{n_rows}", n_rows * n_cols),
            number(n_rows * n_cols),
        )
    )
    stored = Equation((Expr(r"\mathrm{nnz}(M)", "nnz(M)"), *_full_count(spec, nnz), number(nnz)))
    share = Equation(
        (
            Expr(r"\mathrm{nnz}(M) / (m n)", "nnz(M)/(m*n)"),
            Expr(
                f"{100 * nnz / (n_rows * n_cols):.4g}" + r"\,\%",
                f"{100 * nnz / (n_rows * n_cols):.4g} %",
            ),
        ),
        relation="=",
    )
    return Step(
        f"Sparsity: of the $m n$ entries ($m = {_n(n_cols)}$ inputs, $n = {_n(n_rows)}$ outputs) only those on a "
        "kernel tap are non-zero.",
        (dense, stored, share),
        "Each output reads at most one input per kernel tap and input channel; every other entry is zero.",
        "sparsity",
    )


def _sharing_step(spec: ConvSpec) -> Step:
    from ..connectivity import iter_triples

    n_rows, n_cols = math.prod(spec.output_shape), math.prod(spec.input_shape)
    uses = budget.zeros(math.prod(spec.weight_shape), dtype=np.int64)
    for _, chunk in iter_triples(spec, block_rows=1 << 16):  # bounded memory for huge layers
        uses += chunk.sharing()
    connections = int(uses.sum())
    used = uses[uses > 0]
    if used.size == 0:
        statement = (
            "Parameter sharing: no kernel tap ever reads an input (every tap falls on padding)."
        )
    else:
        statement = (
            f"Parameter sharing: the {_plural(connections, 'connection')} (input, output pairs through a tap, "
            f"before duplicates are merged) use only {_plural(spec.n_weights, 'distinct kernel entry')}, each "
            f"{used.min():,}"
            + (f" to {used.max():,}" if used.max() != used.min() else "")
            + (" time" if used.max() == 1 else " times")
            + (
                f"; {uses.size - used.size:,} entries of the weight array are never used ("
                + ("unconnected channel pairs, or " if spec.channel_table is not None else "")
                + "taps that always read padding)"
                if used.size < uses.size
                else ""
            )
            + "."
        )
    eqs = (
        Equation(
            (
                Expr(r"\text{dense (fully connected)}", "dense (fully connected)"),
                Expr(rf"m n = {_n(n_cols)} \cdot {_n(n_rows)}", f"m*n = {n_cols}*{n_rows}"),
                number(n_rows * n_cols),
            )
        ),
        Equation(
            (
                Expr(
                    r"\text{sparse, unshared (locally connected)}",
                    "sparse, unshared (locally connected)",
                ),
                Expr(r"\#\text{connections}", "#connections"),
                *_full_count(spec, connections, "k n"),
                number(connections),
            )
        ),
        Equation(
            (
                Expr(r"\text{convolution (shared)}", "convolution (shared)"),
                Expr(r"\#\text{kernel entries}", "#kernel entries"),
                number(spec.n_weights),
            )
        ),
    )
    border = (
        " (fewer at zero-padded borders)"
        if spec.padding_mode == "zeros" and any(b or a for b, a in spec.padding)
        else ""
    )
    return Step(
        statement,
        eqs,
        "Sharing: every output position applies the same kernel, so a weight's count of uses is the number "
        f"of output positions whose window puts that tap on the input{border}.",
        "sharing",
    )


def _n(value: int) -> str:
    """An integer for LaTeX math, thousands separated."""
    return number(value).tex


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"1 {word}"
    return f"{count:,} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def _full_count(spec: ConvSpec, nnz: int, name: str = "") -> tuple[Expr, ...]:
    """``taps · C_out · out spatial`` (``k n``) when every output reads a full window (no padding taps)."""
    taps = (spec.in_channels // spec.groups) * math.prod(spec.kernel_size)
    factors = [taps, spec.output_shape[0], *spec.output_shape[1:]]
    if spec.transposed or spec.channel_table is not None or math.prod(factors) != nnz:
        return ()
    factors = [f for f in factors if f != 1] or [1]
    product = Expr(
        r" \cdot ".join(_n(f) for f in factors), "*".join(map(str, factors)), math.prod(factors)
    )
    return ((Expr(name, name.replace(" ", "*")),) if name else ()) + (product,)


def len_estimate(spec: ConvSpec) -> int:
    """An upper bound on the number of triples (outputs times taps per output)."""
    per = (
        spec.in_channels // spec.groups if not spec.transposed else spec.out_channels // spec.groups
    )
    return (
        math.prod(spec.forward_output_spatial)
        * max(spec.in_channels, spec.out_channels)
        * per
        * math.prod(spec.kernel_size)
    )


def _cost_step(spec: ConvSpec) -> Step | None:
    if spec.transposed or spec.channel_table is not None:
        return None
    taps = (spec.in_channels // spec.groups) * math.prod(spec.kernel_size)
    n_out = math.prod(spec.output_shape)
    flops = n_out * (2 * taps - 1)
    eq = Equation(
        (
            Expr(r"\text{flops}", "flops"),
            Expr(rf"{_n(n_out)} \cdot (2 \cdot {taps} - 1)", f"{n_out}*(2*{taps} - 1)", flops),
            number(flops),
        )
    )
    macs = Equation(
        (
            Expr(r"\text{MACs}", "MACs"),
            Expr(rf"{_n(n_out)} \cdot {taps}", f"{n_out}*{taps}", n_out * taps),
            number(spec.macs),
        )
    )
    return Step(
        f"Cost: each of the {n_out:,} outputs takes {_plural(taps, 'multiplication')} and "
        f"{_plural(taps - 1, 'addition')} (bias apart).",
        (macs, eq),
        "The dense count (padding taps included), as frameworks report it.",
        "cost",
    )


#: Largest layer (in triples) whose matrix is derived unless told otherwise (``max_products=``).
MATRIX_MAX_PRODUCTS = 20_000_000


def derive_matrix(
    spec: ConvSpec,
    *,
    weight: Any = None,
    max_rows: int = 32,
    max_cols: int = 12,
    blocks: bool = True,
    max_products: int = MATRIX_MAX_PRODUCTS,
) -> Derivation:
    """The matrix of a layer: index formula, entries, structure, sparsity, sharing and cost.

    Parameters
    ----------
    spec : ConvSpec
    weight : array_like, optional
        Numbers for the kernel (``spec.weight_shape``); default symbols ``w1, w2, …``.
    max_rows, max_cols : int
        Display limits; larger matrices are truncated (first ``max - 1``, an ellipsis, the last).
    blocks : bool
        Also show a 2-D single-channel matrix in block form.
    max_products : int, default 20,000,000
        Refuse, before any work, layers with more triples than this (the sparsity and sharing
        steps count every one of them), or more weights, inputs and outputs together (the
        index steps name each one).

    Examples
    --------
    >>> d = derive_matrix(ConvSpec((1, 4), 1, 2, bias=False))
    >>> print([line for line in d.to_text().splitlines() if line.strip().startswith("[")][0])
          [w1 w2  0  0]
    """
    from ..operators import check_weight
    from ..structure import matrix_structure

    if not isinstance(spec, ConvSpec):
        raise TypeError(f"matrix derivations need a ConvSpec, got {type(spec).__name__}")
    require_terms(  # the index steps hold one entry per weight, input and output as well
        spec,
        "the matrix derivation",
        max(triple_count(spec), symbol_count(spec)),
        max_products,
        "use conv_matrix/matrix_structure on the numbers, smaller sizes, or a larger max_products=",
        option="max_products",
    )
    if weight is not None:
        weight = check_weight(spec, weight)
        weight = exact_array(weight)
    steps = list(index_steps(spec))
    steps.append(_matrix_step(spec, max_rows, max_cols, weight))
    block = _blocks_step(spec, max_rows, max_cols, weight) if blocks else None
    steps += [block] if block else []
    probe = structure_probe(spec)
    structure = matrix_structure(probe)
    where = (
        "the matrix"
        if probe == spec
        else (
            f"the same layer on a smaller input {probe.input_shape} (the level kinds depend on the configuration, "
            f"not on the size; this matrix has more than {STRUCTURE_BUDGET:,} non-zeros)"
        )
    )
    steps.append(
        Step(
            f"Structure, as recognised from {where}: $M$ is {structure.name} ("
            + "; ".join(f"{_one_based(n)}: {k}" for n, _, _, k in structure.levels)
            + ").",
            justification=_structure_reason(spec),
            rule="structure",
        )
    )
    steps += [_sparsity_step(spec), _sharing_step(spec)]
    cost = _cost_step(spec)
    steps += [cost] if cost else []
    return Derivation(
        f"The matrix of {spec_words(spec)}",
        tuple(steps),
        result=structure,
        meaning=partial(conv_meaning, spec, weight),
    )


def _one_based(level: str) -> str:
    """A structure level's name with its axis numbered from 1 (``axis 0`` -> ``axis 1``)."""
    if level.startswith("axis ") and level[5:].isdigit():
        return f"axis {int(level[5:]) + 1}"
    return level


#: Above this many triples the structure is recognised on a smaller copy of the layer.
def exact_array(values: Any) -> np.ndarray:
    """An object array of exact sympy numbers (floats rationalised) of the same shape."""
    import sympy

    array = np.asarray(values)
    out = np.empty(array.size, dtype=object)
    out[:] = [
        sympy.nsimplify(v) if isinstance(v, float) else as_expr(v, "weight")
        for v in array.ravel().tolist()
    ]
    return out.reshape(array.shape)


def _structure_reason(spec: ConvSpec) -> str:
    if spec.transposed:
        return "A transposed convolution's matrix is the transpose of the forward convolution's."
    if max(spec.stride) > 1:
        return (
            "With stride $S > 1$ consecutive rows shift by $S$ columns, so the diagonals are not constant: the "
            "matrix is a row-subsampled Toeplitz matrix, not Toeplitz itself."
        )
    if spec.padding_mode == "circular":
        return "The entry depends only on the column minus the row, modulo the size: each level is circulant."
    if spec.padding_mode == "zeros":
        return (
            "The entry depends only on the column minus the row (per axis): each level is Toeplitz."
            + (
                " A level along which the kernel has size 1 is diagonal, which is both Toeplitz and circulant."
                if spec.ndim > 1 and min(spec.kernel_size) == 1
                else ""
            )
        )
    return "Reflected or replicated borders fold taps back inside, breaking the constant diagonals at the edges."
