"""
Prove an identity for every input size
======================================

Decide an identity between convolution expressions for every input size at once, with
symbolic kernels::

    python examples/prove_identity.py

Two 3-tap convolutions in a row are one 5-tap convolution (its kernel the full convolution of
the two) at every size where both sides are defined. Reversing a signal commutes with a
strided convolution only at odd sizes: the proof gives that exact set and the smallest
counterexample, which we evaluate again with numpy.
"""

import numpy as np

import convalgebra as ca
from convalgebra import ops

x = ops.signal()
v, w = ops.kernel("v", (1, 1, 3)), ops.kernel("w", (1, 1, 3))

# %%
# An identity that holds for every size
# -------------------------------------
# ``kernel_conv(v, w)`` is the 5-tap kernel of the two cross-correlations in a row.
proof = ca.prove(ops.conv(ops.conv(x, v), w), ops.conv(x, ops.kernel_conv(v, w)))
print(proof.to_text())

# %%
# A false one, with the exact sizes where it holds
# ------------------------------------------------
# Flip the output of a stride-2 convolution, or convolve the flipped input with the
# flipped kernel: the strided grid starts at the other end when ``n - 3`` is odd.
proof = ca.prove(
    ops.flip(ops.conv(x, w, stride=2), -1), ops.conv(ops.flip(x, -1), ops.flip_kernel(w), stride=2)
)
print(f"holds: {proof.holds}; the sides agree for {proof.sizes}; they differ for {proof.failing}")
cx = proof.counterexample
print(f"smallest counterexample: {cx.description}")

# %%
# The counterexample, evaluated again by hand
# -------------------------------------------
signal_values = cx.inputs["x"][0]
taps = cx.kernels["w"][0, 0]
strided = np.correlate(signal_values, taps, mode="valid")[::2]
left = strided[::-1]
right = np.correlate(signal_values[::-1], taps[::-1], mode="valid")[::2]
print(f"at n = {cx.size[0]}: left {left.tolist()}, right {right.tolist()}")
assert left.tolist() == cx.lhs[0].tolist() and right.tolist() == cx.rhs[0].tolist()
assert left.tolist() != right.tolist()
