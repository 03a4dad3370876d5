r"""General index formulas of a layer, printed and checked from one structure.

A :class:`IndexFormula` is a left side, summation variables with their ranges, conditions
("such that") and a product of indexed factors, e.g. eq. 9.8 of the Deep Learning book

.. math:: Z_{i,j,k} = \sum_{l=1}^{C'} \sum_{m=1}^{3} \sum_{n=1}^{3}
          V_{\gamma(i) + l,\, 2(j - 1) + m,\, 2(k - 1) + n}\, K_{i,l,m,n}.

Every index is an :class:`~convalgebra.derivations.model.Expr` (LaTeX, text and the sympy value),
so the formula prints exactly what :meth:`IndexFormula.terms` evaluates: the summation
variables run over a numpy grid, the conditions filter it, and the factors are looked up in
arrays (1-based, each with its own origin). :func:`layer_formulas` builds the formulas of any
spec (groups with their offset, padding with its mode, stride, dilation, flip, tiles,
transposed with its own index map, 1-, 2- or 3-D); :func:`check_formula` compares a formula
at sample positions with the terms read off the layer's triple table, by integer ids, so the
check costs O(positions x terms) and no sympy.

Notes
-----
With 1-based indices, output ``j`` reads through tap ``m`` the padded input position
``s(j - 1) + d(m - 1) + 1`` (stride ``s``, dilation ``d``); with ``G`` groups, output channel
``i`` reads the input channels ``γ(i) + l``, ``l = 1 … C_in/G``, where
``γ(i) = (C_in/G)⌊(i - 1)/(C_out/G)⌋``. The kernel gradient is the same sum with ``G`` in
place of ``K`` (eq. 9.11), the input gradient collects, at each padded position, every
(output, tap) pair that reads it (eq. 9.13); a transposed layer scatters through the same map.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import budget
from ..spec import ConvSpec
from .model import Expr

__all__ = [
    "IndexFormula",
    "Factor",
    "Bound",
    "LayerFormulas",
    "layer_formulas",
    "check_formula",
    "ints",
    "sample_positions",
]

OUT = {1: ("j",), 2: ("j", "k"), 3: ("j", "k", "t")}
TAP = {1: ("m",), 2: ("m", "n"), 3: ("m", "n", "u")}
POS = {1: ("p",), 2: ("p", "q"), 3: ("p", "q", "r")}


def _sym(name: str):
    import sympy

    return sympy.Symbol(name, integer=True)


def _var(name: str) -> Expr:
    return Expr(name, name, _sym(name))


def _num(value: int) -> Expr:
    import sympy

    return Expr(str(value), str(value), sympy.Integer(value))


def _plus(*parts: Expr, constant: int = 0) -> Expr:
    """``p1 + p2 + … ± constant`` (parts already printed in textbook form)."""
    parts = tuple(p for p in parts if p.tex != "0")
    tex = " + ".join(p.tex for p in parts) or "0"
    text = " + ".join(p.text for p in parts) or "0"
    value = sum((p.value for p in parts), 0) + constant
    if constant and parts:
        sign = "-" if constant < 0 else "+"
        tex, text = f"{tex} {sign} {abs(constant)}", f"{text} {sign} {abs(constant)}"
    elif constant:
        tex = text = str(constant)
    return Expr(tex, text, value)


def _scaled(coefficient: int, var: str, shift: int = 1) -> Expr:
    """``c(v - shift)`` printed textbook style (``v`` alone when ``c = 1`` and the shift is absorbed)."""
    v = _sym(var)
    if coefficient == 1:
        return Expr(var, var, v)
    return Expr(
        f"{coefficient}({var} - {shift})",
        f"{coefficient}*({var} - {shift})",
        coefficient * (v - shift),
    )


def position(out: str, tap: str, s: int, d: int, shift: int = 0) -> Expr:
    """Padded (``shift = 0``) position ``s(j - 1) + d(m - 1) + 1 - shift`` read by output ``j`` through tap ``m``.

    Examples
    --------
    >>> position("j", "m", 2, 1).tex, position("j", "m", 1, 1).text, position("j", "m", 1, 2, 1).tex
    ('2(j - 1) + m', 'j + m - 1', 'j + 2(m - 1) - 1')
    """
    constant = (-1 if s == 1 else 0) + (-1 if d == 1 else 0) + 1 - shift
    return _plus(_scaled(s, out), _scaled(d, tap), constant=constant)


def _floor_div(var: str, minus: int, by: int) -> Expr:
    import sympy

    v = _sym(var)
    if by == 1:
        return Expr(f"({var} - {minus})", f"({var} - {minus})", v - minus)
    return Expr(
        rf"\lfloor ({var} - {minus})/{by} \rfloor",
        f"floor(({var} - {minus})/{by})",
        sympy.floor((v - minus) / by),
    )


def group_offset(var: str, per_in: int, per_out: int, groups: int) -> Expr | None:
    """``γ(var) = per_in ⌊(var - 1)/per_out⌋``, the first input channel (minus 1) of var's group; None for one group."""
    if groups == 1:
        return None
    f = _floor_div(var, 1, per_out)
    if per_in == 1:
        return f
    return Expr(f"{per_in}{f.tex}", f"{per_in}*{f.text}", per_in * f.value)


