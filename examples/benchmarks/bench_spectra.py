"""Singular values and operator norms of convolution layers: structure against dense SVD.

1. All singular values of a 16->16 channel 3x3 circular layer on 16x16: the FFT route against
   ``numpy.linalg.svd`` of the dense matrix from ``conv_matrix`` (same run, same weights),
   with the largest disagreement relative to the largest singular value.
2. The FFT route at 64->64 channels on 56x56 (dense: a 200,704 x 200,704 matrix, 300 GiB),
   and its scaling curve over input sizes.
3. The exact operator norm of a zero-padded 64->64, 56x56 layer by Lanczos, with its
   residual certificate, and the ratio to dense SVD at the largest size both run here.

Run: python examples/benchmarks/bench_spectra.py [--quick]
"""

from __future__ import annotations

import sys
import time

import numpy as np

import convalgebra as ca


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(fn, repeat=3):
    runs = [timed(fn) for _ in range(repeat)]
    return min(t for t, _ in runs), runs[0][1]


def weights(spec, seed=0):
    return np.random.default_rng(seed).standard_normal(spec.weight_shape)


def fft_vs_dense(channels=16, size=16):
    spec = ca.ConvSpec((channels, size, size), channels, 3, padding=1, padding_mode="circular")
    w = weights(spec)
    t_fft, fast = best_of(lambda: ca.singular_values(spec, w))
    t_dense, dense = timed(
        lambda: np.linalg.svd(ca.conv_matrix(spec, w).toarray(), compute_uv=False)
    )
    error = np.abs(fast - dense).max() / dense[0]
    print(
        f"{channels}->{channels} 3x3 circular on {size}x{size} ({dense.size} values): "
        f"FFT {t_fft * 1e3:.2f} ms, dense SVD {t_dense:.2f} s, ratio {t_dense / t_fft:,.0f}x, "
        f"max |difference| / sigma_max = {error:.1e}"
    )
    return t_dense, t_fft


def fft_scaling(channels=64, sizes=(7, 14, 28, 56)):
    print(f"FFT route, {channels}->{channels} 3x3 circular, all singular values:")
    times = []
    for size in sizes:
        spec = ca.ConvSpec((channels, size, size), channels, 3, padding=1, padding_mode="circular")
        w = weights(spec)
        t, values = best_of(lambda spec=spec, w=w: ca.singular_values(spec, w), repeat=2)
        per = t / (size * size)
        times.append(t)
        print(
            f"  {size:>3}x{size:<3} {values.size:>9,} values  {t:8.3f} s  "
            f"{per * 1e6:7.1f} us per frequency  sigma_max {values[0]:.4f}"
        )
    return times


def lanczos_norm(channels=64, size=56):
    spec = ca.ConvSpec((channels, size, size), channels, 3, padding=1)
    w = weights(spec)
    t, norm = timed(lambda: ca.operator_norm(spec, w))
    lo, hi = norm.interval
    rel = max(hi - float(norm), float(norm) - lo) / float(norm)
    print(
        f"zero-padded {channels}->{channels} 3x3 on {size}x{size}: exact norm {float(norm):.10f} "
        f"by {norm.method} in {t:.2f} s; residual {norm.residual:.2e} puts a singular value "
        f"within {rel:.1e} relative"
    )
    for b in norm.bounds:
        print(f"  {b.name:<9} {b.value:.10f}  (+{(b.value / float(norm) - 1) * 100:.3f} %)")
    return t


def lanczos_vs_dense(channels=16, size=16):
    spec = ca.ConvSpec((channels, size, size), channels, 3, padding=1)
    w = weights(spec)
    t_lanczos, norm = best_of(lambda: ca.operator_norm(spec, w))
    t_dense, dense = timed(
        lambda: np.linalg.svd(ca.conv_matrix(spec, w).toarray(), compute_uv=False)[0]
    )
    print(
        f"zero-padded {channels}->{channels} on {size}x{size}: Lanczos {t_lanczos:.3f} s, "
        f"dense SVD {t_dense:.2f} s, ratio {t_dense / t_lanczos:,.0f}x, "
        f"relative difference {abs(float(norm) - dense) / dense:.1e}"
    )


def main(quick: bool) -> None:
    if quick:
        fft_vs_dense(8, 8)
        fft_scaling(16, (7, 14))
        lanczos_norm(16, 14)
        lanczos_vs_dense(8, 8)
        return
    fft_vs_dense()
    fft_scaling()
    lanczos_norm()
    lanczos_vs_dense()


if __name__ == "__main__":
    main("--quick" in sys.argv)
