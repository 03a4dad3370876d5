"""All-size proofs of 2-D identities against checking every size from 1 to 64 one by one.

For each identity (3x3 kernels, stride at most 2): the time of ``ops.prove`` deciding every
input size (every (n1, n2), not only squares), against the same engine deciding the 64 square
sizes 1x1 .. 64x64 one by one (``sizes=``), and against what a user writes by hand without
the library: evaluating both sides in torch on random inputs at those 64 sizes (a numeric
test, no proof), all measured in this run.

Run: python examples/benchmarks/bench_prove.py [--quick]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from convalgebra import ops

x = ops.signal(ndim=2)
w = ops.kernel("w", (1, 1, 3, 3))
v = ops.kernel("v", (1, 1, 3, 3))


def _torch():
    import torch
    import torch.nn.functional as F

    return torch, F


def _cases():
    torch, F = _torch()

    def roll(t):
        return torch.roll(t, 1, dims=2)

    def circ(t, k):
        return F.conv2d(F.pad(t, (1, 1, 1, 1), mode="circular"), k)

    def dilated(k):
        out = torch.zeros(1, 1, 5, 5, dtype=k.dtype)
        out[..., ::2, ::2] = k
        return out

    def full(a, b):  # the kernel of two valid convolutions in a row
        return F.conv2d(F.pad(b, (2, 2, 2, 2)), torch.flip(a, (2, 3)))

    return {
        "stride 2 = subsample(stride 1)": (
            ops.conv(x, w, stride=2, padding=1),
            ops.subsample(ops.conv(x, w, padding=1), 2),
            lambda t, k, _: F.conv2d(t, k, stride=2, padding=1),
            lambda t, k, _: F.conv2d(t, k, padding=1)[..., ::2, ::2],
        ),
        "dilation 2 = dilated kernel": (
            ops.conv(x, w, dilation=2, padding=2),
            ops.conv(x, ops.dilate_kernel(w, 2), padding=2),
            lambda t, k, _: F.conv2d(t, k, dilation=2, padding=2),
            lambda t, k, _: F.conv2d(t, dilated(k), padding=2),
        ),
        "zeros vs circular padding": (
            ops.conv(x, w, padding=1),
            ops.conv(x, w, padding=1, padding_mode="circular"),
            lambda t, k, _: F.conv2d(t, k, padding=1),
            lambda t, k, _: circ(t, k),
        ),
        "two convs = one (kernel_conv)": (
            ops.conv(ops.conv(x, v), w),
            ops.conv(x, ops.kernel_conv(v, w)),
            lambda t, k, j: F.conv2d(F.conv2d(t, j), k),
            lambda t, k, j: F.conv2d(t, full(k, j)),
        ),
        "circular shift commutes": (
            ops.shift(ops.conv(x, w, padding=1, padding_mode="circular"), (1, 0), mode="circular"),
            ops.conv(ops.shift(x, (1, 0), mode="circular"), w, padding=1, padding_mode="circular"),
            lambda t, k, _: roll(circ(t, k)),
            lambda t, k, _: circ(roll(t), k),
        ),
    }


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def torch_sweep(left, right, top: int) -> tuple[float, set[int]]:
    """Both sides in torch (float64) on random inputs at sizes 1..top: a numeric test."""
    torch, _ = _torch()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    k = torch.randn(1, 1, 3, 3, dtype=torch.float64, generator=gen)
    j = torch.randn(1, 1, 3, 3, dtype=torch.float64, generator=gen)
    agree = set()
    start = time.perf_counter()
    for n in range(1, top + 1):
        t = torch.randn(1, 1, n, n, dtype=torch.float64, generator=gen)
        try:
            a, b = left(t, k, j), right(t, k, j)
        except RuntimeError:  # a size the operation refuses
            continue
        if a.shape == b.shape and torch.allclose(a, b):
            agree.add(n)
    return time.perf_counter() - start, agree


def main() -> None:
    top = 16 if "--quick" in sys.argv else 64
    print(
        f"{'identity':32} {'all sizes':>10} {'1..' + str(top) + ' one by one':>17} {'ratio':>7}"
        f" {'torch, numeric':>15}  verdict"
    )
    ratios = []
    for name, (lhs, rhs, left, right) in _cases().items():
        t_all, proof = timed(ops.prove, lhs, rhs)
        squares = [(n, n) for n in range(1, top + 1)]
        t_sweep, swept = timed(ops.prove, lhs, rhs, sizes=squares)
        t_torch, agree = torch_sweep(left, right, top)
        # the three routes agree on the sizes they share
        assert all(((n, n) in swept.sizes) == ((n, n) in proof.sizes) for n in range(1, top + 1))
        assert agree == {n for n in range(1, top + 1) if (n, n) in proof.sizes}, name
        ratios.append(t_sweep / t_all)
        print(
            f"{name:32} {t_all:9.2f}s {t_sweep:16.2f}s {t_sweep / t_all:6.1f}x {t_torch:14.3f}s"
            f"  {'holds' if proof.holds else 'fails'}: {proof.sizes} (T={proof.thresholds}, "
            f"P={proof.periods}, {proof.decided} sizes decided)"
        )
    mean = float(np.exp(np.mean(np.log(ratios))))
    print(f"geometric mean: every size decided {mean:.1f}x faster than sizes 1..{top} one by one")


if __name__ == "__main__":
    main()