@dataclass(frozen=True)
class Factor:
    """An indexed factor ``name_{indices}``; ``tensor`` names the array it is looked up in."""

    tex: str
    text: str
    tensor: str
    indices: tuple[Expr, ...]

    def render(self) -> tuple[str, str]:
        if not self.indices:
            return self.tex, self.text
        if "%s" in self.tex:
            return (
                self.tex
                % (r",\," if any(" " in i.tex for i in self.indices) else ",").join(
                    i.tex for i in self.indices
                ),
                self.text % ", ".join(i.text for i in self.indices),
            )
        sep = r",\," if any(" " in i.tex for i in self.indices) else ","
        return (
            f"{self.tex}_{{{sep.join(i.tex for i in self.indices)}}}",
            f"{self.text}[{', '.join(i.text for i in self.indices)}]",
        )


@dataclass(frozen=True)
class Bound:
    """A summation variable and its range ``lo … hi``; ``shown=False`` when a condition fixes it."""

    var: str
    lo: int
    hi: int
    shown: bool = True


@dataclass(frozen=True, eq=False)
class IndexFormula:
    """``lhs = Σ_{bounds, conditions} Π factors`` with 1-based indices.

    ``alias`` is an optional middle side (``∂L/∂K_{i,l,m,n}``) printed between the left side
    and the sum. ``conditions`` are pairs ``(left, right)`` of index expressions that must be
    equal for a term to count.
    """

    lhs: Factor
    bounds: tuple[Bound, ...]
    factors: tuple[Factor, ...]
    conditions: tuple[tuple[Expr, Expr], ...] = ()
    alias: tuple[str, str] | None = None
    functions: tuple[tuple[str, Callable], ...] = ()
    _cache: dict = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- printing
    def _sum_tex(self) -> str:
        shown = "".join(rf"\sum_{{{b.var}={b.lo}}}^{{{b.hi}}} " for b in self.bounds if b.shown)
        hidden = [b.var for b in self.bounds if not b.shown]
        if hidden:
            rows = [",".join(hidden)] + [f"{a.tex} = {b.tex}" for a, b in self.conditions]
            stack = r" \\ ".join(rows)
            shown += rf"\sum_{{\substack{{{stack}}}}} "
        elif self.conditions:
            conds = ", ".join(f"{a.tex} = {b.tex}" for a, b in self.conditions)
            shown += rf"\sum_{{{conds}}} "
        return shown

    def _sum_text(self) -> str:
        shown = "".join(f"Σ[{b.var}={b.lo}..{b.hi}] " for b in self.bounds if b.shown)
        hidden = [b.var for b in self.bounds if not b.shown]
        if hidden or self.conditions:
            conds = ", ".join(f"{a.text} = {b.text}" for a, b in self.conditions)
            shown += f"Σ[{','.join(hidden)}: {conds}] " if hidden else f"Σ[{conds}] "
        return shown

    @property
    def left(self) -> Expr:
        return Expr(*self.lhs.render())

    @property
    def right(self) -> Expr:
        products = [f.render() for f in self.factors]
        tex = self._sum_tex() + r"\, ".join(p[0] for p in products)
        text = self._sum_text() + " * ".join(p[1] for p in products)
        return Expr(tex.strip(), text.strip())

    def sides(self) -> tuple[Expr, ...]:
        middle = (Expr(*self.alias),) if self.alias else ()
        return (self.left, *middle, self.right)

    # -------------------------------------------------------------- evaluation
    def _compiled(self) -> tuple[list, list, list]:
        if "f" not in self._cache:
            import sympy

            free = [_sym(s.name) for i in self.lhs.indices for s in i.value.free_symbols]
            args = list(dict.fromkeys(free + [_sym(b.var) for b in self.bounds]))
            modules = [dict(self.functions), "numpy"]
            compile_ = lambda e: sympy.lambdify(args, e, modules=modules)  # noqa: E731
            conds = [compile_(a.value - b.value) for a, b in self.conditions]
            factors = [[compile_(i.value) for i in f.indices] for f in self.factors]
            self._cache["f"] = (args, conds, factors)
        return self._cache["f"]

    def terms(self, at: tuple[int, ...], tensors: dict[str, Any]) -> list[np.ndarray]:
        """The factors of every term at the left-side index ``at`` (1-based), one array per factor.

        ``tensors`` maps a factor's ``tensor`` name to ``(array, origin)`` (``array[idx - origin]``
        is the entry at index ``idx``; origin 1 for 1-based tensors) or to an
        :class:`IndexFormula` (a factor standing for another formula, evaluated recursively;
        it must then be the only factor). Reading outside an array raises ``IndexError``.
        """
        args, conds, factors = self._compiled()
        names = [str(a) for a in args]
        lhs_vars = [i.value for i in self.lhs.indices]
        env: dict[str, Any] = {}
        for v, x in zip(lhs_vars, at, strict=False):
            env[str(v)] = np.int64(x)
        ranges = [np.arange(b.lo, b.hi + 1) for b in self.bounds]
        grids = np.meshgrid(*ranges, indexing="ij") if ranges else []
        for b, g in zip(self.bounds, grids, strict=False):
            env[b.var] = g.ravel()
        n = grids[0].size if grids else 1
        values = [np.broadcast_to(np.asarray(env[name]), (n,)) for name in names]
        keep = budget.ones(n, dtype=bool)
        for cond in conds:
            keep &= np.broadcast_to(np.asarray(cond(*values)) == 0, (n,))
        values = [v[keep] for v in values]
        out = []
        for factor, index_fns in zip(self.factors, factors, strict=False):
            source = tensors[factor.tensor]
            index = [
                np.broadcast_to(np.asarray(fn(*values)), (int(keep.sum()),)).astype(np.int64)
                for fn in index_fns
            ]
            if isinstance(source, IndexFormula):
                return _nested(source, index, tensors)
            array, origin = source
            local = [ix - o for ix, o in zip(index, origin, strict=False)]
            if any(
                ((ix < 0) | (ix >= size)).any()
                for ix, size in zip(local, array.shape, strict=False)
            ):
                raise IndexError(f"{factor.tex} read outside its range at {at}")
            out.append(array[tuple(local)] if local else np.broadcast_to(array, (int(keep.sum()),)))
        return out


