"""Weight and input gradients through the matrix form vs torch's CPU autograd, one run.

The layer is a ResNet-sized convolution: 64 -> 64 channels, 56x56, 3x3 kernel, padding 1
(one example, no batch axis). Timings are the best of ``--repeats`` runs, in the same
process, so the ratios compare like with like on this machine.

    python examples/benchmarks/bench_gradients.py [--repeats 5] [--stored-jacobian]

Rows:
* ``matrix-free``  -- ``input_gradient`` / ``weight_gradient`` with ``method="operator"``:
  ``M^T g`` and ``J^T g`` contracted from the triple table chunk by chunk, nothing stored.
* ``stored M``     -- build ``conv_matrix`` (113 M non-zeros) once, then ``M.T @ g``; the
  build and the product are timed apart (the product is what a fixed kernel repeats).
* ``stored J``     -- ``kernel_jacobian(x).T @ g`` (opt-in: the im2col matrix of this layer
  takes several GiB while it is built).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import convalgebra as ca


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def torch_times(spec, x, w, g, repeats: int, dtype) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    xt = torch.as_tensor(x, dtype=dtype)[None].requires_grad_()
    wt = torch.as_tensor(w, dtype=dtype).requires_grad_()
    gt = torch.as_tensor(g, dtype=dtype)[None]
    out = F.conv2d(xt, wt, padding=1)
    grad = lambda wrt: torch.autograd.grad(out, wrt, gt, retain_graph=True)  # noqa: E731
    return {"input": best_of(lambda: grad(xt), repeats), "weight": best_of(lambda: grad(wt), repeats)}


def ours(spec, x, w, g, repeats: int, stored_jacobian: bool) -> dict[str, float]:
    times = {
        "matrix-free input": best_of(lambda: ca.input_gradient(spec, w, g, method="operator"), repeats),
        "matrix-free weight": best_of(lambda: ca.weight_gradient(spec, x, g, method="operator"), repeats),
    }
    start = time.perf_counter()
    m = ca.conv_matrix(spec, w)
    times["stored M: build"] = time.perf_counter() - start
    mt = m.T.tocsr()
    times["stored M: M.T @ g"] = best_of(lambda: mt @ g.ravel(), repeats)
    del m, mt
    if stored_jacobian:
        times["stored J: build + J.T @ g"] = best_of(
            lambda: ca.weight_gradient(spec, x, g, method="matrix"), 1
        )
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stored-jacobian", action="store_true")
    args = parser.parse_args(argv)

    import torch

    spec = ca.ConvSpec((64, 56, 56), 64, 3, padding=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(spec.input_shape)
    w = rng.standard_normal(spec.weight_shape)
    g = rng.standard_normal(spec.output_shape)

    # the two must agree before their speed means anything
    xt = torch.as_tensor(x)[None].requires_grad_()
    wt = torch.as_tensor(w).requires_grad_()
    gx, gw = torch.autograd.grad(torch.nn.functional.conv2d(xt, wt, padding=1), (xt, wt),
                                 torch.as_tensor(g)[None])
    np.testing.assert_allclose(ca.input_gradient(spec, w, g), gx[0].numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ca.weight_gradient(spec, x, g), gw.numpy(), rtol=1e-9, atol=1e-9)

    t64 = torch_times(spec, x, w, g, args.repeats, torch.float64)
    t32 = torch_times(spec, x, w, g, args.repeats, torch.float32)
    mine = ours(spec, x, w, g, args.repeats, args.stored_jacobian)

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{spec.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {load}")
    print(f"torch autograd float64: input {t64['input'] * 1e3:8.1f} ms   weight {t64['weight'] * 1e3:8.1f} ms")
    print(f"torch autograd float32: input {t32['input'] * 1e3:8.1f} ms   weight {t32['weight'] * 1e3:8.1f} ms")
    print(f"{'convalgebra (float64)':28s} {'ms':>9s} {'x torch f64':>12s}")
    for name, seconds in mine.items():
        base = t64["weight"] if "weight" in name or "J" in name else t64["input"]
        print(f"{name:28s} {seconds * 1e3:9.1f} {seconds / base:12.1f}")


if __name__ == "__main__":
    main()
