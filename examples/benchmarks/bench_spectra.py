"""Singular values and operator norms of convolution layers: structure against dense SVD.

1. All singular values of a 16->16 channel 3x3 circular layer on 16x16: the FFT route against
   ``numpy.linalg.svd`` of the dense matrix from ``conv_matrix`` (same run, same weights),
   with the largest disagreement relative to the largest singular value.
2. The FFT route at 64->64 channels on 56x56 (dense: a 200,704 x 200,704 matrix, 300 GiB),
   and its scaling curve over input sizes.
3. The norm of a zero-padded 64->64, 56x56 layer: the certified interval (Lanczos Rayleigh
   quotient below, circulant bound above) at tol=1e-10 and at tol=1e-3, against
   ``scipy.sparse.linalg.eigsh`` on the Gram operator built by hand from torch's ``conv2d`` and
   ``conv_transpose2d`` (1 thread, same tolerance), with the ratio of CPU times; and the ratio
   to dense SVD at the largest size both run here.
4. The circulant bound alone (the upper end) for that layer, and the Gram-iteration bound
   (``method="gram"``) it makes unnecessary.

CPU times (``time.process_time``) are what the computation costs on a loaded machine.

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


def cpu_timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def torch_gram_norm(spec, w, tol):
    """What one writes by hand: eigsh on A^T A with torch's conv2d / conv_transpose2d."""
    import torch
    import torch.nn.functional as F
    from scipy.sparse.linalg import LinearOperator, eigsh

    wt = torch.from_numpy(w)
    shape = (1, *spec.input_shape)

    def gram(v):
        x = torch.from_numpy(np.ascontiguousarray(v.ravel())).reshape(shape)
        y = F.conv2d(x, wt, padding=1)
        return F.conv_transpose2d(y, wt, padding=1).numpy().ravel()

    n = int(np.prod(spec.input_shape))
    v0 = np.random.default_rng(0).standard_normal(n)
    vals = eigsh(LinearOperator((n, n), matvec=gram, dtype=np.float64), k=1, tol=tol, v0=v0)[0]
    return float(np.sqrt(vals[0]))


def lanczos_norm(channels=64, size=56):
    import torch

    torch.set_num_threads(1)
    spec = ca.ConvSpec((channels, size, size), channels, 3, padding=1)
    w = weights(spec)
    cpu_ref, wall_ref, ref = cpu_timed(lambda: torch_gram_norm(spec, w, 1e-10))
    print(
        f"zero-padded {channels}->{channels} 3x3 on {size}x{size}: eigsh on the torch Gram "
        f"operator (tol 1e-10): {ref:.10f} in {cpu_ref:.2f} s CPU ({wall_ref:.2f} s wall)"
    )
    for tol, backend in ((1e-10, "numpy"), (1e-10, "torch"), (1e-3, "numpy")):
        cpu, wall, norm = cpu_timed(
            lambda t=tol, b=backend: ca.operator_norm(spec, w, tol=t, backend=b)
        )
        width = (norm.upper - norm.lower) / norm.upper
        print(
            f"  operator_norm tol={tol:g} backend={backend}: [{norm.lower:.10f}, {norm.upper:.10f}] "
            f"(width {width * 100:.3f} %, exact={norm.exact}, {norm.products} products) in "
            f"{cpu:.2f} s CPU ({wall:.2f} s wall), {cpu / cpu_ref:.2f}x the torch eigsh; "
            f"|lower - eigsh| / eigsh = {abs(norm.lower - ref) / ref:.1e}"
        )
    cpu, wall, best = cpu_timed(lambda: ca.operator_norm(spec, w, method="bound"))
    print(f"  upper end alone (circulant bound): {float(best):.10f} in {cpu:.2f} s CPU")
    cpu, wall, gram = cpu_timed(lambda: ca.operator_norm(spec, w, method="gram"))
    print(
        f"  Gram iteration (method='gram', 6 steps): {float(gram):.10f} in {cpu:.2f} s CPU "
        f"(relative to the circulant bound: {float(gram) / float(best) - 1:+.1e}; both rounded upwards by their margins)"
    )
    return cpu_ref


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