def _nested(formula: IndexFormula, index: list[np.ndarray], tensors: dict) -> list[np.ndarray]:
    parts = [
        formula.terms(tuple(int(ix[k]) for ix in index), tensors) for k in range(len(index[0]))
    ]
    if not parts:
        return [np.zeros(0, dtype=np.int64) for _ in formula.factors]
    return [np.concatenate([p[f] for p in parts]) for f in range(len(formula.factors))]


# ------------------------------------------------------------------ the layer's formulas
_ROLES = ("w", "a", "g")


@dataclass(frozen=True, eq=False)
class Check:
    """A formula, the tensors it reads (with their roles), its left side's range and the expected terms."""

    formula: IndexFormula
    shape: tuple[int, ...]
    expected: Callable[[tuple[int, ...]], np.ndarray]
    tensors: dict
    sizes: dict


@dataclass(frozen=True, eq=False)
class LayerFormulas:
    """The general formulas of one layer and what each is checked against.

    ``layer`` is the layer's own index map (``z`` from ``w`` and ``a``); ``forward``,
    ``kernel`` and ``padded`` are eq. 9.8, 9.11 and 9.13 in the book's letters (``None`` when
    the book does not cover the layer: tiles, transposed layers have no ``forward``/``padded``);
    ``input`` gives ``∂L/∂a``. ``notes`` define the letters the formulas use.
    """

    spec: ConvSpec
    checks: dict[str, Check]
    notes: dict[str, str]
    sizes: dict[str, int]

    def __getitem__(self, key: str) -> IndexFormula:
        return self.checks[key].formula

    def __contains__(self, key: str) -> bool:
        return key in self.checks

    def evaluate(self, key: str, values: dict[str, np.ndarray]) -> np.ndarray:
        """Formula ``key`` instantiated with numbers at every left-side position.

        ``values`` holds numeric arrays ``"w"``, ``"a"`` and ``"g"`` (kernel, input,
        upstream gradient) in the layer's shapes; returns an array of the left side's shape.
        """
        check = self.checks[key]
        numeric: dict[str, Any] = {}
        for name, source in check.tensors.items():
            if isinstance(source, IndexFormula):
                numeric[name] = source
                continue
            ids, origin, role = source
            flat = np.asarray(values[role], dtype=float).ravel()
            numeric[name] = (np.where(ids >= 0, flat[np.maximum(ids, 0)], 0.0), origin)
        out = np.zeros(check.shape)
        for idx in np.ndindex(*check.shape):
            parts = check.formula.terms(tuple(v + 1 for v in idx), numeric)
            out[idx] = np.prod(np.vstack(parts), axis=0).sum() if parts and len(parts[0]) else 0.0
        return out

    def check(self, key: str, limit: int = 24) -> int:
        """Compare formula ``key`` with the triple table at :func:`sample_positions`; return how many."""
        return check_formula(self.checks[key], sample_positions(self.checks[key].shape, limit))


def sample_positions(
    shape: tuple[int, ...], limit: int = 24, seed: int = 0
) -> list[tuple[int, ...]]:
    """1-based positions of an index space to check: all of them, or the corners and a random sample.

    Examples
    --------
    >>> sample_positions((2, 2))
    [(1, 1), (1, 2), (2, 1), (2, 2)]
    >>> len(sample_positions((30, 30), 10)), sample_positions((30, 30), 10)[:2]
    (10, [(1, 1), (1, 30)])
    """
    total = math.prod(shape)
    if total <= limit:
        return [tuple(int(v) + 1 for v in idx) for idx in np.ndindex(*shape)]
    corners = {
        tuple(c)
        for c in np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij"))
        .reshape(len(shape), -1)
        .T
    }
    chosen = sorted(corners)[:limit]
    rng = np.random.default_rng(seed)
    flat = rng.choice(total, size=min(total, limit), replace=False)
    for f in flat:
        if len(chosen) >= limit:
            break
        idx = tuple(int(v) for v in np.unravel_index(int(f), shape))
        if idx not in corners:
            chosen.append(idx)
    return [tuple(int(v) + 1 for v in idx) for idx in chosen]


