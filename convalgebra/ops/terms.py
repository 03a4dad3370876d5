"""Term tables: a linear map whose entries are polynomials in kernel symbols, at one size.

An operator expression at a concrete size is a linear map from its source signals to its
output whose entries are polynomials in the kernel entries with rational coefficients. It is
held as parallel arrays, one row per term::

    y[out] += coeff / den * mono(w) * x[src]

with ``mono`` an integer key of a monomial in the kernel symbols (``0`` is the monomial 1)
and one common denominator ``den``. Two expressions are the same map, for every kernel, when
their tables hold the same multiset of ``(out, src, mono)`` with the same coefficients: a sort,
never a dense product. Composition joins two tables on the middle index; sums concatenate.

A monomial of degree at most ``D`` in ``S`` symbols is the sorted tuple of its symbol ids,
written in base ``S + 1`` (digit 0 marks an empty slot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .. import budget
from ..budget import OPS_MAX_TERMS
from ..errors import ConvAlgebraError

__all__ = [
    "Undefined",
    "Terms",
    "Monomials",
    "identity_terms",
    "gather_terms",
    "compose",
    "combine",
    "canonical",
    "transpose_terms",
    "offset_rows",
    "evaluate",
    "same_terms",
    "one_term_per_row",
    "DEFAULT_MAX_TERMS",
]

DEFAULT_MAX_TERMS = OPS_MAX_TERMS
_INT_LIMIT = 2**62


class Undefined(Exception):
    """An expression has no value at this size (a kernel wider than its padded input, a
    size that ``pixel_unshuffle`` does not divide, ...): the size is outside the domain."""


@dataclass(frozen=True)
class Terms:
    """``y[out] += coeff / den * mono(w) * x[src]`` for each row; ``n_out`` by ``n_src``."""

    out: np.ndarray
    src: np.ndarray
    mono: np.ndarray
    coeff: np.ndarray
    den: int
    n_out: int
    n_src: int
    copies: int | None = None  # the identity onto source offset ``copies`` (a bare signal)

    def __len__(self) -> int:
        return int(self.out.size)


class Monomials:
    """Monomials in ``n_symbols`` symbols of degree at most ``max_degree``, as int64 keys.

    Examples
    --------
    >>> m = Monomials(3, 2)
    >>> a, b = m.symbol(np.array([2])), m.symbol(np.array([0]))
    >>> m.digits(m.multiply(a, b)).tolist()   # w1 * w3: ids 0 and 2, stored as digits 1 and 3
    [[1, 3]]
    """

    def __init__(self, n_symbols: int, max_degree: int) -> None:
        self.base = int(n_symbols) + 1
        self.max_degree = max(1, int(max_degree))
        if self.base**self.max_degree >= _INT_LIMIT:
            raise ConvAlgebraError(
                f"{n_symbols:,} kernel symbols in products of degree {max_degree} do not fit "
                "the exact monomial keys (base**degree < 2**62); use smaller or fewer kernels"
            )
        self._powers = self.base ** np.arange(self.max_degree, dtype=np.int64)

    def symbol(self, ids: np.ndarray) -> np.ndarray:
        """The keys of the degree-1 monomials of symbol ``ids`` (0-based)."""
        return np.asarray(ids, dtype=np.int64) + 1

    def digits(self, keys: np.ndarray) -> np.ndarray:
        """``(len(keys), max_degree)`` digits: symbol id + 1 per slot, 0 for an empty slot."""
        keys = np.asarray(keys, dtype=np.int64)
        return (keys[:, None] // self._powers[None, :]) % self.base

    def encode(self, digits: np.ndarray) -> np.ndarray:
        """Keys of rows of digits in any order (zeros anywhere); refuses a degree too high."""
        if (np.count_nonzero(digits, axis=1) > self.max_degree).any():
            raise ConvAlgebraError(
                "a product of kernels exceeds the degree the keys were sized for"
            )
        ordered = np.sort(np.where(digits == 0, self.base, digits), axis=1)
        ordered = np.where(ordered == self.base, 0, ordered)[:, : self.max_degree]
        return (ordered * self._powers[None, : ordered.shape[1]]).sum(axis=1)

    def multiply(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Element-wise product of two arrays of keys."""
        if not b.any():
            return a
        if not a.any():
            return b
        if self.max_degree >= 2 and int(a.max()) < self.base and int(b.max()) < self.base:
            # two monomials of degree at most 1: the sorted digit pair, written directly
            low, high = np.minimum(a, b), np.maximum(a, b)
            return np.where(low == 0, high, low + high * self.base)
        return self.encode(np.concatenate((self.digits(a), self.digits(b)), axis=1))

    def degree(self, keys: np.ndarray) -> np.ndarray:
        return np.count_nonzero(self.digits(keys), axis=1)


