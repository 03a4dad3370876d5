"""All-size proofs at the index level, with sympy ``Sum``/``Indexed`` objects.

The fixed-size checks compare index tables; these prove the laws for every size at once:

* commutativity of the infinite convolution, ``(I ∗ K)(i) = Σ_m I(m) K(i−m) = Σ_m I(i−m) K(m)``,
  by the change of summation variable ``m → i − m`` (``Sum.change_index``);
* the same for the circular convolution of period ``N``: the change of variable shifts the
  summation range, and the summand is ``N``-periodic, so the range is normalised back to
  ``0 … N−1`` (sympy does not do this itself, issue #19685);
* translation equivariance ``conv(S_t I) = S_t conv(I)`` of the infinite and the circular
  convolution and cross-correlation.

Sums that differ only in the name of their index are compared with ``dummy_eq``; every
proof is also spot-checked by ``.doit()`` at small concrete sizes.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import sympy

from .common import eq, ne
from .result import CheckResult, Step

__all__ = ["commutativity_proof", "translation_proof"]

_I, _K = sympy.IndexedBase("I"), sympy.IndexedBase("K")


def _symbols(prefix: str, ndim: int):
    return (
        sympy.symbols(f"{prefix}1:{ndim + 1}", integer=True)
        if ndim > 1
        else (sympy.Symbol(prefix, integer=True),)
    )


def _limits(vars_, circular: bool, N):
    if circular:
        return [(v, 0, N - 1) for v in vars_]
    return [(v, -sympy.oo, sympy.oo) for v in vars_]


def _wrap(expr, circular: bool, N):
    return sympy.Mod(expr, N) if circular else expr


def _conv(A, B, i, m, flip: bool, circular: bool, N):
    """(A op B)(i) = Σ_m A(m) B(i − m) (convolution) or Σ_m A(m) B(i + m) (cross-correlation)."""
    sign = -1 if flip else 1
    a = A[tuple(_wrap(v, circular, N) for v in m)]
    b = B[tuple(_wrap(iv + sign * mv, circular, N) for iv, mv in zip(i, m))]
    return sympy.Sum(a * b, *_limits(m, circular, N))


def _spot_check(lhs, rhs, i, circular: bool, N, ndim: int) -> bool:
    """Evaluate both sides with ``.doit()`` at small sizes and positions; True if all agree.

    Infinite sums are evaluated for signals supported on ``0 … 1`` along every axis (the
    summation range is cut where both factors vanish).
    """
    for size in (3, 4) if circular else (2,):
        for pos in list(itertools.product(range(-1, 2), repeat=ndim))[:: max(1, 3 ** (ndim - 1))]:
            subs = {**({N: size} if circular else {}), **dict(zip(i, pos))}
            left, right = lhs.subs(subs), rhs.subs(subs)
            if not circular:
                left, right = _finite(left, size), _finite(right, size)
            if sympy.expand(left.doit() - right.doit()) != 0:
                return False
    return True


def _finite(expr, size: int):
    """Cut infinite sums to a window and zero the signals outside ``0 … size−1``."""
    window = size + 2
    cut = expr.replace(
        lambda e: isinstance(e, sympy.Sum),
        lambda e: sympy.Sum(e.function, *[(v, -window, window) for v, _, _ in e.limits]),
    ).doit()
    zero = {
        a: 0 for a in cut.atoms(sympy.Indexed) if any(not 0 <= int(k) < size for k in a.indices)
    }
    return cut.xreplace(zero)


@lru_cache(maxsize=32)
def commutativity_proof(ndim: int = 2, flip: bool = True, circular: bool = False) -> CheckResult:
    """Prove (or refute) ``I ∗ K = K ∗ I`` for every size, by a change of summation variable.

    Examples
    --------
    >>> r = commutativity_proof(ndim=1)
    >>> r.holds, r.steps[1].statement
    (True, Sum(I[i - n]*K[n], (n, -oo, oo)))
    >>> commutativity_proof(ndim=1, flip=False).holds
    False
    """
    N = sympy.Symbol("N", integer=True, positive=True)
    i, m, n = _symbols("i", ndim), _symbols("m", ndim), _symbols("n", ndim)
    lhs = _conv(_I, _K, i, m, flip, circular, N)
    rhs = _conv(_K, _I, i, m, flip, circular, N)
    changed = lhs
    for iv, mv, nv in zip(i, m, n):
        changed = changed.change_index(mv, iv - mv if flip else mv - iv, nv)
    steps = [
        Step(
            eq(sympy.Symbol(r"(I \ast K)(i)" if flip else r"(I \star K)(i)"), lhs),
            "definition" + (" (N-periodic signals)" if circular else ""),
        )
    ]
    justification = "change of summation variable " + ", ".join(
        f"{nv} = {iv - mv if flip else mv - iv}" for iv, mv, nv in zip(i, m, n)
    )
    steps.append(Step(changed, justification))
    periodic = True
    if circular:
        f = changed.function
        periodic = all(sympy.simplify(f.subs(nv, nv + N) - f) == 0 for nv in n)
        changed = sympy.Sum(changed.function, *[(nv, 0, N - 1) for nv in n])
        steps.append(
            Step(
                changed,
                "the summand is N-periodic in the summation variable, so the "
                "sum over any N consecutive values is the sum over 0 … N−1",
            )
        )
        changed = changed.replace(
            lambda e: isinstance(e, sympy.Mod) and e.args[0] in n, lambda e: e.args[0]
        )
        rhs = rhs.replace(
            lambda e: isinstance(e, sympy.Mod) and e.args[0] in m, lambda e: e.args[0]
        )
    equal = changed.dummy_eq(rhs) or sympy.expand(changed.function).dummy_eq(
        sympy.expand(rhs.function)
    )
    spot = _spot_check(lhs, _conv(_K, _I, i, m, flip, circular, N), i, circular, N, ndim)
    holds = bool(equal and spot and periodic)
    op = r"\ast" if flip else r"\star"
    steps.append(
        Step(
            eq(changed, rhs) if holds else ne(changed, rhs),
            f"$= (K {op} I)(i)$, the same sum up to the name of its index"
            if holds
            else "the arguments of I and K are mirrored: (I ⋆ K)(i) = (K ⋆ I)(−i)",
        )
    )
    name = "convolution" if flip else "cross-correlation"
    return CheckResult(
        "commutativity",
        holds,
        f"I op K = K op I for the {'circular ' if circular else ''}{name}, every size",
        (
            "The change of summation variable turns one sum into the other."
            if holds
            else "The change of variable turns I ⋆ K into K ⋆ I evaluated at −i, not at i."
        ),
        {"spot-checked with .doit() at small sizes": spot},
        None,
        None,
        tuple(steps),
        method="index proof (all sizes)",
    )


@lru_cache(maxsize=32)
def translation_proof(ndim: int = 2, flip: bool = False, circular: bool = False) -> CheckResult:
    """Prove ``conv(S_t I) = S_t conv(I)`` for every size and shift ``t``.

    Examples
    --------
    >>> translation_proof(ndim=1).holds
    True
    """
    N = sympy.Symbol("N", integer=True, positive=True)
    i, m, t = _symbols("i", ndim), _symbols("m", ndim), _symbols("t", ndim)
    shifted = sympy.IndexedBase("I'")
    base = _conv(_K, shifted, i, m, flip, circular, N)
    sub = {
        shifted[tuple(a.args[1:])]: _I[
            tuple(_wrap(arg - tv, circular, N) for arg, tv in zip(a.args[1:], t))
        ]
        for a in base.atoms(sympy.Indexed)
        if a.base == shifted
    }
    lhs = base.xreplace(sub)
    rhs = _conv(_K, _I, i, m, flip, circular, N).xreplace({iv: iv - tv for iv, tv in zip(i, t)})

    def norm(e):
        return e.replace(
            lambda q: isinstance(q, sympy.Mod),
            lambda q: sympy.Mod(sympy.expand(q.args[0]), q.args[1]),
        )

    equal = norm(lhs).dummy_eq(norm(rhs))
    op = "∗" if flip else "⋆"
    steps = (
        Step(
            eq(sympy.Symbol("I'(i)"), _I[tuple(_wrap(a - b, circular, N) for a, b in zip(i, t))]),
            "the translated input",
        ),
        Step(eq(sympy.Symbol(f"(K {op} I')(i)"), lhs), "definition, with I' substituted"),
        Step(eq(lhs, rhs), f"= (K {op} I)(i − t): the same sum, evaluated at i − t"),
    )
    return CheckResult(
        "translation_equivariance",
        bool(equal),
        f"K {op} (S_t I) = S_t (K {op} I) for the {'circular' if circular else 'infinite'} grid, "
        "every size and shift",
        "Substituting the translated input gives the original sum at i − t.",
        {},
        None,
        None,
        steps,
        method="index proof (all sizes)",
    )
