"""Build throughput of conv_matrix, against the memory-bandwidth limit and against probing torch.

Baseline 1: a plain numpy copy of an array with as many bytes as the CSR result (data +
indices + indptr), measured in the same run -- no builder can beat writing its output once.
Baseline 2: the obvious alternative, probing the torch op with identity columns (batched) to
get the dense Jacobian, on a size where that is feasible.

Run: python examples/benchmarks/bench_matrix.py [--quick]
"""

from __future__ import annotations

import sys
import time

import numpy as np

import convalgebra as ca
from convalgebra.connectivity import row_template, spatial_table


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def csr_bytes(m) -> int:
    return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes


def copy_time(n_bytes: int, repeat=3) -> float:
    src = np.ones(n_bytes // 8 + 1)
    return best_of(lambda: src.copy(), repeat)[0]


def build(spec, w):
    spatial_table.cache_clear()
    row_template.cache_clear()
    return ca.conv_matrix(spec, w)


def throughput(spec, label, repeat=3):
    w = np.random.default_rng(0).standard_normal(spec.weight_shape)
    t, m = best_of(lambda: build(spec, w), repeat)
    base = copy_time(csr_bytes(m), repeat)
    print(
        f"{label:<42} nnz {m.nnz:>12,}  {t:7.3f} s  {m.nnz / t / 1e6:7.1f} M nnz/s  "
        f"copy {base:6.3f} s  ratio {t / base:5.2f}x"
    )
    return t / base


def torch_probe_ratio():
    import torch

    spec = ca.ConvSpec((3, 32, 32), 16, 3, padding=1)
    w = np.random.default_rng(0).standard_normal(spec.weight_shape)
    wt = torch.tensor(w)
    n_in = int(np.prod(spec.input_shape))

    def probe():
        eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *spec.input_shape)
        with torch.no_grad():
            cols = torch.nn.functional.conv2d(eye, wt, padding=1)
        return cols.reshape(n_in, -1).T.numpy()

    t_probe, dense = best_of(probe)
    t_ours, m = best_of(lambda: build(spec, w))
    assert np.allclose(m.toarray(), dense)
    print(
        f"\n3x32x32 -> 16, 3x3: ours {t_ours * 1e3:.2f} ms, torch identity probing "
        f"{t_probe * 1e3:.1f} ms: {t_probe / t_ours:.0f}x faster (target >= 20x)"
    )


def tiled_operator_ratio(repeat: int = 3) -> None:
    """conv_operator on a tiled layer: the matrix built once vs the triples streamed per product."""
    from convalgebra.operators import _apply_triples

    spec = ca.ConvSpec((16, 64, 64), 16, 3, padding=1, tile=2)
    w = np.random.default_rng(0).standard_normal(spec.weight_shape)
    x = np.random.default_rng(1).standard_normal(int(np.prod(spec.input_shape)))
    start = time.perf_counter()
    op = ca.conv_operator(spec, w)
    t_setup = time.perf_counter() - start
    t_prepared = best_of(lambda: op @ x, repeat)[0]
    t_stream = best_of(lambda: _apply_triples(spec, w, x, adjoint=False), repeat)[0]
    print(
        f"\ntiled 16x64x64 tile=2 matvec: streamed triples {t_stream:.3f} s, prepared operator "
        f"{t_prepared * 1e3:.1f} ms ({t_stream / t_prepared:.0f}x; one-off setup {t_setup:.2f} s)"
    )


def main(quick: bool = False) -> None:
    print("conv_matrix build time vs a numpy copy of the same number of bytes (same run)\n")
    sweep = [
        (ca.ConvSpec((16, 28, 28), 16, 3, padding=1), "16->16, 28x28, 3x3"),
        (ca.ConvSpec((32, 56, 56), 32, 3, padding=1), "32->32, 56x56, 3x3"),
        (ca.ConvSpec((64, 28, 28), 128, 3, stride=2, padding=1), "64->128, 28x28, 3x3, stride 2"),
        (
            ca.ConvSpec((32, 56, 56), 32, 3, padding=1, padding_mode="reflect"),
            "32->32, 56x56, 3x3, reflect",
        ),
        (ca.ConvSpec((8, 16, 32, 32), 8, 3, padding=1), "8->8, 16x32x32, 3x3x3 (3-D)"),
    ]
    if not quick:
        sweep.append(
            (ca.ConvSpec((64, 56, 56), 64, 3, padding=1), "ResNet stage 1: 64->64, 56x56, 3x3")
        )
    for spec, label in sweep:
        throughput(spec, label)
    torch_probe_ratio()
    tiled_operator_ratio(1 if quick else 3)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