def _codes(parts: list[np.ndarray], roles: list[str], sizes: dict[str, int]) -> np.ndarray:
    """One int64 per term, from the ids of its factors (terms with a zero factor dropped), sorted."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    n = len(parts[0])
    ids = {r: budget.zeros(n, dtype=np.int64) for r in _ROLES}
    keep = budget.ones(n, dtype=bool)
    for part, role in zip(parts, roles, strict=False):
        part = np.asarray(part, dtype=np.int64)
        keep &= part >= 0
        ids[role] = part + 1
    code = budget.zeros(n, dtype=np.int64)
    for r in _ROLES:
        code = code * (sizes[r] + 1) + ids[r]
    return np.sort(code[keep])


def check_formula(check: Check, positions: list[tuple[int, ...]]) -> int:
    """Evaluate ``check.formula`` at each position and compare with ``check.expected``.

    Raises
    ------
    AssertionError
        A position where the printed formula gives other terms than the layer's table (the
        message names the formula and the position).
    """
    roles_of = {
        name: role
        for name, (_, _, role) in ((k, v) for k, v in check.tensors.items() if isinstance(v, tuple))
    }
    arrays = {k: (v[0], v[1]) if isinstance(v, tuple) else v for k, v in check.tensors.items()}
    sizes = check.sizes
    for at in positions:
        formula = check.formula
        try:
            parts = formula.terms(at, arrays)
        except IndexError as exc:
            raise AssertionError(f"{formula.left.text}: {exc}") from None
        factors = _leaf_factors(formula, arrays)
        got = _codes(parts, [roles_of[f.tensor] for f in factors], sizes)
        want = check.expected(at)
        if got.shape != want.shape or (got != want).any():
            raise AssertionError(
                f"{formula.left.text} at {at}: the printed formula gives {got.size} terms "
                f"that differ from the layer's {want.size}"
            )
    return len(positions)


def _leaf_factors(formula: IndexFormula, arrays: dict) -> tuple[Factor, ...]:
    first = formula.factors[0]
    if isinstance(arrays.get(first.tensor), IndexFormula):
        return _leaf_factors(arrays[first.tensor], arrays)
    return formula.factors


def _axis_map(size: int, padding: tuple[int, int], mode: str) -> np.ndarray:
    """0-based input position read at each 0-based padded coordinate; -1 for a zero."""
    from ..connectivity import axis_table

    probe = ConvSpec((1, size), 1, 1, padding=(tuple(padding),), padding_mode=mode)
    return axis_table(probe, 0)[:, 0]


def _padded_ids(shape: tuple[int, ...], padding, mode: str) -> np.ndarray:
    """Flat id (C order) of the entry each padded position copies; -1 for a zero."""
    maps = [_axis_map(n, p, mode) for n, p in zip(shape[1:], padding, strict=False)]
    grids = np.meshgrid(*maps, indexing="ij")
    valid = np.logical_and.reduce([g >= 0 for g in grids])
    ids = np.arange(math.prod(shape)).reshape(shape)
    out = ids[(slice(None), *(np.maximum(g, 0) for g in grids))]
    return np.where(valid[None], out, -1)


def _pi(axis: int, size: int, padding, mode: str) -> tuple[str, Callable]:
    table = _axis_map(size, padding, mode) + 1  # 1-based; 0 marks a zero

    def lookup(p):
        p = np.asarray(p, dtype=np.int64)
        inside = (p >= 1) & (p <= table.size)
        return np.where(inside, table[np.clip(p - 1, 0, table.size - 1)], 0)

    return f"pi_{axis + 1}", lookup


def _pi_expr(axis: int, arg: Expr) -> Expr:
    import sympy

    return Expr(
        rf"\pi_{{{axis + 1}}}({arg.tex})",
        f"pi_{axis + 1}({arg.text})",
        sympy.Function(f"pi_{axis + 1}")(arg.value),
    )


@dataclass(frozen=True)
class _Layout:
    """Letters and channel bookkeeping of the (forward) convolution behind a spec."""

    n: int
    c_in: int
    c_out: int
    groups: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    mode: str
    flip: bool

    @property
    def per_in(self) -> int:
        return self.c_in // self.groups

    @property
    def per_out(self) -> int:
        return self.c_out // self.groups

    def gamma(self, var: str) -> Expr | None:
        return group_offset(var, self.per_in, self.per_out, self.groups)

    def in_channel(self, out_var: str) -> Expr:
        """Input channel read by output channel ``out_var`` through in-group index ``l``."""
        g = self.gamma(out_var)
        if g is not None and self.per_in == self.per_out == 1:
            return _var(out_var)  # depthwise: channel i reads channel i
        parts = [g] if g is not None else []
        if self.per_in > 1:
            return _plus(*parts, _var("l"))
        return _plus(*parts, constant=1) if parts else _num(1)

    def tap(self, axis: int, var: str) -> Expr:
        """Kernel index used at tap ``var`` (reversed for a true convolution)."""
        import sympy

        if not self.flip:
            return _var(var)
        k = self.kernel[axis] + 1
        return Expr(f"{k} - {var}", f"{k} - {var}", sympy.Integer(k) - _sym(var))

    def position(self, axis: int, out: str, tap: str, shift: int = 0) -> Expr:
        return position(out, tap, self.stride[axis], self.dilation[axis], shift)

    def same_group(self, out_var: str, in_var: str) -> tuple[Expr, Expr]:
        return _floor_div(out_var, 1, self.per_out), _floor_div(in_var, 1, self.per_in)


def ints(value: Any) -> tuple[int, ...]:
    """A spec's normalised per-axis tuple, typed as such."""
    return tuple(int(v) for v in value)


