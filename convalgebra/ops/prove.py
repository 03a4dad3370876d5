"""``prove(lhs, rhs)``: an identity between operator expressions, decided for every size.

At one size both sides lower to term tables with symbolic kernels, and the identity holds at
that size exactly when the tables agree (:func:`decide_at`). For all sizes, the threshold
theorem below reduces the infinitely many sizes to finitely many.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .. import budget
from ..errors import ConvAlgebraError, shown
from .context import Context, SymbolTable
from .expressions import Op, Signal, bindings_of, walk
from .kernels import as_fraction
from .sizes import SizeSet
from .terms import DEFAULT_MAX_TERMS, Terms, Undefined, canonical, combine, evaluate, same_terms

__all__ = [
    "prove",
    "Proof",
    "Counterexample",
    "Residual",
    "decide_at",
    "threshold",
    "evaluate_sides",
]

#: Largest number of sizes an all-size proof decides one by one unless told otherwise.
DEFAULT_MAX_SIZES = 20_000


@dataclass(frozen=True)
class Counterexample:
    """Integer inputs and kernel values for which the two sides differ, evaluated exactly.

    ``positions`` are 0-based ``(channel, *spatial)`` output positions where they differ
    (empty when the two outputs do not even have one shape).
    """

    size: tuple[int, ...]
    inputs: dict[str, np.ndarray]
    kernels: dict[str, np.ndarray]
    lhs: np.ndarray
    rhs: np.ndarray
    positions: tuple[tuple[int, ...], ...]

    @property
    def description(self) -> str:
        size = self.size[0] if len(self.size) == 1 else self.size
        if self.lhs.shape != self.rhs.shape:
            return (
                f"at size {size} the two sides have different shapes: "
                f"{self.lhs.shape} and {self.rhs.shape}"
            )
        first = self.positions[0]
        one = [f"{k} = {shown(v.tolist(), 80)}" for k, v in self.inputs.items()]
        ks = [f"{k} = {shown(v.tolist(), 80)}" for k, v in self.kernels.items()]
        printed = tuple(p + 1 for p in first)  # printed mathematics counts from 1
        return (
            f"at size {size}, with {'; '.join(one + ks)}: the sides differ at "
            f"{len(self.positions)} output position(s), first at (channel, position) "
            f"{printed} counted from 1 ({self.lhs[first]} vs {self.rhs[first]})"
        )


@dataclass(frozen=True)
class Residual:
    """``lhs - rhs`` at one failing size, as terms ``coeff / den · Π w[symbols] · x[src]``
    written to output ``out`` (all flat, 0-based; ``-1`` marks an empty slot of ``symbols``).

    ``symbols`` holds global symbol ids: kernel ``k``'s flat entry ``e`` is
    ``symbol_offsets[k] + e``; sources are placed by ``signal_offsets``. Empty when the
    two sides differ only in shape (``shapes`` then tells them apart).

    Examples
    --------
    >>> from convalgebra import ops
    >>> x, w = ops.signal(), ops.kernel("w", (1, 1, 2))
    >>> r = ops.prove(ops.conv(x, w, padding=1), ops.conv(x, w, padding=1,
    ...     padding_mode="circular"), size=3).residual
    >>> r.out.tolist(), r.src.tolist(), r.symbols.tolist(), r.coeff.tolist()
    ([0, 3], [2, 0], [[0], [1]], [-1, -1])
    """

    size: tuple[int, ...]
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    out: np.ndarray
    src: np.ndarray
    symbols: np.ndarray
    coeff: np.ndarray
    den: int
    signal_offsets: dict[str, int]
    signal_shapes: dict[str, tuple[int, ...]]
    symbol_offsets: dict[str, int]
    symbol_shapes: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Proof:
    """The answer of :func:`prove`: the verdict, the sizes where it holds, the evidence."""

    lhs: Op
    rhs: Op
    holds: bool
    sizes: SizeSet
    defined: SizeSet
    failing: SizeSet
    counterexample: Counterexample | None
    thresholds: tuple[int, ...]
    periods: tuple[int, ...]
    square: bool = False
    decided: int = 0
    restricted: bool = False
    symbols: tuple[str, ...] = field(default=(), repr=False)
    residual: Residual | None = field(default=None, repr=False)  # at the smallest failing size
    failing_tables: Any = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.holds

    def evaluate_failing(
        self, inputs: dict[str, Any], kernels: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both sides at the smallest failing size for the given signals and kernel values,
        evaluated exactly from the tables already lowered (as :func:`evaluate_sides`).

        Examples
        --------
        >>> from convalgebra import ops
        >>> x, w = ops.signal(), ops.kernel("w", (1, 1, 2))
        >>> p = ops.prove(ops.conv(x, w, padding=1), ops.conv(x, w, padding=1,
        ...     padding_mode="circular"), size=3)
        >>> [v.tolist() for v in p.evaluate_failing({"x": [[1, 0, 0]]}, {"w": [[[1, 1]]]})]
        [[[1, 1, 0, 0]], [[1, 1, 0, 1]]]
        """
        if self.failing_tables is None:
            raise ConvAlgebraError("the identity holds at every size decided: nothing fails")
        symbols, ctx, tables, shapes = self.failing_tables
        return _evaluate(symbols, ctx, tables, shapes, inputs, kernels)

    @property
    def claim(self) -> str:
        return f"{self.lhs.formula()} == {self.rhs.formula()}"

    def document(self, *, max_rows: int = 40, **_: Any) -> Any:
        """The proof as a :class:`~convalgebra.render.Document` (the one renderer); the
        verdict table is cut past ``max_rows`` classes."""
        from .proof_document import proof_document

        return proof_document(self, prove, max_rows)

    def to_text(self) -> str:
        return self.document().to_text()

    def to_markdown(self) -> str:
        return self.document().to_markdown()

    def to_latex(self, standalone: bool = False) -> str:
        return self.document().to_latex(standalone)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __str__(self) -> str:
        return self.to_text()