def identity_terms(n: int, offset: int, n_src: int) -> Terms:
    """The map copying source entries ``offset .. offset + n`` to outputs ``0 .. n``."""
    out = np.arange(n, dtype=np.int64)
    ones = budget.ones(n, dtype=np.int64)
    return Terms(out, out + offset, budget.zeros(n, dtype=np.int64), ones, 1, n, n_src, offset)


def gather_terms(src: np.ndarray, n_src: int) -> Terms:
    """``y[i] = x[src[i]]`` (``src[i] < 0``: zero), as a term table."""
    src = np.asarray(src, dtype=np.int64).ravel()
    rows = np.flatnonzero(src >= 0)
    ones = budget.ones(rows.size, dtype=np.int64)
    return Terms(rows, src[rows], budget.zeros(rows.size, dtype=np.int64), ones, 1, src.size, n_src)


def _check_product(a: np.ndarray, b: np.ndarray) -> None:
    if a.size and b.size:
        if int(np.abs(a).max()) * int(np.abs(b).max()) >= _INT_LIMIT:
            raise ConvAlgebraError(
                "the exact coefficients of this expression exceed 2**62; use smaller constants"
            )


def compose(a: Terms, b: Terms, monomials: Monomials, max_terms: int = DEFAULT_MAX_TERMS) -> Terms:
    """The table of ``a ∘ b``: ``a`` maps ``b``'s outputs (``a.src``) to its own outputs.

    Every term of ``a`` reading middle index ``m`` meets every term of ``b`` writing ``m``;
    coefficients and monomials multiply. The result is counted before it is built.
    """
    if a.n_src != b.n_out:
        raise ConvAlgebraError(f"cannot compose maps of sizes {a.n_src} and {b.n_out}")
    if b.copies is not None:  # b copies a signal: a's terms, read from that signal's block
        return Terms(a.out, a.src + b.copies, a.mono, a.coeff, a.den, a.n_out, b.n_src)
    order = np.argsort(b.out, kind="stable")
    counts = np.bincount(b.out, minlength=b.n_out)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    reps = counts[a.src]
    total = int(reps.sum())
    if total > max_terms:
        raise ConvAlgebraError(
            f"composing these operators needs {total:,} terms at this size, over "
            f"max_terms={max_terms:,}; prove at smaller sizes (size=, sizes=) or raise max_terms="
        )
    which = np.repeat(np.arange(a.out.size), reps)
    offset = np.arange(total) - np.repeat(np.cumsum(reps) - reps, reps)
    picked = order[starts[a.src][which] + offset]
    _check_product(a.coeff, b.coeff)
    product = Terms(
        a.out[which],
        b.src[picked],
        monomials.multiply(a.mono[which], b.mono[picked]),
        a.coeff[which] * b.coeff[picked],
        a.den * b.den,
        a.n_out,
        b.n_src,
    )
    if one_term_per_row(a) and not a.mono.any():
        return product  # rows of a gather copy b's canonical rows: nothing to merge
    return canonical(product)


def one_term_per_row(t: Terms) -> bool:
    """Rows strictly increasing: every output row has one term (a gather's table)."""
    return t.out.size < 2 or bool((t.out[1:] > t.out[:-1]).all())


