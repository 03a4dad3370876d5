"""
Verify identities of convolution
================================

A verdict with its reason, or an exact counterexample::

    python examples/verify_identity.py

Translation equivariance holds exactly with circular padding and fails at the border with
zero padding (the library says where); rotation equivariance fails in general and holds
exactly for the kernels it solves for (rotation-symmetric ones).
"""

import numpy as np

import convalgebra as ca

# %%
# Translation equivariance: circular padding, then zero padding
# -------------------------------------------------------------
circular = ca.ConvSpec((1, 6, 6), 1, 3, padding=1, padding_mode="circular")
zeros = ca.ConvSpec((1, 6, 6), 1, 3, padding=1)

result = ca.check("translation_equivariance", circular, shift=(1, 2))
print(result.to_text().splitlines()[0])

result = ca.check("translation_equivariance", zeros, shift=(0, 1))
print(result.to_text().splitlines()[0])
print(
    f"  fails at {len(result.failing_positions)} output positions, e.g. "
    f"{result.failing_positions[:3]}"
)
cx = result.counterexample
print(f"  counterexample: {cx.to_text().splitlines()[0]}")

# %%
# Rotation equivariance, and the kernels for which it holds
# ---------------------------------------------------------
rotation = ca.check("rotation_equivariance", zeros)
print(rotation.to_text().splitlines()[0])
kernels = ca.equivariant_kernels(zeros, "rotation")
print(f"  it holds exactly for a {kernels.dimension}-dimensional family of kernels:")
print(f"  {kernels.general.tolist()}")

# %%
# Pick one kernel of that family: the check now holds, and numbers agree
# ----------------------------------------------------------------------
symmetric = np.array([[1, 2, 1], [2, 5, 2], [1, 2, 1]]).reshape(1, 1, 3, 3)
print(ca.check("rotation_equivariance", zeros, weight=symmetric).to_text().splitlines()[0])
x = np.random.default_rng(1).integers(-3, 4, size=(1, 6, 6))
m = ca.conv_matrix(zeros, symmetric)
rotated_then_conv = m @ np.rot90(x, axes=(1, 2)).ravel()
conv_then_rotated = np.rot90((m @ x.ravel()).reshape(1, 6, 6), axes=(1, 2)).ravel()
print(f"  numeric check on a random image: {np.array_equal(rotated_then_conv, conv_then_rotated)}")