# ------------------------------------------------------------------ one size
@dataclass
class Outcome:
    """What one size gave: ``"undefined"``, ``"holds"`` or ``"fails"``, and the tables."""

    status: str
    ctx: Context | None = None
    lhs: Terms | None = None
    rhs: Terms | None = None
    shapes: tuple[Any, Any] = (None, None)
    residual: Terms | None = None


@dataclass(frozen=True)
class Setup:
    """Everything fixed across sizes: signals, bindings, kernel symbols."""

    lhs: Op
    rhs: Op
    channels: dict[str, int]
    bindings: dict[str, Op]
    symbols: SymbolTable
    max_terms: int
    witness: bool = True


def decide_at(setup: Setup, n: tuple[int, ...]) -> Outcome:
    """Decide the identity at one size ``n`` (per spatial axis of the unbound signals)."""
    try:
        ctx = Context(n, setup.symbols, setup.channels, setup.bindings, setup.max_terms)
        shapes = (setup.lhs.shape(ctx), setup.rhs.shape(ctx))
    except Undefined:
        return Outcome("undefined")
    lhs, rhs = canonical(setup.lhs.lower(ctx)), canonical(setup.rhs.lower(ctx))
    if shapes[0] != shapes[1]:
        return Outcome("fails", ctx, lhs, rhs, shapes)
    if same_terms(lhs, rhs):
        return Outcome("holds", ctx, lhs, rhs, shapes)
    residual = combine([(lhs, Fraction(1)), (rhs, Fraction(-1))])
    return Outcome("fails", ctx, lhs, rhs, shapes, residual)


def _setup(lhs: Any, rhs: Any, max_terms: int) -> Setup:
    for side, value in (("lhs", lhs), ("rhs", rhs)):
        if not isinstance(value, Op):
            raise TypeError(
                f"prove: {side} must be an operator expression (ops.*), got {shown(value)}"
            )
    if lhs.ndim != rhs.ndim:
        raise ConvAlgebraError(f"the two sides act on {lhs.ndim}-D and {rhs.ndim}-D signals")
    if lhs.channels != rhs.channels:
        raise ConvAlgebraError(
            f"the two sides have {lhs.channels} and {rhs.channels} output channels: "
            "they cannot be the same map"
        )
    nodes = walk(lhs) + walk(rhs)
    channels: dict[str, int] = {}
    for node in nodes:
        if isinstance(node, Signal):
            if channels.get(node.name, node.channels) != node.channels or node.ndim != lhs.ndim:
                raise ConvAlgebraError(f"signal {node.name!r} is used with two shapes")
            channels[node.name] = node.channels
    shapes: dict[str, tuple[int, ...]] = {}
    for node in nodes:
        for k in node.kernels():
            for name, shape in k.symbols().items():
                if shapes.get(name, shape) != shape:
                    raise ConvAlgebraError(f"kernel {name!r} is used with two shapes")
                shapes[name] = shape
    degree = max(lhs.degree(), rhs.degree(), 1)
    return Setup(lhs, rhs, channels, bindings_of(nodes), SymbolTable(shapes, degree), max_terms)


