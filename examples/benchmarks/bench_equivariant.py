"""Benchmark: equivariant kernels solved exactly on the layer, against a dense SVD nullspace.

``convalgebra.equivariant_kernels(spec, "dihedral")`` builds the layer's constraint
``P_out M(w) = M(w) P_in`` (quarter turn and mirror) from the triple table and solves it by
orbit union-find. The baseline is ``scipy.linalg.null_space`` of the *same* constraint matrix
(``ek.constraint``, made dense), timed alone -- it does not even pay for building the
constraint. "exact" is the whole call from the spec (constraint, orbits, blind and grid
kernels); "solve only" is the exact solver on the same constraint matrix as the SVD. Layers: 2 -> 2 channels, kernels 3×3 … 15×15, "same" zero padding on a 24×24
input. The script prints both times, their ratio at every size, the log-log slope of the exact
solver's time against the number of unknowns, and checks that both find the same dimension.

It then times ``check("rotation_equivariance", ConvSpec((1, 64, 64, 64), 1, 3))`` (3-D, about
262k input positions; the bar is 2 s). Run: ``python examples/benchmarks/bench_equivariant.py``.
"""

from __future__ import annotations

import os

# one BLAS thread: the exact solver is single-threaded, so is its baseline (and a shared
# machine does not swing the SVD's timings)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import convalgebra as ca  # noqa: E402
from convalgebra.connectivity import row_template, spatial_table  # noqa: E402
from convalgebra.identities.constraints import SparseSystem, integer_nullspace  # noqa: E402

KERNELS = (3, 5, 7, 9, 11, 13, 15)
SIZE = 24
REPEAT = 3


def _cold() -> None:
    spatial_table.cache_clear()
    row_template.cache_clear()


def best_of(func, repeat: int = REPEAT):
    """Best wall time of ``func()`` over ``repeat`` cold runs, and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        _cold()
        t = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ca.equivariant_kernels(ca.ConvSpec((2, 6, 6), 2, 3, padding="same"), "dihedral")  # imports
    print(
        f"equivariant_kernels(spec, 'dihedral'), 2 -> 2 channels, input {SIZE}x{SIZE}, "
        "'same' zero padding"
    )
    print(
        f"{'kernel':>7} {'unknowns':>9} {'constraint':>12} {'dim':>4} {'exact (s)':>10} "
        f"{'solve only':>11} {'null_space (s)':>15} {'ratio':>7} {'solve ratio':>12}"
    )
    unknowns, times = [], []
    for k in KERNELS:
        spec = ca.ConvSpec((2, SIZE, SIZE), 2, k, padding="same", bias=False)
        t_exact, ek = best_of(lambda spec=spec: ca.equivariant_kernels(spec, "dihedral"))
        dense = ek.constraint.toarray().astype(float)
        t_svd, null = best_of(lambda dense=dense: scipy.linalg.null_space(dense))
        coo = ek.constraint.tocoo()
        system = SparseSystem(
            coo.row.astype(np.int64),
            coo.col.astype(np.int64),
            coo.data.astype(np.int64),
            coo.shape[1],
        )
        t_solve, _ = best_of(lambda system=system: integer_nullspace(system))
        if null.shape[1] != ek.dimension:
            raise SystemExit(f"dimension mismatch at k={k}: {null.shape[1]} vs {ek.dimension}")
        n = ek.constraint.shape[1]
        unknowns.append(n)
        times.append(t_exact)
        print(
            f"{k:>4}x{k:<2} {n:>9} {str(dense.shape):>12} {ek.dimension:>4} {t_exact:>10.4f} "
            f"{t_solve:>11.4f} {t_svd:>15.4f} {t_svd / t_exact:>6.1f}x "
            f"{t_svd / t_solve:>11.1f}x"
        )
    slope = np.polyfit(np.log(unknowns), np.log(times), 1)[0]
    print(f"log-log slope of the exact solver's time against the unknowns: {slope:.2f}")

    ca.check("rotation_equivariance", ca.ConvSpec((1, 5, 5, 5), 1, 3))  # imports
    spec = ca.ConvSpec((1, 64, 64, 64), 1, 3)
    t_3d, r = best_of(lambda: ca.check("rotation_equivariance", spec))
    print(
        f"check('rotation_equivariance', {spec.describe()}): {t_3d:.2f} s "
        f"(bar: 2 s), verdict {'HOLDS' if r.holds else 'FAILS'}, "
        f"{r.evidence['dimension of the kernels for which it holds (this size)']} kernels "
        "make it equivariant"
    )


if __name__ == "__main__":
    main()
