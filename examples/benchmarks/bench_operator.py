"""Benchmark: ``conv_operator`` products against torch's float64 convolution, one thread.

In one run, best of 25 runs interleaved round-robin, each timed by this process's CPU time
(the load of a shared machine then falls on every route alike and waiting is not counted), 64 -> 64 channels, 3x3, padding 1 on 56x56 (and a
stride-2 and a reflect-padded layer), BLAS and torch on one thread each:
1. ``matvec`` (numpy: one BLAS product per tap accumulating in place on the channels-last
   stride phases of the padded input) against ``torch.nn.functional.conv2d``, and
   ``rmatvec`` (the same products transposed, accumulating into the phases) against
   ``conv_transpose2d``;
2. the other ways to write it by hand, measured here for the comparison: im2col (all taps
   copied into one block) and a single BLAS product; for the adjoint, one product per tap
   added onto each strided view;
3. ``backend="torch"``; and the largest difference to torch's result (must be <= 1e-12).

On a machine where torch's BLAS is faster than numpy's, torch's float64 ``conv2d`` costs about
what numpy's single im2col GEMM alone costs (the GEMM is most of the work), so the numpy
forward stays about 1.1-1.3x behind it there; the adjoint is at or below torch's.

Run: python examples/benchmarks/bench_operator.py [--quick]
"""

from __future__ import annotations

import os

# one BLAS thread, set before numpy loads its BLAS
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def interleaved(fns: dict, repeat: int = 25) -> dict:
    """Best time of each function, the runs interleaved round-robin so that the load of a
    shared machine falls on all of them alike."""
    times: dict = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    return {name: min(runs) for name, runs in times.items()}


def im2col(xp, w, out, stride):
    """All taps' strided views copied into one block, one GEMM (the hand-written alternative)."""
    c_out, c_in, kh, kw = w.shape
    cols = np.empty((c_in, kh, kw, out[0], out[1]))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + (out[0] - 1) * stride + 1, stride)
            cols[:, i, j] = xp[:, rows, j : j + (out[1] - 1) * stride + 1 : stride]
    return (w.reshape(c_out, -1) @ cols.reshape(c_in * kh * kw, -1)).ravel()


def per_tap_adjoint(y, w, shape, stride):
    """The adjoint by one product per tap, added onto the tap's strided view of the grid."""
    c_out, c_in, kh, kw = w.shape
    out = y.shape[1:]
    grid = np.zeros((c_in, (out[0] - 1) * stride + kh, (out[1] - 1) * stride + kw))
    flat_y = y.reshape(c_out, -1)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + (out[0] - 1) * stride + 1, stride)
            cols = slice(j, j + (out[1] - 1) * stride + 1, stride)
            grid[:, rows, cols] += (w[:, :, i, j].T @ flat_y).reshape(c_in, *out)
    return grid[:, 1 : 1 + shape[0], 1 : 1 + shape[1]]


def case(channels, size, stride=1, mode="zeros"):
    import torch
    import torch.nn.functional as F

    import convalgebra as ca

    spec = ca.ConvSpec(
        (channels, size, size), channels, 3, stride=stride, padding=1, padding_mode=mode
    )
    rng = np.random.default_rng(0)
    w = rng.standard_normal(spec.weight_shape)
    x = rng.standard_normal(spec.input_shape)
    y = rng.standard_normal(spec.output_shape)
    wt, xt, yt = (torch.from_numpy(a) for a in (w, x, y))
    mode_t = "constant" if mode == "zeros" else mode
    op, op_t = ca.conv_operator(spec, w), ca.conv_operator(spec, w, backend="torch")
    numpy_mode = {"zeros": "constant", "reflect": "reflect"}[mode]
    out = spec.output_shape[1:]
    t = interleaved(
        {
            "torch": lambda: F.conv2d(
                F.pad(xt[None], (1, 1, 1, 1), mode=mode_t), wt, stride=stride
            ),
            "numpy": lambda: op.matvec(x.ravel()),
            "backend": lambda: op_t.matvec(x.ravel()),
            "im2col": lambda: im2col(
                np.pad(x, ((0, 0), (1, 1), (1, 1)), mode=numpy_mode), w, out, stride
            ),
        }
    )
    ref = F.conv2d(F.pad(xt[None], (1, 1, 1, 1), mode=mode_t), wt, stride=stride).numpy().ravel()
    err = max(np.abs(op.matvec(x.ravel()) - ref).max(), np.abs(op_t.matvec(x.ravel()) - ref).max())
    print(
        f"{spec.describe()[:70]}\n  matvec: numpy {t['numpy'] * 1e3:.1f} ms, torch conv2d "
        f"{t['torch'] * 1e3:.1f} ms (ratio {t['numpy'] / t['torch']:.2f}x); im2col + one GEMM by "
        f"hand {t['im2col'] * 1e3:.1f} ms ({t['im2col'] / t['torch']:.2f}x); backend='torch' "
        f"{t['backend'] * 1e3:.1f} ms ({t['backend'] / t['torch']:.2f}x); max |diff| {err:.1e}"
    )
    if mode == "zeros":
        pad_out = (size + 2 - 3) % stride
        t = interleaved(
            {
                "torch": lambda: F.conv_transpose2d(
                    yt[None], wt, stride=stride, padding=1, output_padding=pad_out
                ),
                "numpy": lambda: op.rmatvec(y.ravel()),
                "backend": lambda: op_t.rmatvec(y.ravel()),
                "per tap": lambda: per_tap_adjoint(y, w, (size, size), stride),
            }
        )
        ref = F.conv_transpose2d(yt[None], wt, stride=stride, padding=1, output_padding=pad_out)
        ref = ref.numpy().ravel()
        err = max(
            np.abs(op.rmatvec(y.ravel()) - ref).max(), np.abs(op_t.rmatvec(y.ravel()) - ref).max()
        )
        print(
            f"  rmatvec: numpy {t['numpy'] * 1e3:.1f} ms, torch conv_transpose2d "
            f"{t['torch'] * 1e3:.1f} ms (ratio {t['numpy'] / t['torch']:.2f}x); one product per "
            f"tap by hand {t['per tap'] * 1e3:.1f} ms ({t['per tap'] / t['torch']:.2f}x); "
            f"backend='torch' {t['backend'] * 1e3:.1f} ms ({t['backend'] / t['torch']:.2f}x); "
            f"max |diff| {err:.1e}"
        )


def main(quick: bool) -> None:
    import torch

    torch.set_num_threads(1)
    size = 28 if quick else 56
    case(64, size)
    case(64, size, stride=2)
    case(64, size, mode="reflect")


if __name__ == "__main__":
    main("--quick" in sys.argv)