# ------------------------------------------------------------------ every size
def threshold(lhs: Op, rhs: Op) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
    """``(T, P, square)`` per axis: from size ``T`` on, a size behaves as the size ``P`` less.

    See :func:`prove`, Notes, for the theorem and the formula.
    """
    nodes = walk(lhs) + walk(rhs)
    bindings = bindings_of(nodes)
    ndim = lhs.ndim
    periods = [1] * ndim
    for node in nodes:
        for a, g in enumerate(node.geometry(bindings)):
            periods[a] = math.lcm(periods[a], g.rate.denominator)
    tops = lhs.geometry(bindings), rhs.geometry(bindings)
    factor = 2 if any(n.reverses for n in nodes) else 1
    ts, ps = [], []
    for a in range(ndim):
        boundary = max(math.ceil(g[a].boundary) for g in tops)
        window = max(math.ceil(g[a].window) for g in tops)
        ps.append(factor * periods[a])
        ts.append(factor * (2 * boundary + 2 * window + 2 * periods[a]) + 1)
    square = any(n.permutes for n in nodes)
    if square:
        return (max(ts),), (math.lcm(*ps),), True
    return tuple(ts), tuple(ps), False


def _points(thresholds, periods) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(1, t + p) for t, p in zip(thresholds, periods))))


def _full(point: tuple[int, ...], ndim: int, square: bool) -> tuple[int, ...]:
    return point * ndim if square else point


