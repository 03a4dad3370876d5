"""Linear operator expressions over signals of every size, and proofs of identities between
them.

Write both sides of an identity with PyTorch's names and defaults; :func:`prove` decides it
for every input size, with symbolic kernels, and gives the exact set of sizes where it holds
and the smallest counterexample.

>>> from convalgebra import ops
>>> x, w = ops.signal(), ops.kernel("w", (1, 1, 3))
>>> r = ops.prove(ops.conv(x, w, stride=2), ops.subsample(ops.conv(x, w), 2))
>>> r.holds, str(r.sizes), r.counterexample
(True, 'every n >= 3', None)
"""

from __future__ import annotations

from .expressions import Op, Signal, adjoint, cat, signal, split
from .gathers import (
    crop,
    flip,
    pad,
    pixel_shuffle,
    pixel_unshuffle,
    rot90,
    shift,
    subsample,
    upsample_nearest,
    upsample_zeros,
)
from .kernels import (
    Kernel,
    cat_kernels,
    constant,
    delta,
    dilate_kernel,
    enlarge_kernel,
    flip_kernel,
    kernel,
    kernel_conv,
    polyphase_kernel,
    transpose_kernel,
    ungroup_kernel,
)
from .layers import avg_pool, conv, conv_transpose, spec_layer
from .prove import Counterexample, Proof, Residual, evaluate_sides, prove
from .sizes import SizeSet

__all__ = [
    "Op",
    "Signal",
    "Kernel",
    "Proof",
    "Counterexample",
    "Residual",
    "SizeSet",
    "signal",
    "kernel",
    "constant",
    "delta",
    "conv",
    "conv_transpose",
    "avg_pool",
    "spec_layer",
    "pad",
    "crop",
    "shift",
    "flip",
    "rot90",
    "subsample",
    "upsample_zeros",
    "upsample_nearest",
    "pixel_shuffle",
    "pixel_unshuffle",
    "cat",
    "split",
    "adjoint",
    "dilate_kernel",
    "enlarge_kernel",
    "flip_kernel",
    "transpose_kernel",
    "kernel_conv",
    "polyphase_kernel",
    "cat_kernels",
    "ungroup_kernel",
    "prove",
    "evaluate_sides",
]