def combine(parts: list[tuple[Terms, Fraction]]) -> Terms:
    """``sum(scale * part)`` over tables of one shape, with a common denominator."""
    first = parts[0][0]
    dens = [t.den * s.denominator for t, s in parts]
    common = math.lcm(*dens)
    coeffs = []
    for (t, s), d in zip(parts, dens):
        factor = (common // d) * s.numerator
        _check_product(t.coeff, np.array([factor]))
        coeffs.append(t.coeff * factor)
    return canonical(
        Terms(
            np.concatenate([t.out for t, _ in parts]),
            np.concatenate([t.src for t, _ in parts]),
            np.concatenate([t.mono for t, _ in parts]),
            np.concatenate(coeffs),
            common,
            first.n_out,
            first.n_src,
        )
    )


def canonical(t: Terms) -> Terms:
    """Equal ``(out, src, mono)`` rows summed, zero rows dropped, sorted, fraction reduced."""
    if t.out.size == 0:
        return Terms(t.out, t.src, t.mono, t.coeff, 1, t.n_out, t.n_src)
    if int(np.abs(t.coeff).max()) * t.out.size >= _INT_LIMIT:
        raise ConvAlgebraError("the exact coefficients of this expression exceed 2**62")
    position = t.out * t.n_src + t.src  # signals and outputs are bounded by max_terms (Context)
    top = int(t.mono.max()) + 1
    if top == 1:
        order = np.argsort(position, kind="stable")
    elif t.n_out * t.n_src * top < _INT_LIMIT:
        order = np.argsort(position * top + t.mono, kind="stable")
    else:
        order = np.lexsort((t.mono, position))
    position, mono, coeff = position[order], t.mono[order], t.coeff[order]
    new = budget.empty(position.size, dtype=bool)
    new[0] = True
    np.not_equal(position[1:], position[:-1], out=new[1:])
    new[1:] |= mono[1:] != mono[:-1]
    starts = np.flatnonzero(new)
    summed = coeff[starts] if starts.size == coeff.size else np.add.reduceat(coeff, starts)
    keep = summed != 0
    rows = starts[keep]
    summed = summed[keep]
    den = t.den
    if den > 1 and summed.size:  # lowest terms over every coefficient: one map, one table
        g = math.gcd(den, int(np.gcd.reduce(np.abs(summed))))
        if g > 1:
            summed, den = summed // g, den // g
    out, src = np.divmod(position[rows], t.n_src)
    return Terms(out, src, mono[rows], summed, den, t.n_out, t.n_src)


def same_terms(a: Terms, b: Terms) -> bool:
    """Whether two canonical tables are one map (same rows, coefficients and denominator)."""
    return (
        a.n_out == b.n_out
        and a.den == b.den
        and a.out.size == b.out.size
        and bool(np.array_equal(a.out, b.out))
        and bool(np.array_equal(a.src, b.src))
        and bool(np.array_equal(a.mono, b.mono))
        and bool(np.array_equal(a.coeff, b.coeff))
    )


def transpose_terms(t: Terms) -> Terms:
    """The transpose: outputs and sources exchanged."""
    return canonical(Terms(t.src, t.out, t.mono, t.coeff, t.den, t.n_src, t.n_out))


def offset_rows(t: Terms, offset: int, n_out: int) -> Terms:
    """The same terms written ``offset`` rows further down a map with ``n_out`` rows."""
    return Terms(t.out + offset, t.src, t.mono, t.coeff, t.den, n_out, t.n_src)


def _integers(values: np.ndarray) -> np.ndarray | None:
    """``values`` as int64 when every entry is an integer below 2**62 (an int, or a Fraction
    n/1); ``None`` otherwise."""
    out = []
    for v in values.tolist():
        if isinstance(v, Fraction):
            if v.denominator != 1:
                return None
            v = v.numerator
        elif not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            return None
        if abs(int(v)) >= _INT_LIMIT:
            return None
        out.append(int(v))
    return np.array(out, dtype=np.int64)


def _evaluate_int64(t: Terms, x: np.ndarray, values: np.ndarray, monomials: Monomials):
    """:func:`evaluate` in int64 arithmetic when every input is an integer and the largest
    possible sum fits (a bound computed first); ``None`` otherwise."""
    xi, vi = _integers(x), _integers(values)
    if xi is None or vi is None or t.out.size == 0:
        return None
    digits = monomials.digits(t.mono)
    top_x = int(np.abs(xi).max(initial=0))
    top_v = int(np.abs(vi).max(initial=0))
    bound = int(np.abs(t.coeff).max()) * top_x * max(1, top_v) ** digits.shape[1] * t.out.size
    if bound >= _INT_LIMIT:
        return None
    product = t.coeff * xi[t.src]
    for slot in range(digits.shape[1]):
        d = digits[:, slot]
        used = d > 0
        if used.any():
            factor = budget.ones(d.size, dtype=np.int64)
            factor[used] = vi[d[used] - 1]
            product = product * factor
    total = budget.zeros(t.n_out, dtype=np.int64)
    np.add.at(total, t.out, product)
    if t.den == 1:
        return total.tolist()  # ints (each an exact rational with denominator 1)
    return [Fraction(v, t.den) for v in total.tolist()]


def evaluate(t: Terms, x: np.ndarray, symbol_values: np.ndarray, monomials: Monomials) -> list:
    """Exact output values of a table for integer (or Fraction) ``x`` and symbol values.

    Returns a list of ints or :class:`~fractions.Fraction`, one per output, computed with
    Python integers (no rounding, no overflow), or in int64 where a bound computed first
    shows that no sum can overflow.
    """
    x = np.asarray(x, dtype=object).ravel()
    values = np.asarray(symbol_values, dtype=object).ravel()
    fast = _evaluate_int64(t, x, values, monomials)
    if fast is not None:
        return fast
    product = t.coeff.astype(object) * x[t.src]
    digits = monomials.digits(t.mono)
    for slot in range(digits.shape[1]):
        d = digits[:, slot]
        used = d > 0
        if used.any():
            factor = budget.ones(d.size, dtype=object)
            factor[used] = values[d[used] - 1]
            product = product * factor
    total = budget.zeros(t.n_out, dtype=object)
    np.add.at(total, t.out, product)
    return [Fraction(v) / t.den for v in total]  # ints, or Fractions from rational inputs