def prove(
    lhs: Op,
    rhs: Op,
    *,
    size: Any = None,
    sizes: Any = None,
    max_terms: int = DEFAULT_MAX_TERMS,
    max_sizes: int = DEFAULT_MAX_SIZES,
    witness: bool = True,
    callback: Callable[[int, int], Any] | None = None,
) -> Proof:
    """Decide ``lhs == rhs`` as linear maps, with symbolic kernels, at every input size.

    Parameters
    ----------
    lhs, rhs : Op
        Expressions built with :mod:`convalgebra.ops` over the same signals.
    size : int or tuple of int, optional
        Decide at this one size only (per spatial axis; an int for every axis).
    sizes : iterable, optional
        Decide at these sizes only (e.g. ``range(1, 65)``).
    max_terms, max_sizes : int
        Budget: terms of one table, and sizes decided one by one; refused above them.
    witness : bool, default True
        Evaluate a counterexample at the smallest failing size; ``False`` leaves
        ``counterexample`` ``None`` (the residual still says where the sides differ).
    callback : callable, optional
        ``callback(done, total)`` after each size decided (progress); raise in it to stop.

    Returns
    -------
    Proof
        ``holds`` (the same map at every size where both sides are defined), ``sizes`` where
        they agree, ``defined``, ``failing``, and the ``counterexample`` at the smallest
        failing size, evaluated.

    Notes
    -----
    **At one size.** Each side lowers to a table of terms ``y[o] += c · m(w) · x[i]`` (``m``
    a monomial in the kernel entries, ``c`` rational). Kernel entries are independent symbols,
    so two sides are the same map for every kernel exactly when their tables are equal after
    like terms are summed: the residual table is empty.

    **Every size (the threshold theorem).** Along one axis, every operator maps position
    ``p`` of its input to positions ``p · r`` of its output (rate ``r``) up to a bounded offset,
    except within a bounded distance of either end (padding, wrap-around, partial windows).
    Composing, each node of an expression has, in signal positions, a rate ``r``, a boundary
    width ``B`` and a window ``W`` (``B`` and ``W`` add up along a path, scaled by ``1/r``;
    sums take the largest). Let ``P`` be the least common multiple of the denominators of all
    rates. If ``n >= T = 2 ⌈B⌉ + 2 ⌈W⌉ + 2 P + 1``, inserting ``P`` signal positions at a point
    ``m`` (a multiple of ``P``) at distance more than ``B + W`` from both ends inserts ``P · r``
    positions in every node and changes no row outside a window around ``m``; the inserted rows
    repeat interior rows. So the residual at size ``n + P`` is zero if and only if it is zero at
    size ``n``: whether the identity holds at ``n >= T`` depends only on ``(n - T) mod P``.
    Where an axis is reversed (``flip``, ``rot90``) the insertion is made at ``m`` and at
    ``n - m``: ``P`` and ``T`` double. With ``rot90`` the signal is square (one size ``n``).
    In N dimensions the argument holds for each axis with the others fixed, so deciding every
    size in ``1 .. T + P - 1`` per axis decides all sizes. The same periodicity holds for
    where the sides are defined. Sizes just above the range are decided too and must agree
    with the theorem (an internal check).

    Examples
    --------
    >>> from convalgebra import ops
    >>> x, w = ops.signal(), ops.kernel("w", (1, 1, 3))
    >>> r = prove(ops.conv(x, w, stride=2), ops.subsample(ops.conv(x, w), 2))
    >>> r.holds, str(r.sizes)
    (True, 'every n >= 3')
    >>> r = prove(ops.conv(x, w, padding=1), ops.conv(x, w, padding=1, padding_mode="circular"))
    >>> r.holds, str(r.sizes), r.counterexample.size
    (False, 'no n', (1,))
    """
    setup = dataclasses.replace(_setup(lhs, rhs, _limit(max_terms, "max_terms")), witness=witness)
    ndim = lhs.ndim
    if size is not None or sizes is not None:
        return _prove_listed(setup, size, sizes, ndim, _limit(max_sizes, "max_sizes"), callback)
    ts, ps, square = threshold(lhs, rhs)
    count = math.prod(t + p - 1 for t, p in zip(ts, ps))
    if count > max_sizes:
        raise ConvAlgebraError(
            f"deciding every size needs {count:,} sizes (threshold {ts}, period {ps}), "
            f"over max_sizes={max_sizes:,}; decide chosen sizes with sizes=, or raise max_sizes="
        )
    points = _points(ts, ps)
    outcomes = _decide_all(setup, {p: _full(p, ndim, square) for p in points}, callback)
    _check_periodicity(setup, outcomes, ts, ps, ndim, square)
    return _result(setup, outcomes, ts, ps, ndim, square, None)


def _limit(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConvAlgebraError(f"{name} must be a positive integer, got {shown(value)}")
    return int(value)


def _decide_all(
    setup: Setup, points: dict[Any, tuple[int, ...]], callback: Callable[[int, int], Any] | None
) -> dict[Any, Outcome]:
    """The outcome at each point (keyed as given), reporting progress after each one."""
    outcomes = {}
    for done, (key, n) in enumerate(points.items(), 1):
        outcomes[key] = decide_at(setup, n)
        if callback is not None:
            callback(done, len(points))
    return outcomes


def _prove_listed(
    setup: Setup,
    size: Any,
    sizes: Any,
    ndim: int,
    max_sizes: int,
    callback: Callable[[int, int], Any] | None = None,
) -> Proof:
    if size is not None and sizes is not None:
        raise ConvAlgebraError("give size= or sizes=, not both")
    if size is None and not hasattr(sizes, "__iter__"):
        raise TypeError(
            f"sizes must be an iterable of sizes (e.g. range(1, 65)), got {shown(sizes)}"
        )
    listed = [size] if size is not None else list(itertools.islice(iter(sizes), max_sizes + 1))
    if len(listed) > max_sizes:
        raise ConvAlgebraError(f"more than max_sizes={max_sizes:,} sizes were listed")
    points = []
    for s in listed:
        items = tuple(s) if isinstance(s, (tuple, list)) else (s,) * ndim
        if len(items) != ndim or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in items
        ):
            raise ConvAlgebraError(f"a size needs {ndim} positive integers, got {shown(s)}")
        points.append(tuple(int(v) for v in items))
    if not points:
        raise ConvAlgebraError("sizes= lists no size")
    outcomes = _decide_all(setup, {p: p for p in dict.fromkeys(points)}, callback)
    top = tuple(max(p[a] for p in points) for a in range(ndim))
    return _result(
        setup, outcomes, tuple(t + 1 for t in top), (1,) * ndim, ndim, False, tuple(outcomes)
    )