def _layout(spec: ConvSpec) -> _Layout:
    f = spec.forward
    return _Layout(
        f.ndim,
        f.in_channels,
        f.out_channels,
        f.groups,
        ints(f.kernel_size),
        ints(f.stride),
        ints(f.dilation),
        tuple(f.padding),
        f.padding_mode,
        f.flip,
    )


def _expected(
    table: Callable[[], tuple],
    sizes: dict,
    key: str,
    lhs_id: Callable[[tuple[int, ...]], int],
    roles: tuple[str, str],
) -> Callable:
    """Expected term codes at a left-side position: the triples whose ``key`` id matches.

    ``table()`` returns the layer's ``(rows, cols, weights)``; it is built on first use.
    """
    cache: dict = {}

    def expected(at: tuple[int, ...]) -> np.ndarray:
        if not cache:
            rows, cols, weights = table()
            by = {"row": rows, "col": cols, "weight": weights}
            cache["ids"] = {"w": weights, "a": cols, "g": rows}
            cache["order"] = np.argsort(by[key], kind="stable")
            cache["keys"] = by[key][cache["order"]]
        target = lhs_id(at)
        lo, hi = np.searchsorted(cache["keys"], [target, target + 1])
        sel = cache["order"][lo:hi]
        return _codes([cache["ids"][r][sel] for r in roles], list(roles), sizes)

    return expected


def _table(spec: ConvSpec) -> Callable[[], tuple]:
    from functools import lru_cache

    from ..connectivity import layer_rows_cols, triples

    @lru_cache(maxsize=1)
    def build() -> tuple:
        t = triples(spec)
        rows, cols = layer_rows_cols(spec, t)
        return rows, cols, t.weight_index

    return build


def layer_formulas(spec: ConvSpec) -> LayerFormulas:
    """The general formulas of ``spec`` (see the module notes) with their checks.

    Examples
    --------
    >>> f = layer_formulas(ConvSpec((1, 5, 5), 1, 3, stride=2))
    >>> print(f["layer"].left.text, "=", f["layer"].right.text)
    z[j, k] = Σ[m=1..3] Σ[n=1..3] w[m, n] * a[2*(j - 1) + m, 2*(k - 1) + n]
    >>> print(f["kernel"].right.text)
    Σ[j=1..2] Σ[k=1..2] G[i, j, k] * V[1, 2*(j - 1) + m, 2*(k - 1) + n]
    >>> f.check("kernel"), f.check("input")
    (9, 24)
    """
    if spec.channel_table is not None:
        return LayerFormulas(spec, {}, {}, {})
    table = _table(spec)
    sizes = {
        "w": math.prod(spec.weight_shape),
        "a": math.prod(spec.input_shape),
        "g": math.prod(spec.output_shape),
    }
    build = _transposed if spec.transposed else _forward
    checks, notes = build(spec, table, sizes)
    return LayerFormulas(spec, checks, notes, sizes)


def _flipped(ids: np.ndarray, n: int) -> np.ndarray:
    """The kernel's taps reversed on every spatial axis (a true convolution's ``K``)."""
    index: Any = (Ellipsis, *(slice(None, None, -1),) * n)
    return ids[index]


def _ravel(shape: tuple[int, ...]) -> Callable[[tuple[int, ...]], int]:
    return lambda at: int(np.ravel_multi_index(tuple(v - 1 for v in at), shape))


def _tile_indices(spec: ConvSpec, outs: tuple[str, ...]) -> list[Expr]:
    import sympy

    if spec.tile is None:
        return []
    return [
        Expr(rf"(({o} - 1) \bmod {t}) + 1", f"Mod({o} - 1, {t}) + 1", sympy.Mod(_sym(o) - 1, t) + 1)
        for o, t in zip(outs, ints(spec.tile), strict=False)
    ]


_MODE_WORDS = {
    "zeros": "zero outside the input (zero padding)",
    "circular": "the input repeated periodically (circular padding)",
    "reflect": "the input mirrored at each edge without repeating the edge (reflect padding)",
    "replicate": "the edge value repeated (replicate padding)",
}


def _padding_note(name: str, source: str, lay: _Layout) -> str:
    n = lay.n
    pos, shifts = POS[n], [b for b, _ in lay.padding]
    if not any(b + a for b, a in lay.padding):
        return f"${name} = {source}$ (no padding)."
    inner = ",".join(f"{p} - {b}" if b else p for p, b in zip(pos, shifts, strict=False))
    sizes = ", ".join(f"$P_{{{a + 1}}} = ({b}, {c})$" for a, (b, c) in enumerate(lay.padding))
    return (
        f"${name}$ is ${source}$ padded by {sizes} (before, after) on the spatial axes: "
        f"${name}_{{c,{','.join(pos)}}} = {source}_{{c,{inner}}}$ inside, {_MODE_WORDS[lay.mode]}."
    )


