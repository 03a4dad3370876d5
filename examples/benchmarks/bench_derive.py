"""Time of ``derive("backward", spec)`` against input size and against the number of printed terms.

Each row derives the back-propagation of a single-channel 3x3 convolution on an n x n input
(best of ``--repeats``), counts the products it prints, and gives the time per printed
product relative to the first row of its sweep (1.0 = the same cost per printed term, i.e.
linear). The baseline measured in the same run is the earlier way of checking the general
formulas: expanding eq. 9.8/9.11/9.13 in sympy for every position
(``symbolic.backward.check_general_formulas``), at the sizes where it finishes in reasonable
time; its ratio to today's whole derivation is printed beside it.

    python examples/benchmarks/bench_derive.py [--repeats 3] [--sizes 8 16 28 33]
"""

from __future__ import annotations

import argparse
import time

import convalgebra as ca


def best(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def printed_products(derivation) -> int:
    """Products shown in the derivation's text (one ``*`` joins the two factors of each)."""
    return sum(
        line.count("*")
        for line in derivation.to_text().splitlines()
        if line.strip().startswith(("z", "dL/d")) and "Σ" not in line
    )


def size_sweep(sizes: list[int], repeats: int, baseline_max: int) -> None:
    from convalgebra.symbolic.backward import check_general_formulas, symbolic_backward

    print(
        f"{'n':>4} {'derive s':>9} {'printed':>8} {'s/1k terms':>11} {'rel':>5} {'old check s':>12} {'old/new':>8}"
    )
    first = None
    for n in sizes:
        spec = ca.ConvSpec((1, n, n), 1, 3)
        seconds, d = best(lambda spec=spec: ca.derive("backward", spec), repeats)
        terms = printed_products(d)
        per = seconds / terms * 1000
        first = first or per
        old = ""
        if n <= baseline_max:
            old_s, _ = best(lambda spec=spec: check_general_formulas(symbolic_backward(spec)), 1)
            old = f"{old_s:12.2f} {old_s / seconds:8.1f}"
        print(f"{n:4d} {seconds:9.3f} {terms:8d} {per:11.4f} {per / first:5.2f} {old}")


def terms_sweep(n: int, shown: list[int], repeats: int) -> None:
    print(f"\n{n}x{n} input, growing max_outputs (printed terms):")
    print(f"{'max_outputs':>11} {'derive s':>9} {'printed':>8} {'s/1k terms':>11} {'rel':>5}")
    spec = ca.ConvSpec((1, n, n), 1, 3)
    first = None
    for m in shown:
        seconds, d = best(lambda m=m: ca.derive("backward", spec, max_outputs=m), repeats)
        terms = printed_products(d)
        per = seconds / terms * 1000
        first = first or per
        print(f"{m:11d} {seconds:9.3f} {terms:8d} {per:11.4f} {per / first:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16, 20, 28, 33])
    parser.add_argument(
        "--baseline-max",
        type=int,
        default=12,
        help="largest n at which the old sympy expansion is timed",
    )
    args = parser.parse_args()
    ca.derive("backward", ca.ConvSpec((1, 5, 5), 1, 3))  # imports and caches warm
    size_sweep(args.sizes, args.repeats, args.baseline_max)
    terms_sweep(28, [8, 32, 128, 512], args.repeats)


if __name__ == "__main__":
    main()