def _check_periodicity(setup: Setup, outcomes, ts, ps, ndim, square) -> None:
    """Sizes one period past the decided range must repeat the theorem's prediction."""
    last = tuple(t + p - 1 for t, p in zip(ts, ps))
    for a in range(len(ts)):
        for extra in range(ps[a]):
            point = list(last)
            point[a] = ts[a] + ps[a] + extra
            expected = list(point)
            expected[a] -= ps[a]
            got = decide_at(setup, _full(tuple(point), ndim, square)).status
            if got != outcomes[tuple(expected)].status:
                raise RuntimeError(
                    f"internal error: the threshold theorem predicted {outcomes[tuple(expected)].status} "
                    f"at size {tuple(point)} (as at {tuple(expected)}), found {got}"
                )


def _result(setup, outcomes, ts, ps, ndim, square, explicit) -> Proof:
    shape = tuple(t + p - 1 for t, p in zip(ts, ps))
    defined = budget.zeros(shape, dtype=bool)
    holds = budget.zeros(shape, dtype=bool)
    for p, o in outcomes.items():
        cell = tuple(v - 1 for v in p)
        defined[cell] = o.status != "undefined"
        holds[cell] = o.status == "holds"
    failing_points = sorted(
        (p for p, o in outcomes.items() if o.status == "fails"),
        key=lambda p: (math.prod(_full(p, ndim, square)), p),
    )
    example, residual, tables = None, None, None
    if failing_points:
        p = failing_points[0]
        if setup.witness:
            example = counterexample(setup, outcomes[p], _full(p, ndim, square))
        residual = _residual(setup, outcomes[p], _full(p, ndim, square))
        o = outcomes[p]
        tables = (setup.symbols, o.ctx, (o.lhs, o.rhs), o.shapes)

    def sset(grid: np.ndarray) -> SizeSet:
        full = None if explicit is None else tuple(_full(q, ndim, square) for q in explicit)
        return SizeSet(grid, ts, ps, ndim, square, full)

    if not defined.any():
        raise ConvAlgebraError(
            f"{setup.lhs.formula()} == {setup.rhs.formula()}: the two sides are not both "
            "defined at any size (a kernel wider than the input at every size, or shapes that "
            "never agree)"
        )
    return Proof(
        setup.lhs,
        setup.rhs,
        not failing_points,
        sset(holds),
        sset(defined),
        sset(defined & ~holds),
        example,
        ts,
        ps,
        square,
        len(outcomes),
        explicit is not None,
        tuple(setup.symbols.names()),
        residual,
        tables,
    )


def _residual(setup: Setup, outcome: Outcome, size: tuple[int, ...]) -> Residual:
    ctx = outcome.ctx
    assert ctx is not None
    table = outcome.residual
    if table is None:  # the shapes differ: no table of differences
        empty = np.zeros(0, dtype=np.int64)
        out, src, coeff, den, symbols = empty, empty, empty, 1, np.zeros((0, 1), np.int64)
    else:
        out, src, coeff, den = table.out, table.src, table.coeff, table.den
        symbols = np.sort(ctx.monomials.digits(table.mono) - 1, axis=1)
    return Residual(
        size,
        (tuple(outcome.shapes[0]), tuple(outcome.shapes[1])),
        out,
        src,
        symbols,
        coeff,
        den,
        dict(ctx.offsets),
        dict(ctx.signal_shapes),
        dict(setup.symbols.offsets),
        dict(setup.symbols.shapes),
    )