def _forward(spec: ConvSpec, table: Callable, sizes: dict) -> tuple[dict, dict]:
    lay = _layout(spec)
    n, outs, taps = lay.n, OUT[lay.n], TAP[lay.n]
    single = spec.in_channels == spec.out_channels == 1
    out_shape, in_shape = spec.output_shape, spec.input_shape
    w_ids = np.arange(sizes["w"]).reshape(spec.weight_shape)
    g_ids = np.arange(sizes["g"]).reshape(out_shape)
    v_ids = _padded_ids(in_shape, lay.padding, lay.mode)
    shifts = [b for b, _ in lay.padding]
    tap_bounds = tuple(Bound(m, 1, k) for m, k in zip(taps, lay.kernel, strict=False))
    l_bound = (Bound("l", 1, lay.per_in),) if lay.per_in > 1 else ()
    checks: dict[str, Check] = {}
    # the layer's own index map: z from w and a, a read at unpadded coordinates
    chan = () if single else (_var("i"),)
    w_index = (
        *_tile_indices(spec, outs),
        *chan,
        *(() if single else (_var("l") if lay.per_in > 1 else _num(1),)),
        *(lay.tap(a, m) for a, m in enumerate(taps)),
    )
    a_index = (
        *(() if single else (lay.in_channel("i"),)),
        *(
            lay.position(a, o, m, shifts[a])
            for a, (o, m) in enumerate(zip(outs, taps, strict=False))
        ),
    )
    w_arr = w_ids.reshape(*ints(spec.tile or ()), *ints(spec.kernel_size)) if single else w_ids
    a_arr = v_ids[0] if single else v_ids
    a_origin = tuple(([] if single else [1]) + [1 - b for b in shifts])
    layer = IndexFormula(
        Factor("z", "z", "z", (*chan, *map(_var, outs))),
        (*([] if single else l_bound), *tap_bounds),
        (Factor("w", "w", "w", w_index), Factor("a", "a", "a", a_index)),
    )
    tensors = {"w": (w_arr, (1,) * w_arr.ndim, "w"), "a": (a_arr, a_origin, "a")}
    lhs = _ravel(out_shape) if not single else (lambda at: _ravel(out_shape)((1, *at)))
    checks["layer"] = Check(
        layer,
        out_shape[1:] if single else out_shape,
        _expected(table, sizes, "row", lhs, ("w", "a")),
        tensors,
        sizes,
    )
    notes = {
        "K": "$K = w$"
        if not lay.flip
        else "$K_{i,l,"
        + ",".join(taps)
        + "} = w_{i,l,"
        + ",".join(lay.tap(a, m).tex for a, m in enumerate(taps))
        + "}$, the flipped kernel (this layer is a true convolution)",
        "V": _padding_note("V", "a", lay),
    }
    if lay.groups > 1:
        g = lay.gamma("i")
        assert g is not None
        reads = (
            "the input channel $\\gamma(i) + 1$"
            if lay.per_in == 1
            else f"the input channels $\\gamma(i) + 1, \\ldots, \\gamma(i) + {lay.per_in}$"
        )
        notes["gamma"] = (
            f"With $G = {lay.groups}$ groups, output channel $i$ reads {reads} where $\\gamma(i) = {g.tex}$."
        )
    if spec.tile is not None:
        return checks, notes
    k_ids = _flipped(w_ids, n) if lay.flip else w_ids
    book = {
        "V": (v_ids, (1,) * v_ids.ndim, "a"),
        "K": (k_ids, (1,) * k_ids.ndim, "w"),
        "G": (g_ids, (1,) * g_ids.ndim, "g"),
    }
    kl = _var("l") if lay.per_in > 1 else _num(1)
    v_index = (
        lay.in_channel("i"),
        *(lay.position(a, o, m) for a, (o, m) in enumerate(zip(outs, taps, strict=False))),
    )
    forward = IndexFormula(
        Factor("Z", "Z", "Z", (_var("i"), *map(_var, outs))),
        (*l_bound, *tap_bounds),
        (Factor("V", "V", "V", v_index), Factor("K", "K", "K", (_var("i"), kl, *map(_var, taps)))),
    )
    checks["forward"] = Check(
        forward,
        out_shape,
        _expected(table, sizes, "row", _ravel(out_shape), ("w", "a")),
        book,
        sizes,
    )
    k_lhs = (_var("i"), kl, *map(_var, taps))
    kernel = IndexFormula(
        Factor("g", "g", "g", k_lhs),
        tuple(Bound(o, 1, s) for o, s in zip(outs, out_shape[1:], strict=False)),
        (Factor("G", "G", "G", (_var("i"), *map(_var, outs))), Factor("V", "V", "V", v_index)),
        alias=(
            r"\frac{\partial L}{\partial K_{" + ",".join(x.tex for x in k_lhs) + "}}",
            "dL/dK[" + ", ".join(x.text for x in k_lhs) + "]",
        ),
    )
    k_shape = (lay.c_out, lay.per_in, *lay.kernel)
    checks["kernel"] = Check(
        kernel,
        k_shape,
        _expected(
            table, sizes, "weight", lambda at: int(k_ids[tuple(v - 1 for v in at)]), ("a", "g")
        ),
        book,
        sizes,
    )
    checks.update(_padded_gradient(spec, lay, book, sizes, k_ids, g_ids))
    return checks, notes


