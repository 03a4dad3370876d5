"""Weight and input gradients through the matrix form vs torch's CPU autograd, one run.

The layer is a ResNet-sized convolution: 64 -> 64 channels, 56x56, 3x3 kernel, padding 1
(one example, no batch axis). All candidates run in turn ``--repeats`` times in the same
process (interleaved, so a busy machine slows them alike); ratios compare the best (min)
times, the least disturbed by other load; medians are printed beside them.

    python examples/benchmarks/bench_gradients.py [--repeats 9] [--stored-jacobian]

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


def interleaved(candidates: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """(min, median) seconds of each candidate, run in turn so that load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (min(t), float(np.median(t))) for name, t in times.items()}


def candidates(spec, x, w, g) -> dict:
    import torch
    import torch.nn.functional as F

    runs = {}
    for label, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        xt = torch.as_tensor(x, dtype=dtype)[None].requires_grad_()
        wt = torch.as_tensor(w, dtype=dtype).requires_grad_()
        gt = torch.as_tensor(g, dtype=dtype)[None]
        out = F.conv2d(xt, wt, padding=1)
        runs[f"torch {label} input"] = lambda out=out, xt=xt, gt=gt: torch.autograd.grad(
            out, xt, gt, retain_graph=True
        )
        runs[f"torch {label} weight"] = lambda out=out, wt=wt, gt=gt: torch.autograd.grad(
            out, wt, gt, retain_graph=True
        )
    runs["matrix-free input"] = lambda: ca.input_gradient(spec, w, g, method="operator")
    runs["matrix-free weight"] = lambda: ca.weight_gradient(spec, x, g, method="operator")
    return runs


def stored(spec, x, w, g, repeats: int, stored_jacobian: bool) -> dict[str, tuple[float, float]]:
    start = time.perf_counter()
    m = ca.conv_matrix(spec, w)
    build = time.perf_counter() - start
    mt = m.T.tocsr()
    del m
    result = {"stored M: build": (build, build)}
    result.update(interleaved({"stored M: M.T @ g input": lambda: mt @ g.ravel()}, repeats))
    if stored_jacobian:
        start = time.perf_counter()
        ca.weight_gradient(spec, x, g, method="matrix")
        once = time.perf_counter() - start
        result["stored J: build + J.T @ g weight"] = (once, once)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
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
    gx, gw = torch.autograd.grad(
        torch.nn.functional.conv2d(xt, wt, padding=1), (xt, wt), torch.as_tensor(g)[None]
    )
    np.testing.assert_allclose(ca.input_gradient(spec, w, g), gx[0].numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ca.weight_gradient(spec, x, g), gw.numpy(), rtol=1e-9, atol=1e-9)

    timed = interleaved(candidates(spec, x, w, g), args.repeats)
    timed.update(stored(spec, x, w, g, args.repeats, args.stored_jacobian))

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{spec.describe()}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load}; "
        f"{args.repeats} interleaved runs"
    )
    print(f"{'':34s} {'min ms':>9s} {'median ms':>10s} {'/ torch f64':>12s} {'/ torch f32':>12s}")
    for name, (low, mid) in timed.items():
        kind = "weight" if "weight" in name else "input"
        f64, f32 = timed[f"torch float64 {kind}"][0], timed[f"torch float32 {kind}"][0]
        print(f"{name:34s} {low * 1e3:9.1f} {mid * 1e3:10.1f} {low / f64:12.2f} {low / f32:12.1f}")


if __name__ == "__main__":
    main()
