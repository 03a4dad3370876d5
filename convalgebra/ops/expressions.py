"""Signal expressions: trees of linear maps over signals of every size.

An :class:`Op` is a linear map of its signals with kernel-polynomial entries. It knows its
shape at any size (:meth:`Op.shape`), lowers to a term table at any size (:meth:`Op.lower`),
and carries the per-axis geometry the all-size argument of
:func:`~convalgebra.ops.prove.prove` needs (:meth:`Op.geometry`): how fast its size grows with
the signal's (``rate``), how far from either end its rows may differ from the periodic
interior (``boundary``), and how far an interior row reads from its nominal position
(``window``), both in signal positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import ConvAlgebraError, shown
from .context import Context
from .kernels import Kernel, as_fraction
from .terms import (
    Terms,
    Undefined,
    combine,
    compose,
    gather_terms,
    identity_terms,
    offset_rows,
    transpose_terms,
)

__all__ = [
    "Geometry",
    "Op",
    "Signal",
    "Gather",
    "signal",
    "cat",
    "split",
    "adjoint",
    "walk",
]


@dataclass(frozen=True)
class Geometry:
    """One spatial axis of a node: size growth ``rate``, ``boundary`` and ``window`` widths.

    ``rate`` is output positions per signal position; the widths are in signal positions.
    """

    rate: Fraction
    boundary: Fraction = Fraction(0)
    window: Fraction = Fraction(0)

    def then(self, rate: Fraction, window: Fraction, boundary: Fraction) -> Geometry:
        """This axis followed by an operator with ``window`` and ``boundary`` in *its input*
        positions, multiplying the rate by ``rate``.

        A row of the new node is a boundary row when it reads a boundary row of its input
        (within the input's boundary plus the window of an end) or reads past an end of its
        input (within ``boundary`` of it): the larger of the two widths.
        """
        inherited = self.boundary + window / self.rate if self.boundary > 0 else Fraction(0)
        return Geometry(
            self.rate * rate,
            max(inherited, boundary / self.rate),
            self.window + window / self.rate,
        )


Bindings = dict[str, "Op"]


class Op:
    """A linear operator expression of one or more signals (channels first, no batch axis)."""

    channels: int
    ndim: int
    reverses: bool = False  # reverses a spatial axis (flip, rot90)
    permutes: bool = False  # exchanges spatial axes (rot90): sizes are square

    # ---------------------------------------------------------------- structure
    def children(self) -> tuple[Op, ...]:
        return ()

    def kernels(self) -> tuple[Kernel, ...]:
        return ()

    def degree(self) -> int:
        """Highest degree of its entries in the kernel symbols."""
        own = max((k.degree for k in self.kernels()), default=0)
        return own + max((c.degree() for c in self.children()), default=0)

    def geometry(self, bindings: Bindings) -> tuple[Geometry, ...]:
        raise NotImplementedError

    def formula(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.formula()

    # ---------------------------------------------------------------- sizes
    def shape(self, ctx: Context) -> tuple[int, ...]:
        """``(C, *spatial)`` at the context's size; :class:`Undefined` outside the domain."""
        return ctx.memo(ctx.shapes, self, lambda: self._shape(ctx))

    def _shape(self, ctx: Context) -> tuple[int, ...]:
        raise NotImplementedError

    def lower(self, ctx: Context) -> Terms:
        """The term table from the context's source vector to this node's flat output."""
        return ctx.memo(ctx.cache, self, lambda: self._lower(ctx))

    def _lower(self, ctx: Context) -> Terms:
        raise NotImplementedError

    # ---------------------------------------------------------------- arithmetic
    def __add__(self, other: Any) -> Op:
        return _Sum([(self, Fraction(1)), (_op(other, "+"), Fraction(1))])

    def __sub__(self, other: Any) -> Op:
        return _Sum([(self, Fraction(1)), (_op(other, "-"), Fraction(-1))])

    def __neg__(self) -> Op:
        return _Sum([(self, Fraction(-1))])

    def __mul__(self, scalar: Any) -> Op:
        if isinstance(scalar, Op):
            raise TypeError("two signal expressions cannot be multiplied: the map must stay linear")
        return _Sum([(self, as_fraction(scalar, "a scalar factor"))])

    __rmul__ = __mul__

    def __getitem__(self, index: Any) -> Op:
        """Channel indexing: ``e[2]`` or ``e[1:3]`` (dim 0 is the channel axis)."""
        if isinstance(index, tuple):
            raise ConvAlgebraError("only the channel axis can be indexed: e[c] or e[a:b]")
        if isinstance(index, slice):
            if index.step == 0:
                raise ConvAlgebraError("a channel slice step must not be zero")
            try:
                picked = range(self.channels)[index]
            except TypeError:
                raise TypeError(f"channel slices take ints, got {shown(index)}") from None
        elif isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            if not -self.channels <= index < self.channels:
                raise ConvAlgebraError(
                    f"channel {index} is out of range for {self.channels} channels"
                )
            picked = range(self.channels)[index : index + 1 or None]
        else:
            raise TypeError(f"channels are indexed by an int or a slice, got {shown(index)}")
        if len(picked) == 0:
            raise ConvAlgebraError(f"the channel index {shown(index)} selects no channel")
        return _channels(self, list(picked), f"{self.formula()}[{_index_text(index)}]")

    def __eq__(self, other: object) -> bool:  # identity, so nodes can be dictionary keys
        return self is other

    __hash__ = object.__hash__


def _index_text(index: Any) -> str:
    if isinstance(index, slice):
        parts = ["" if v is None else str(v) for v in (index.start, index.stop)]
        return ":".join(parts) + (f":{index.step}" if index.step is not None else "")
    return str(index)


def _op(value: Any, what: str) -> Op:
    if not isinstance(value, Op):
        raise TypeError(f"{what} combines signal expressions, got {shown(value)}")
    return value


def walk(node: Op) -> list[Op]:
    """Every node of an expression, each once, children first."""
    seen: dict[int, Op] = {}

    def visit(n: Op) -> None:
        if id(n) in seen:
            return
        for c in n.children():
            visit(c)
        if isinstance(n, _Adjoint):
            visit(n.expr)
        seen[id(n)] = n

    visit(node)
    return list(seen.values())


# -------------------------------------------------------------------- signals
class Signal(Op):
    """A signal of every spatial size: ``(channels, n_1, …, n_d)``."""

    def __init__(self, name: str, channels: int, ndim: int) -> None:
        self.name, self.channels, self.ndim = name, channels, ndim

    def geometry(self, bindings: Bindings) -> tuple[Geometry, ...]:
        if self.name in bindings:
            return tuple(Geometry(g.rate) for g in bindings[self.name].geometry(bindings))
        return (Geometry(Fraction(1)),) * self.ndim

    def _shape(self, ctx: Context) -> tuple[int, ...]:
        if self.name not in ctx.signal_shapes:
            raise ConvAlgebraError(f"signal {self.name!r} has no size in this identity")
        return ctx.signal_shapes[self.name]

    def _lower(self, ctx: Context) -> Terms:
        offset, shape = ctx.source(self.name)
        return identity_terms(math.prod(shape), offset, ctx.n_src)

    def formula(self) -> str:
        return self.name


def signal(channels: int = 1, ndim: int = 1, name: str = "x") -> Signal:
    """An input signal of every spatial size ``n`` per axis.

    Examples
    --------
    >>> x = signal(channels=3, ndim=2)
    >>> x, x.channels, x.ndim
    (x, 3, 2)
    """
    for label, value, low, high in (("channels", channels, 1, 2**20), ("ndim", ndim, 1, 3)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{label} must be an int, got {shown(value)}")
        if not low <= value <= high:
            raise ConvAlgebraError(f"{label} must be in {low}..{high}, got {shown(value)}")
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise ConvAlgebraError(f"a signal name must be an ASCII identifier, got {shown(name)}")
    return Signal(name, int(channels), int(ndim))


# -------------------------------------------------------------------- gathers
IndexMap = Callable[[np.ndarray], np.ndarray]


class Gather(Op):
    """``y = x[src]``: every output entry is one input entry or zero.

    ``index_map`` takes the child's output as an array of flat indices (shape ``(C, *n)``) and
    returns the output's array of flat indices, ``-1`` for a zero: the numpy equivalent of the
    operator applied to positions. It raises :class:`Undefined` outside the domain.
    ``per_axis(geometry)`` gives this node's geometry from the child's.
    """

    def __init__(
        self,
        child: Op,
        index_map: IndexMap,
        text: str,
        axis_geometry: Callable[[tuple[Geometry, ...]], tuple[Geometry, ...]],
        channels: int,
        reverses: bool = False,
        permutes: bool = False,
        kind: str = "",
        args: tuple = (),
    ) -> None:
        self.child, self.index_map, self.text = child, index_map, text
        self.kind, self.args = kind, args  # the operator and its arguments, as the user gave them
        self.axis_geometry = axis_geometry
        self.channels, self.ndim = channels, child.ndim
        self.reverses = reverses or child.reverses
        self.permutes = permutes or child.permutes

    def children(self) -> tuple[Op, ...]:
        return (self.child,)

    def geometry(self, bindings: Bindings) -> tuple[Geometry, ...]:
        return self.axis_geometry(self.child.geometry(bindings))

    def _source(self, ctx: Context) -> np.ndarray:
        return ctx.memo(ctx.cache, self, lambda: self._map(ctx), "src")

    def _map(self, ctx: Context) -> np.ndarray:
        shape = self.child.shape(ctx)
        src = self.index_map(np.arange(math.prod(shape), dtype=np.int64).reshape(shape))
        if src.size == 0 or 0 in src.shape:
            raise Undefined(f"{self.text} is empty")
        return src

    def _shape(self, ctx: Context) -> tuple[int, ...]:
        return tuple(self._source(ctx).shape)

    def _lower(self, ctx: Context) -> Terms:
        inner = self.child.lower(ctx)
        return compose(
            gather_terms(self._source(ctx), inner.n_out), inner, ctx.monomials, ctx.max_terms
        )

    def formula(self) -> str:
        return self.text


def _same(geometry: tuple[Geometry, ...]) -> tuple[Geometry, ...]:
    return geometry


def _channels(child: Op, picked: list[int], text: str) -> Op:
    return Gather(
        child,
        lambda idx: idx[picked],
        text,
        _same,
        len(picked),
        kind="channels",
        args=(tuple(picked),),
    )


def split(expr: Op, split_size_or_sections: Any, dim: int = 0) -> tuple[Op, ...]:
    """``torch.split`` along the channel axis: chunks of one size, or a list of sizes.

    Examples
    --------
    >>> a, b = split(signal(channels=4), 2)
    >>> a, b.channels
    (x[0:2], 2)
    """
    _op(expr, "split")
    if dim != 0:
        raise ConvAlgebraError(f"split works on the channel axis (dim=0), got dim={shown(dim)}")
    c = expr.channels
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != c or any(s < 1 for s in sizes):
            raise ConvAlgebraError(
                f"split sizes {sizes} must be positive and add up to {c} channels"
            )
    else:
        step = split_size_or_sections
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"split takes an int or a list of ints, got {shown(step)}")
        step = int(step)
        if step < 1:
            raise ConvAlgebraError(
                f"split size must be positive, got {shown(split_size_or_sections)}"
            )
        sizes = [min(step, c - s) for s in range(0, c, step)]
    out, start = [], 0
    for s in sizes:
        out.append(expr[start : start + s])
        start += s
    return tuple(out)


# -------------------------------------------------------------------- sums and concatenation
def _common_rates(parts: list[Op], what: str, bindings: Bindings) -> tuple[Geometry, ...]:
    geos = [p.geometry(bindings) for p in parts]
    rates = {tuple(g.rate for g in geo) for geo in geos}
    if len(rates) != 1:
        raise ConvAlgebraError(
            f"{what}: the operands grow at different rates with the input size "
            f"({' vs '.join(str(tuple(str(r) for r in rs)) for rs in rates)}), so their shapes "
            "differ at almost every size"
        )
    return tuple(
        Geometry(
            geos[0][a].rate,
            max(g[a].boundary for g in geos),
            max(g[a].window for g in geos),
        )
        for a in range(len(geos[0]))
    )


class _Sum(Op):
    parts: list[tuple[Op, Fraction]]

    def __init__(self, parts: list[tuple[Op, Fraction]]) -> None:
        flat: list[tuple[Op, Fraction]] = []
        for op, s in parts:
            if isinstance(op, _Sum):
                flat += [(o, s * t) for o, t in op.parts]
            else:
                flat.append((op, s))
        if len({(op.channels, op.ndim) for op, _ in flat}) != 1:
            shapes = sorted({(op.channels, op.ndim) for op, _ in flat})
            raise ConvAlgebraError(f"cannot add expressions with (channels, ndim) {shapes}")
        self.parts = flat
        self.channels, self.ndim = flat[0][0].channels, flat[0][0].ndim
        self.reverses = any(op.reverses for op, _ in flat)
        self.permutes = any(op.permutes for op, _ in flat)

    def children(self) -> tuple[Op, ...]:
        return tuple(op for op, _ in self.parts)

    def geometry(self, bindings: Bindings) -> tuple[Geometry, ...]:
        return _common_rates(list(self.children()), "a sum", bindings)

    def _shape(self, ctx: Context) -> tuple[int, ...]:
        shapes = {op.shape(ctx) for op, _ in self.parts}
        if len(shapes) != 1:
            raise Undefined(f"the terms of a sum have shapes {sorted(shapes)}")
        return shapes.pop()

    def _lower(self, ctx: Context) -> Terms:
        self.shape(ctx)
        return combine([(op.lower(ctx), s) for op, s in self.parts])

    def formula(self) -> str:
        text = ""
        for op, s in self.parts:
            inner = op.formula()
            mag = abs(s)
            term = inner if mag == 1 else f"{mag}*{_wrapped(inner)}"
            if not text:
                text = f"-{_wrapped(term)}" if s < 0 else term
            else:
                text += f" - {term}" if s < 0 else f" + {term}"
        return text


def _wrapped(text: str) -> str:
    return f"({text})" if (" + " in text or " - " in text) else text


class _Cat(Op):
    def __init__(self, parts: list[Op]) -> None:
        if len({op.ndim for op in parts}) != 1:
            raise ConvAlgebraError("cat needs expressions of one spatial dimension")
        self.parts = parts
        self.channels = sum(op.channels for op in parts)
        self.ndim = parts[0].ndim
        self.reverses = any(op.reverses for op in parts)
        self.permutes = any(op.permutes for op in parts)

    def children(self) -> tuple[Op, ...]:
        return tuple(self.parts)

    def geometry(self, bindings: Bindings) -> tuple[Geometry, ...]:
        return _common_rates(self.parts, "cat", bindings)

    def _shape(self, ctx: Context) -> tuple[int, ...]:
        shapes = [op.shape(ctx) for op in self.parts]
        if len({s[1:] for s in shapes}) != 1:
            raise Undefined(f"cat of spatial shapes {[s[1:] for s in shapes]}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])

    def _lower(self, ctx: Context) -> Terms:
        total = math.prod(self.shape(ctx))
        blocks, start = [], 0
        for op in self.parts:
            t = op.lower(ctx)
            blocks.append((offset_rows(t, start, total), Fraction(1)))
            start += t.n_out
        return combine(blocks)

    def formula(self) -> str:
        return "cat([" + ", ".join(op.formula() for op in self.parts) + "], dim=0)"


def cat(tensors: list[Op], dim: int = 0) -> Op:
    """``torch.cat`` along the channel axis (``dim=0``: a signal has no batch axis).

    Examples
    --------
    >>> x = signal(channels=2)
    >>> cat([x, x[0]]).channels
    3
    """
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"cat takes a non-empty list of expressions, got {shown(tensors)}")
    if dim != 0:
        raise ConvAlgebraError(f"cat joins channels (dim=0), got dim={shown(dim)}")
    return _Cat([_op(t, "cat") for t in tensors])


# -------------------------------------------------------------------- adjoints
class _Adjoint(Op):
    """The transpose of ``x -> expr``, acting on ``target`` (a signal of ``expr``'s shape)."""

    def __init__(self, expr: Op, target: Signal | None) -> None:
        sources = {n.name: n for n in walk(expr) if isinstance(n, Signal)}
        if len(sources) != 1:
            raise ConvAlgebraError(
                f"adjoint needs an expression of one signal, got signals {sorted(sources)}"
            )
        self.expr = expr
        self.source = next(iter(sources.values()))
        self.target = target
        self.channels, self.ndim = self.source.channels, self.source.ndim
        self.reverses, self.permutes = expr.reverses, expr.permutes
        if target is not None:
            if target.ndim != expr.ndim or target.channels != expr.channels:
                raise ConvAlgebraError(
                    f"adjoint(expr, {target.name}): {target.name} has {target.channels} channels "
                    f"and {target.ndim} axes, expr has {expr.channels} and {expr.ndim}"
                )
            if target.name == self.source.name:
                raise ConvAlgebraError(
                    f"adjoint(expr, {target.name}) names the signal expr reads; name another one"
                )

    def children(self) -> tuple[Op, ...]:
        return (self.target,) if self.target is not None else ()

    def degree(self) -> int:
        return self.expr.degree()

    def geometry(self, bindings: Bindings) -> tuple[Geometry, ...]:
        inner = self.expr.geometry(bindings)
        own = self.source.geometry(bindings)
        return tuple(Geometry(o.rate, g.boundary, g.window) for o, g in zip(own, inner))

    def _shape(self, ctx: Context) -> tuple[int, ...]:
        if self.target is None and self.expr.shape(ctx) != self.source.shape(ctx):
            raise ConvAlgebraError(
                f"adjoint({self.expr.formula()}) acts on {self.source.name} itself only where the "
                f"output shape equals {self.source.name}'s; at size {ctx.n} it is "
                f"{self.expr.shape(ctx)} against {self.source.shape(ctx)}: name the signal it "
                f"acts on, adjoint(expr, y)"
            )
        return self.source.shape(ctx)

    def _lower(self, ctx: Context) -> Terms:
        self.shape(ctx)
        forward = self.expr.lower(ctx)  # source vector -> expr's output
        x_offset, x_shape = ctx.source(self.source.name)
        if self.target is None:
            t_offset = x_offset
        else:
            t_offset = ctx.source(self.target.name)[0]
        # restrict to the source's own block, transpose, and place on the target's block
        n_x = math.prod(x_shape)
        back = transpose_terms(
            Terms(
                forward.out,
                forward.src - x_offset,
                forward.mono,
                forward.coeff,
                forward.den,
                forward.n_out,
                n_x,
            )
        )
        return Terms(back.out, back.src + t_offset, back.mono, back.coeff, back.den, n_x, ctx.n_src)

    def formula(self) -> str:
        target = f", {self.target.name}" if self.target is not None else ""
        return f"adjoint({self.expr.formula()}{target})"


def adjoint(expr: Op, y: Signal | None = None) -> Op:
    """The transpose of the map ``x -> expr``: a map from ``expr``'s output shape to ``x``'s.

    Without ``y`` it acts on ``x`` itself (where ``expr`` keeps ``x``'s shape: stride 1 and
    'same' padding); ``adjoint(expr, y)`` names the signal it acts on, whose shape is then
    ``expr``'s output shape at every size.

    Examples
    --------
    >>> x = signal()
    >>> adjoint(x * 2)
    adjoint(2*x)
    """
    _op(expr, "adjoint")
    if y is not None and not isinstance(y, Signal):
        raise TypeError(f"adjoint(expr, y): y must be a signal, got {shown(y)}")
    return _Adjoint(expr, y)


def bindings_of(nodes: list[Op]) -> Bindings:
    """Signals bound by ``adjoint(expr, y)``: ``y``'s name to ``expr``."""
    found: Bindings = {}
    for n in nodes:
        if isinstance(n, _Adjoint) and n.target is not None:
            prior = found.get(n.target.name)
            if prior is not None and prior is not n.expr and prior.formula() != n.expr.formula():
                raise ConvAlgebraError(
                    f"signal {n.target.name!r} is bound to two expressions: "
                    f"{prior.formula()} and {n.expr.formula()}"
                )
            found[n.target.name] = n.expr
    return found