IN = {1: ("x",), 2: ("x", "y"), 3: ("x", "y", "v")}


def _grad_factor(name: str, indices: tuple[Expr, ...]) -> Factor:
    return Factor(
        r"\frac{\partial L}{\partial " + name + "_{%s}}", "dL/d" + name + "[%s]", name, indices
    )


def _in_group_channel(lay: _Layout, in_var: str, out_var: str) -> Expr:
    """``in_var - γ(out_var)``: the in-group index of input channel ``in_var`` for output channel ``out_var``."""
    g = lay.gamma(out_var)
    if g is None:
        return _var(in_var)
    return Expr(f"{in_var} - {g.tex}", f"{in_var} - {g.text}", _sym(in_var) - g.value)


def _channel_sum(lay: _Layout, var: str, other: str, count: int) -> tuple[tuple[Bound, ...], tuple]:
    """Sum over ``var`` (1..count), restricted to ``other``'s group when there are groups."""
    if lay.groups == 1:
        return (Bound(var, 1, count),), ()
    return (Bound(var, 1, count, shown=False),), (lay.same_group(var, other),)


def _padded_gradient(
    spec: ConvSpec, lay: _Layout, book: dict, sizes: dict, k_ids, g_ids
) -> dict[str, Check]:
    """Eq. 9.13 (``h = ∂L/∂V`` at every padded position) and ``∂L/∂a`` collected from it."""
    from dataclasses import replace

    n, outs, taps, pos = lay.n, OUT[lay.n], TAP[lay.n], POS[lay.n]
    padded = tuple(book["V"][0].shape)
    i_bound, i_cond = _channel_sum(lay, "i", "c", lay.c_out)
    conditions = i_cond + tuple(
        (lay.position(a, o, m), _var(p))
        for a, (o, m, p) in enumerate(zip(outs, taps, pos, strict=False))
    )
    bounds = (
        *i_bound,
        *(Bound(m, 1, k) for m, k in zip(taps, lay.kernel, strict=False)),
        *(Bound(o, 1, s, shown=False) for o, s in zip(outs, spec.output_shape[1:], strict=False)),
    )
    lhs = (_var("c"), *map(_var, pos))
    h = IndexFormula(
        Factor("h", "h", "h", lhs),
        bounds,
        (
            Factor("K", "K", "K", (_var("i"), _in_group_channel(lay, "c", "i"), *map(_var, taps))),
            Factor("G", "G", "G", (_var("i"), *map(_var, outs))),
        ),
        conditions,
        alias=(
            r"\frac{\partial L}{\partial V_{" + ",".join(x.tex for x in lhs) + "}}",
            "dL/dV[" + ", ".join(x.text for x in lhs) + "]",
        ),
    )
    flat = replace(
        spec,
        input_shape=padded,
        padding=((0, 0),) * (len(padded) - 1),
        padding_mode="zeros",
        padding_word=None,
        bias=False,
    )
    padded_sizes = dict(sizes, a=math.prod(padded))
    checks = {
        "padded": Check(
            h,
            padded,
            _expected(_table(flat), padded_sizes, "col", _ravel(padded), ("w", "g")),
            book,
            padded_sizes,
        )
    }
    ins = IN[n]
    shifts = [b for b, _ in lay.padding]
    if lay.mode == "zeros":
        grad = IndexFormula(
            _grad_factor("a", (_var("c"), *map(_var, ins))),
            (),
            (
                Factor(
                    "h",
                    "h",
                    "h",
                    (
                        _var("c"),
                        *(_plus(_var(x), constant=b) for x, b in zip(ins, shifts, strict=False)),
                    ),
                ),
            ),
        )
    else:
        grad = IndexFormula(
            _grad_factor("a", (_var("c"), *map(_var, ins))),
            tuple(Bound(p, 1, size, shown=False) for p, size in zip(pos, padded[1:], strict=False)),
            (Factor("h", "h", "h", (_var("c"), *map(_var, pos))),),
            tuple(
                (_pi_expr(a, _var(p)), _var(x))
                for a, (p, x) in enumerate(zip(pos, ins, strict=False))
            ),
            functions=tuple(
                _pi(a, size, pad, lay.mode)
                for a, (size, pad) in enumerate(
                    zip(spec.input_shape[1:], lay.padding, strict=False)
                )
            ),
        )
    checks["input"] = Check(
        grad,
        spec.input_shape,
        _expected(_table(spec), sizes, "col", _ravel(spec.input_shape), ("w", "g")),
        dict(book, h=h),
        sizes,
    )
    return checks


