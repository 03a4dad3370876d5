"""Benchmark: translation-equivariance check with a symbolic kernel, structured vs naive.

The structured check (``convalgebra.check("translation_equivariance", spec)``) writes ``M S``
and ``T M`` as operator expressions and compares their tables of terms (``ops.prove`` at the
layer's size), a sort of O(nnz) entries. The naive route builds the dense sympy
matrices ``M`` (symbolic kernel), ``S`` and ``T`` (shifts) and expands ``M*S - T*M`` entry by
entry. The naive route is timed on growing inputs until it takes about a minute; the ratio is
reported at the largest size it finished, and the structured check is timed on the
3×64×64 → 16, 3×3 layer. Run: ``python examples/benchmarks/bench_identities.py``.
"""

from __future__ import annotations

import time

import sympy

import convalgebra as ca
from convalgebra.identities.transforms import shift

C_IN, C_OUT, K = 3, 16, 3
NAIVE_BUDGET = 60.0  # seconds: the largest naive run should take about this long


def structured(spec: ca.ConvSpec, repeat: int = 5) -> tuple[float, ca.CheckResult]:
    """Best-of-``repeat`` wall time of the structured check (cold caches every time)."""
    from convalgebra.connectivity import spatial_table

    best, result = float("inf"), None
    for _ in range(repeat):
        spatial_table.cache_clear()
        t = time.perf_counter()
        result = ca.check("translation_equivariance", spec, shift=1, axis=0)
        best = min(best, time.perf_counter() - t)
    return best, result


def _shift_matrix(channels: int, shape: tuple[int, int]) -> sympy.Matrix:
    src = shift((1, 0)).gather(shape)
    n = src.size
    m = sympy.zeros(channels * n, channels * n)
    for c in range(channels):
        for i, s in enumerate(src.tolist()):
            if s >= 0:
                m[c * n + i, c * n + s] = 1
    return m


def naive(spec: ca.ConvSpec) -> tuple[float, bool]:
    """Dense sympy: M*S - T*M, every entry expanded and compared with 0."""
    t = time.perf_counter()
    m = sympy.Matrix(ca.symbolic_matrix(spec))
    s = _shift_matrix(C_IN, spec.input_shape[1:])
    tt = _shift_matrix(C_OUT, spec.output_shape[1:])
    d = m * s - tt * m
    holds = all(sympy.expand(e) == 0 for e in d)
    return time.perf_counter() - t, holds


def main() -> None:
    print(f"translation equivariance, symbolic {K}x{K} kernel, {C_IN} -> {C_OUT} channels, shift 1")
    print(f"{'input':>8} {'naive (s)':>10} {'structured (s)':>15} {'ratio':>10}")
    rows = []
    sizes = [4, 8, 16, 24, 30, 36, 42, 48]
    for n, nxt in zip(sizes, sizes[1:] + [None]):
        spec = ca.ConvSpec((C_IN, n, n), C_OUT, K)
        t_naive, v_naive = naive(spec)
        t_fast, r = structured(spec)
        assert v_naive == r.holds, "the two routes disagree"
        rows.append((n, t_naive, t_fast))
        print(
            f"{n:>5}x{n:<2} {t_naive:>10.2f} {t_fast:>15.5f} {t_naive / t_fast:>9.0f}x", flush=True
        )
        # the naive cost grows like n^2.5 here; stop before a run would exceed the budget
        if nxt is None or t_naive * (nxt / n) ** 2.5 > 1.2 * NAIVE_BUDGET:
            break
    n, t_naive, t_fast = rows[-1]
    print(
        f"\nlargest naive size {n}x{n}: naive {t_naive:.1f} s, structured {t_fast * 1e3:.2f} ms, "
        f"ratio {t_naive / t_fast:,.0f}x (target >= 100x)"
    )
    for mode, pad in (("zeros", 0), ("circular", 1)):
        spec = ca.ConvSpec((C_IN, 64, 64), C_OUT, K, padding=pad, padding_mode=mode)
        t, r = structured(spec)
        fails = len(r.failing_positions or ())
        print(
            f"3x64x64 -> 16, 3x3, {mode} padding {pad}: {t * 1e3:.1f} ms "
            f"(target < 1 s); holds={r.holds}, failing outputs {fails}"
        )
    channel_pairs()


PAIR_CASES = [
    ("rotation_equivariance", ca.ConvSpec((3, 32, 32), 8, 3, padding=1)),
    ("translation_equivariance", ca.ConvSpec((3, 32, 32), 8, 3, padding=1)),
    ("translation_equivariance", ca.ConvSpec((3, 32, 32), 8, 3)),
    (
        "translation_equivariance",
        ca.ConvSpec((16, 32, 32), 16, 3, padding=1, padding_mode="circular"),
    ),
    ("rotation_equivariance", ca.ConvSpec((16, 32, 32), 16, 3, padding=1)),
    ("translation_equivariance", ca.ConvSpec((64, 56, 56), 64, 3, padding=1)),
    ("rotation_equivariance", ca.ConvSpec((64, 56, 56), 64, 3, padding=1)),
]


def _best(law: str, spec: ca.ConvSpec, repeat: int, **options) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        ca.check(law, spec, **options)
        best = min(best, time.perf_counter() - t)
    return best


def channel_pairs() -> None:
    """Channel-wise laws with a symbolic kernel: decided on one channel pair and expanded,
    against the whole layer's tables (``full_route``, the budget raised to 3,000,000
    products so that mid-sized layers run at all)."""
    from convalgebra.identities.channelwise import full_route

    print("\nchannel-wise laws, symbolic kernel: one channel pair vs the whole layer")
    for law, spec in PAIR_CASES:
        t_pair = _best(law, spec, 5)
        with full_route():
            try:
                t_full = _best(law, spec, 2, max_products=3_000_000)
                full = f"{t_full * 1e3:9.1f} ms {t_full / t_pair:8.1f}x"
            except ca.ConvAlgebraError:
                full = "  refused (over the budget)"
        c, *n = spec.input_shape
        mode = f", {spec.padding_mode}" if spec.padding_mode != "zeros" else ""
        name = f"{law.split('_')[0]:<12} {c}x{'x'.join(map(str, n))}->{spec.out_channels} pad {spec.padding[0][0]}{mode}"
        print(f"{name:<48} pair {t_pair * 1e3:8.1f} ms   whole layer {full}", flush=True)


if __name__ == "__main__":
    main()