# ------------------------------------------------------------------ counterexamples
def counterexample(setup: Setup, outcome: Outcome, size: tuple[int, ...]) -> Counterexample:
    """Integer inputs and kernel values at a failing size for which the sides differ.

    The input is one-hot at a source entry of the residual (or small random integers when the
    shapes differ); kernel values are all ones, then seeded small random integers, until the
    exactly evaluated outputs differ (a non-zero polynomial is non-zero at most integer
    points).
    """
    ctx = outcome.ctx
    assert ctx is not None and outcome.lhs is not None and outcome.rhs is not None
    rng = np.random.default_rng(0)
    n_sym = setup.symbols.n_symbols
    x = budget.zeros(ctx.n_src, dtype=np.int64)
    if outcome.residual is not None and len(outcome.residual):
        x[int(outcome.residual.src[0])] = 1
    else:
        x = rng.integers(-3, 4, ctx.n_src)
    trials = [budget.ones(n_sym, dtype=np.int64)]
    trials += [rng.integers(-3, 4, n_sym) for _ in range(30)]
    trials += [rng.integers(-50, 51, n_sym) for _ in range(30)]
    for values in trials:
        left = _values(evaluate(outcome.lhs, x, values, ctx.monomials), outcome.shapes[0])
        right = _values(evaluate(outcome.rhs, x, values, ctx.monomials), outcome.shapes[1])
        if left.shape != right.shape:
            positions: tuple[tuple[int, ...], ...] = ()
        else:
            positions = tuple(tuple(int(v) for v in p) for p in np.argwhere(left != right))
            if not positions:
                continue
        return Counterexample(
            size, _split_inputs(ctx, x), _split_kernels(setup, values), left, right, positions
        )
    raise RuntimeError("internal error: no integer point separates two different tables")


def _values(flat: list, shape: tuple[int, ...]) -> np.ndarray:
    if all(v.denominator == 1 for v in flat):
        return np.array([int(v) for v in flat], dtype=object).reshape(shape)
    return np.array(flat, dtype=object).reshape(shape)


def _split_inputs(ctx: Context, x: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in ctx.signal_shapes.items():
        start = ctx.offsets[name]
        out[name] = np.asarray(x[start : start + math.prod(shape)]).reshape(shape)
    return out


def _split_kernels(setup: Setup, values: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in setup.symbols.shapes.items():
        start = setup.symbols.offsets[name]
        out[name] = np.asarray(values[start : start + math.prod(shape)]).reshape(shape)
    return out


def evaluate_sides(
    lhs: Op, rhs: Op, size: tuple[int, ...], inputs: dict[str, Any], kernels: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Both sides at ``size``, evaluated exactly for the given signals and kernel values.

    Values are ints, Fractions or floats (taken exactly); the outputs are object arrays of
    Fractions (ints where integral), shaped as each side's output.

    Examples
    --------
    >>> from convalgebra import ops
    >>> x, w = ops.signal(), ops.kernel("w", (1, 1, 2))
    >>> a, b = evaluate_sides(ops.conv(x, w), ops.conv(x, w, padding=1), (3,),
    ...                       {"x": [[1, 2, 3]]}, {"w": [[[1, 1]]]})
    >>> a.tolist(), b.tolist()
    ([[3, 5]], [[1, 3, 5, 3]])
    """
    setup = _setup(lhs, rhs, DEFAULT_MAX_TERMS)
    ctx = Context(tuple(size), setup.symbols, setup.channels, setup.bindings, setup.max_terms)
    tables = (lhs.lower(ctx), rhs.lower(ctx))
    return _evaluate(setup.symbols, ctx, tables, (lhs.shape(ctx), rhs.shape(ctx)), inputs, kernels)


def _evaluate(symbols: SymbolTable, ctx: Context, tables, shapes, inputs, kernels):
    """Both lowered sides evaluated exactly for the given signals and kernel values."""
    x = budget.zeros(ctx.n_src, dtype=object)
    for name, shape in ctx.signal_shapes.items():
        start = ctx.offsets[name]
        value = np.asarray(inputs[name], dtype=object).reshape(shape)
        x[start : start + math.prod(shape)] = [as_fraction(v, name) for v in value.ravel()]
    values = budget.zeros(symbols.n_symbols, dtype=object)
    for name in symbols.shapes:
        start = symbols.offsets[name]
        flat = np.asarray(kernels[name], dtype=object).ravel()
        values[start : start + flat.size] = [as_fraction(v, name) for v in flat]
    left, right = (
        _values(evaluate(t, x, values, ctx.monomials), shape) for t, shape in zip(tables, shapes)
    )
    return left, right