def _transposed(spec: ConvSpec, table, sizes) -> tuple[dict, dict]:
    """A transposed layer scatters: output ``p`` collects every (input ``j``, tap ``m``) whose forward window lands on it."""
    lay = _layout(spec)  # the forward convolution: its input is this layer's output
    n, outs, taps, pos = lay.n, OUT[lay.n], TAP[lay.n], POS[lay.n]
    single = spec.in_channels == spec.out_channels == 1
    out_shape, in_shape = spec.output_shape, spec.input_shape
    w_ids = np.arange(sizes["w"]).reshape(spec.weight_shape)
    a_ids = np.arange(sizes["a"]).reshape(in_shape)
    shifts = [b for b, _ in lay.padding]
    c_bound, c_cond = _channel_sum(lay, "c", "i", lay.c_out)
    # forward layout: c_out = this layer's in_channels; γ(c) picks this layer's output channels
    hits = []
    functions = []
    for a, (o, m, p) in enumerate(zip(outs, taps, pos, strict=False)):
        target = lay.position(a, o, m)
        if lay.mode == "zeros":
            hits.append((target, _plus(_var(p), constant=shifts[a])))
        else:
            hits.append((_pi_expr(a, target), _var(p)))
            functions.append(_pi(a, out_shape[1 + a], lay.padding[a], lay.mode))
    bounds = (
        *(() if single else c_bound),
        *(Bound(m, 1, k) for m, k in zip(taps, lay.kernel, strict=False)),
        *(Bound(o, 1, s, shown=False) for o, s in zip(outs, in_shape[1:], strict=False)),
    )
    chan = () if single else (_var("i"),)
    w_index = (
        *(() if single else (_var("c"), _in_group_channel(lay, "i", "c"))),
        *(lay.tap(a, m) for a, m in enumerate(taps)),
    )
    layer = IndexFormula(
        Factor("z", "z", "z", (*chan, *map(_var, pos))),
        bounds,
        (
            Factor("w", "w", "w", w_index),
            Factor("a", "a", "a", (*(() if single else (_var("c"),)), *map(_var, outs))),
        ),
        (*(() if single else c_cond), *hits),
        functions=tuple(functions),
    )
    w_arr = w_ids.reshape(spec.kernel_size) if single else w_ids
    a_arr = a_ids[0] if single else a_ids
    tensors = {"w": (w_arr, (1,) * w_arr.ndim, "w"), "a": (a_arr, (1,) * a_arr.ndim, "a")}
    lhs = _ravel(out_shape) if not single else (lambda at: _ravel(out_shape)((1, *at)))
    checks = {
        "layer": Check(
            layer,
            out_shape[1:] if single else out_shape,
            _expected(table, sizes, "row", lhs, ("w", "a")),
            tensors,
            sizes,
        )
    }
    # backward: the upstream gradient, padded as the forward convolution pads its input, is convolved
    k_ids = _flipped(w_ids, n) if lay.flip else w_ids
    gpad = _padded_ids(out_shape, lay.padding, lay.mode)
    book = {
        "K": (k_ids, (1,) * k_ids.ndim, "w"),
        "Ghat": (gpad, (1,) * gpad.ndim, "g"),
        "a": (a_ids, (1,) * a_ids.ndim, "a"),
    }
    kl = _var("l") if lay.per_in > 1 else _num(1)
    ghat = (
        lay.in_channel("c"),
        *(lay.position(a, o, m) for a, (o, m) in enumerate(zip(outs, taps, strict=False))),
    )
    k_lhs = (_var("c"), kl, *map(_var, taps))
    kernel = IndexFormula(
        _grad_factor("K", k_lhs),
        tuple(Bound(o, 1, s) for o, s in zip(outs, in_shape[1:], strict=False)),
        (
            Factor("a", "a", "a", (_var("c"), *map(_var, outs))),
            Factor(r"\hat{G}", "Ghat", "Ghat", ghat),
        ),
    )
    checks["kernel"] = Check(
        kernel,
        (lay.c_out, lay.per_in, *lay.kernel),
        _expected(
            table, sizes, "weight", lambda at: int(k_ids[tuple(v - 1 for v in at)]), ("a", "g")
        ),
        book,
        sizes,
    )
    l_bound = (Bound("l", 1, lay.per_in),) if lay.per_in > 1 else ()
    grad = IndexFormula(
        _grad_factor("a", (_var("c"), *map(_var, outs))),
        (*l_bound, *(Bound(m, 1, k) for m, k in zip(taps, lay.kernel, strict=False))),
        (Factor("K", "K", "K", k_lhs), Factor(r"\hat{G}", "Ghat", "Ghat", ghat)),
    )
    checks["input"] = Check(
        grad, in_shape, _expected(table, sizes, "col", _ravel(in_shape), ("w", "g")), book, sizes
    )
    notes = {
        "K": "$K = w$"
        if not lay.flip
        else "$K_{c,l,"
        + ",".join(taps)
        + "} = w_{c,l,"
        + ",".join(lay.tap(a, m).tex for a, m in enumerate(taps))
        + "}$, the flipped kernel",
        "Ghat": _padding_note(r"\hat{G}", "G", lay),
    }
    gamma_c = lay.gamma("c")
    if gamma_c is not None:
        notes["gamma"] = (
            f"With $G = {lay.groups}$ groups, input channel $c$ writes the output channels "
            f"$\\gamma(c) + 1, \\ldots, \\gamma(c) + {lay.per_in}$ where $\\gamma(c) = {gamma_c.tex}$."
        )
    return checks, notes
